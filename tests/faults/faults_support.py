"""Helpers of the fault tests: a private PostgreSQL cluster, DAG runs that a test can disturb
while they run, and queries of Airflow's metadata database and of the MLflow registry."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from support import REPOSITORY

from dp_stack import services
from dp_stack.stack import DAG_ID

T = TypeVar("T")

LIFECYCLE_PYTHON = Path(
    os.environ.get("DP_PIPELINE_LIFECYCLE_PYTHON", REPOSITORY / ".venv-lifecycle/bin/python")
)
# Params of the fault runs: a short training without the non-private reference model still
# passes the default gate (test accuracy about 0.83, epsilon about 0.4) in a third of the time.
LIGHT_CONF = {"epochs": 3, "train_baseline": False}
DAG_RUN_TIMEOUT_SECONDS = 420


def wait_for(check: Callable[[], T], timeout: float, message: str, interval: float = 0.25) -> T:
    """Call ``check`` until it returns a true value, and fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:g} s: {message}")
        time.sleep(interval)


class PostgresCluster:
    """A PostgreSQL cluster of the tests' own, in a temporary folder, on a free port.

    The tests restart it, which they must never do to the machine's shared server. As root
    the server runs as the ``postgres`` user, because PostgreSQL refuses to run as root.
    """

    def __init__(self, port: int):
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="dp-faults-postgres-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.bin_dir = _postgres_bin_dir()
        self._run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._run_as:
            shutil.chown(self.root, user="postgres")

    def _pg(self, program: str, *args: str) -> None:
        command = [*self._run_as, str(self.bin_dir / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise services.ServiceError(
                f"{program} {' '.join(args[:2])} failed with code {result.returncode}: "
                f"{result.stderr[-2000:]} (server log: {self.log_path})"
            )

    def create(self) -> PostgresCluster:
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # The test data is not needed after a crash, so the server does not wait for
            # the disk.
            "fsync": "off",
            "synchronous_commit": "off",
            # The scheduler, the API server, the DAG processor, the MLflow workers and the
            # task processes each keep a connection pool.
            "max_connections": "300",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        return self

    def start(self) -> None:
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60", "start"
        )

    def restart(self) -> None:
        """Restart with the fast shutdown mode, which ends every client connection."""
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60",
            "-m", "fast", "restart",
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the stack ships psycopg2.
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        services.recreate_postgres_database(self.url(name))
        return self.url(name)


def _postgres_bin_dir() -> Path:
    configured = os.environ.get("POSTGRES_BIN_DIR")
    if configured:
        return Path(configured)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name),
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    pytest.fail("PostgreSQL's initdb not found; install PostgreSQL or set POSTGRES_BIN_DIR")


def query(url: str, sql: str, parameters: tuple = ()) -> list[dict]:
    """Run one SQL query on a postgresql URL and return its rows as dicts."""
    import psycopg2
    import psycopg2.extras

    connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            cursor.execute(sql, parameters)
            return [dict(row) for row in cursor.fetchall()]
    finally:
        connection.close()


class DagTest:
    """One ``airflow dags test`` of the DAG in the background, with its output in a log file.

    Unlike ``dp_stack.stack.test_dag``, the call returns at once, so the test can stop a
    server or kill a task process while the run goes on.
    """

    def __init__(self, stack, conf: dict | None, log_path: Path, env: dict | None = None):
        self.stack = stack
        self.metadata_url = stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        self.log_path = log_path
        self.started_after = _latest_run_id(self.metadata_url)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [services.executable("airflow"), "dags", "test", DAG_ID]
        if conf:
            command += ["--conf", json.dumps(conf)]
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                command,
                env={**stack.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._run_id: str | None = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 180) -> re.Match:
        """Wait until a line of the output matches ``pattern``; fail if the run ends first."""
        compiled = re.compile(pattern, re.MULTILINE)

        def found():
            match = compiled.search(self.log_text())
            if match is None and self.process.poll() is not None:
                pytest.fail(
                    f"The DAG run ended before its log matched {pattern!r}; see {self.log_path}"
                )
            return match

        return wait_for(found, timeout, f"no line of {self.log_path} matched {pattern!r}")

    @property
    def run_id(self) -> str:
        if self._run_id is None:
            self._run_id = wait_for(
                lambda: _latest_run_id(self.metadata_url, after=self.started_after),
                120,
                f"airflow dags test created no DAG run; see {self.log_path}",
            )
        return self._run_id

    def task_instance(self, task_id: str) -> dict | None:
        rows = query(
            self.metadata_url,
            "SELECT task_id, state, try_number, start_date, end_date FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s AND task_id = %s",
            (DAG_ID, self.run_id, task_id),
        )
        return rows[0] if rows else None

    def wait_for_task_state(self, task_id: str, states: set[str], timeout: float = 180) -> dict:
        def reached():
            instance = self.task_instance(task_id)
            if self.process.poll() is not None and not (instance and instance["state"] in states):
                pytest.fail(
                    f"The DAG run ended while {task_id} was {instance and instance['state']}, "
                    f"expected one of {sorted(states)}; see {self.log_path}"
                )
            return instance if instance and instance["state"] in states else None

        return wait_for(reached, timeout, f"{task_id} did not reach {sorted(states)}")

    def wait(self, timeout: float = DAG_RUN_TIMEOUT_SECONDS) -> dict:
        """Wait for ``airflow dags test`` to exit and return the run's dag_run row."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.terminate()
            pytest.fail(f"The DAG run did not finish within {timeout:g} s; see {self.log_path}")
        return dag_run(self.metadata_url, self.run_id)

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()


def _latest_run_id(metadata_url: str, after: str | None = None) -> str | None:
    rows = query(
        metadata_url,
        "SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1",
        (DAG_ID,),
    )
    latest = rows[0]["run_id"] if rows else None
    return latest if latest != after else None


def dag_run(metadata_url: str, run_id: str) -> dict:
    rows = query(
        metadata_url,
        "SELECT run_id, state, logical_date, conf FROM dag_run WHERE dag_id = %s AND run_id = %s",
        (DAG_ID, run_id),
    )
    assert rows, f"DAG run {run_id} not found in the metadata database"
    return rows[0]


def task_states(metadata_url: str, run_id: str) -> dict[str, dict]:
    """Return state and try_number of each task of a DAG run, by task id."""
    rows = query(
        metadata_url,
        "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
        (DAG_ID, run_id),
    )
    return {row["task_id"]: row for row in rows}


def earlier_tries(metadata_url: str, run_id: str, task_id: str) -> list[dict]:
    """Return the tries of a task that a later try replaced, from task_instance_history."""
    return query(
        metadata_url,
        "SELECT try_number, state, start_date, end_date FROM task_instance_history "
        "WHERE dag_id = %s AND run_id = %s AND task_id = %s ORDER BY try_number",
        (DAG_ID, run_id, task_id),
    )


def xcom_value(metadata_url: str, run_id: str, task_id: str):
    rows = query(
        metadata_url,
        "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s "
        "AND key = 'return_value'",
        (DAG_ID, run_id, task_id),
    )
    assert rows, f"{task_id} of {run_id} pushed no return value"
    value = rows[0]["value"]
    return json.loads(value) if isinstance(value, str) else value


def mlflow_client(stack):
    import mlflow

    return mlflow.MlflowClient(stack.env["MLFLOW_TRACKING_URI"])


def model_versions(stack, run_id: str | None = None) -> list:
    """Return the registered model's versions, or those that the DAG run ``run_id`` created."""
    from dp_pipeline import config
    from dp_pipeline.registry import RUN_ID_TAG

    name = config.MODEL_NAME.get(stack.env)
    versions = mlflow_client(stack).search_model_versions(f"name = '{name}'")
    if run_id is not None:
        versions = [version for version in versions if version.tags.get(RUN_ID_TAG) == run_id]
    return sorted(versions, key=lambda version: int(version.version))


def production_versions(stack) -> list[str]:
    return [
        version.version
        for version in model_versions(stack)
        if version.current_stage == "Production"
    ]


def mlflow_runs(stack, run_id: str) -> list:
    """Return the MLflow runs tagged with the DAG run ``run_id``."""
    from dp_pipeline import config
    from dp_pipeline.registry import RUN_ID_TAG

    client = mlflow_client(stack)
    experiment = client.get_experiment_by_name(config.EXPERIMENT_NAME.get(stack.env))
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'"
    )


def run_in_lifecycle_env(stack, code: str, *args: str, timeout: float = 600) -> dict:
    """Run Python ``code`` in the TensorFlow environment and return the JSON it prints last."""
    if not LIFECYCLE_PYTHON.exists():
        pytest.fail(f"{LIFECYCLE_PYTHON} not found; run `make install-lifecycle` first")
    result = subprocess.run(
        [str(LIFECYCLE_PYTHON), "-c", code, *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def s3_client(stack):
    """A boto3 S3 client of the test process, with the stack's endpoint and credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack.env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
        region_name=stack.env["AWS_DEFAULT_REGION"],
    )


def s3_keys(stack, prefix: str) -> dict[str, object]:
    """Return key -> LastModified of every object under an s3:// prefix."""
    bucket, key_prefix = prefix.removeprefix("s3://").split("/", 1)
    pages = (
        s3_client(stack).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix)
    )
    return {
        item["Key"]: item["LastModified"] for page in pages for item in page.get("Contents", [])
    }


def registered_artifact(stack, version, path: str) -> bytes:
    """Return the bytes of a file inside a registered model version's MLflow model."""
    import mlflow

    tracking_uri = stack.env["MLFLOW_TRACKING_URI"]
    client = mlflow.MlflowClient(tracking_uri)
    location = client.get_model_version_download_uri(version.name, version.version)
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location.rstrip('/')}/{path}",
            dst_path=folder,
            tracking_uri=tracking_uri,
        )
        return Path(local).read_bytes()
