"""Scale-out: the DAG on CeleryExecutor with two workers that share the run's tasks.

The broker is the Redis at TEST_REDIS_URL (default redis://127.0.0.1:6379/0). Each worker
runs one task at a time, and the twin gives each its own host name, so the task
instances' ``hostname`` shows which worker ran them.
"""

from __future__ import annotations

import pytest
from services_support import (
    DAG_ID,
    RUN_TIMEOUT_SECONDS,
    configure,
    failed_tasks_report,
    stop_unfinished_runs,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

# Fewer epochs and no baseline keep the run short; the test is about where tasks run.
SHORT_RUN_CONF = {"epochs": 3, "train_baseline": False}


@pytest.fixture(scope="module")
def celery_run(twin):
    api = twin.api()
    stop_unfinished_runs(api)
    configure(twin, "CeleryExecutor", use_job_schedule=False)
    api.set_paused(DAG_ID, False)
    triggered = api.trigger(DAG_ID, conf=SHORT_RUN_CONF, note="CeleryExecutor with two workers")
    finished = api.wait_for_run(DAG_ID, triggered["dag_run_id"], timeout=RUN_TIMEOUT_SECONDS)
    instances = api.task_instances(DAG_ID, triggered["dag_run_id"])
    return {"finished": finished, "instances": instances}


def test_celery_run_succeeds(twin, celery_run):
    run_id = celery_run["finished"]["dag_run_id"]
    assert celery_run["finished"]["state"] == "success", failed_tasks_report(
        twin, twin.api(), run_id
    )


def test_tasks_ran_on_both_workers(twin, celery_run):
    hostnames = {instance["hostname"] for instance in celery_run["instances"]}
    assert hostnames == {twin.worker_hostname(1), twin.worker_hostname(2)}


def test_tasks_went_to_twin_queue(twin, celery_run):
    queues = {instance["queue"] for instance in celery_run["instances"]}
    assert queues == {twin.queue}


def test_scheduler_runs_celery_executor(twin, celery_run):
    assert twin.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    log = (twin.log_dir / "airflow-scheduler.log").read_text()
    assert "CeleryExecutor" in log
