"""Fixtures shared by the test suites: the Adult files, a real S3 server and the stack.

The suites run in two environments. Everything outside tests/lifecycle runs in Airflow's
environment (.venv); tests/lifecycle runs in the pinned TensorFlow Privacy environment
(.venv-lifecycle), which has no Airflow. ``make test`` runs both.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from support import REPOSITORY, TEST_S3_CREDENTIALS, free_port

# Airflow reads its configuration when first imported: keep the tests' Airflow home,
# SQLite database and logs inside the repository's ignored .local folder.
os.environ.setdefault("AIRFLOW_HOME", str(REPOSITORY / ".local/airflow-tests"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPOSITORY / "dags"))

IN_LIFECYCLE_ENV = importlib.util.find_spec("tensorflow_privacy") is not None
# Each environment collects only the suites that it can import.
collect_ignore = (
    ["deployment", "e2e", "faults", "services", "unit", "test_dag_integrity.py"]
    if IN_LIFECYCLE_ENV
    else ["lifecycle"]
)


@pytest.fixture(scope="session")
def adult_dir() -> Path:
    """The original Adult files; ADULT_DATA_DIR overrides ../shared/data/adult."""
    folder = Path(os.environ.get("ADULT_DATA_DIR", REPOSITORY.parent / "shared/data/adult"))
    missing = [name for name in ("adult.data", "adult.test") if not (folder / name).is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found in {folder}; set ADULT_DATA_DIR to a folder "
            "with the original UCI Adult files"
        )
    return folder


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 API (rclone over a temporary folder) with the process environment set."""
    from dp_pipeline import storage
    from dp_stack import services

    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, **TEST_S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint}
    root = tmp_path_factory.mktemp("s3")
    server = services.s3_server(env, root, ["unit"], root.parent / "s3-unit.log").start()
    saved = {name: os.environ.get(name) for name in (*TEST_S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3")}
    os.environ.update({**TEST_S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint})
    storage.client.cache_clear()
    yield {"endpoint": endpoint, "root": root, "bucket": "unit"}
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    storage.client.cache_clear()
