"""Helpers of the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support import REPOSITORY

LIFECYCLE_PYTHON = Path(
    os.environ.get("DP_PIPELINE_LIFECYCLE_PYTHON", REPOSITORY / ".venv-lifecycle/bin/python")
)


def run_in_lifecycle_env(stack, code: str, *args: str) -> dict:
    """Run Python ``code`` in the TensorFlow environment and return the JSON it prints last."""
    if not LIFECYCLE_PYTHON.exists():
        pytest.fail(f"{LIFECYCLE_PYTHON} not found; run `make install-lifecycle` first")
    result = subprocess.run(
        [str(LIFECYCLE_PYTHON), "-c", code, *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
