"""Helpers that several test suites import."""

from __future__ import annotations

import socket
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]

TEST_S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "dp-pipeline-test",
    "AWS_SECRET_ACCESS_KEY": "dp-pipeline-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
