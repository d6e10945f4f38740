"""Host name that Airflow records for the tasks that a local Celery worker runs.

In the Compose deployment each worker is its own container, so each has its own host
name. Local workers share one machine, so each sets DP_STACK_WORKER_HOSTNAME and Airflow's
``[core] hostname_callable`` points here, which makes a task instance's ``hostname`` name
the worker that ran it.
"""

from __future__ import annotations

import os
import socket

WORKER_HOSTNAME_VARIABLE = "DP_STACK_WORKER_HOSTNAME"


def hostname() -> str:
    """Return DP_STACK_WORKER_HOSTNAME, or the machine's fully qualified name if it is unset."""
    return os.environ.get(WORKER_HOSTNAME_VARIABLE) or socket.getfqdn()
