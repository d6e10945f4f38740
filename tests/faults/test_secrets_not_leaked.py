"""No credential of the fault stack shows up where the runs leave traces.

The session generated random S3 credentials (and, with the scheduler tests, a JWT secret),
so any occurrence of one of those values outside the processes' environment is a leak. The
tests search the files that the stack wrote: task logs, server logs, and the S3 objects
with every MLflow artifact. They search every table of Airflow's metadata database and of
MLflow's backend store, the params and tags that the MLflow API returns, the stack's
process command lines, and the files of the repository. conftest.py runs this module after
all the others.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psutil
import pytest
from faults_support import mlflow_client, query
from support import REPOSITORY

pytestmark = pytest.mark.e2e

# Well-known shapes of real credentials, for the scan of the repository.
CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        rb"(?i)aws_secret_access_key\W{1,4}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
    ),
    "private key": re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY"),
    "GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    "Slack token": re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "JSON web token": re.compile(rb"\beyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}"),
    "URL with a password": re.compile(rb"[a-z][a-z0-9+.-]*://[^/\s:@$]+:[^/\s@${}]{6,}@"),
}


@pytest.fixture(scope="module")
def secret_values(fault_stack, baseline_run, generated_secrets) -> dict[str, bytes]:
    assert {"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"} <= generated_secrets.keys()
    return {name: value.encode() for name, value in generated_secrets.items()}


def leaks(data: bytes, secrets: dict[str, bytes]) -> list[str]:
    return [name for name, value in secrets.items() if value in data]


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()]


def test_files_written_by_stack(fault_stack, secret_values):
    files = files_under(fault_stack.home)
    task_logs = [path for path in files if path.name.startswith("dag-test-")]
    assert len(task_logs) >= 2, f"expected the DAG runs' logs in {fault_stack.log_dir}"
    server_logs = {path.name for path in files} & {"s3.log", "mlflow.log"}
    assert server_logs == {"s3.log", "mlflow.log"}
    objects = [path for path in files if (fault_stack.home / "s3") in path.parents]
    assert any(path.name == "MLmodel" for path in objects), "no MLflow model among the objects"
    found = {str(path): leaks(path.read_bytes(), secret_values) for path in files}
    assert not {path: names for path, names in found.items() if names}


def test_metadata_database(fault_stack, postgres_cluster, secret_values):
    url = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    xcoms = query(url, "SELECT dag_id, run_id, task_id, value::text AS value FROM xcom")
    rendered = query(
        url,
        "SELECT run_id, task_id, rendered_fields::text AS fields "
        "FROM rendered_task_instance_fields",
    )
    conf = query(url, "SELECT run_id, conf::text AS conf FROM dag_run")
    assert len(xcoms) >= 7, "expected the XComs of at least one whole run"
    assert rendered, "no rendered template fields were recorded"
    for table, rows in (
        ("xcom", xcoms),
        ("rendered_task_instance_fields", rendered),
        ("dag_run", conf),
    ):
        for row in rows:
            text = json.dumps(row, default=str).encode()
            assert not leaks(text, secret_values), f"{table} row {row} holds a secret"
    dump = pg_dump(postgres_cluster, "airflow")
    assert b"COPY public.xcom" in dump
    assert not leaks(dump, secret_values), "a table of the metadata database holds a secret"


def test_mlflow_records(fault_stack, postgres_cluster, secret_values):
    client = mlflow_client(fault_stack)
    experiments = client.search_experiments()
    runs = client.search_runs([experiment.experiment_id for experiment in experiments])
    assert runs, "no MLflow run to check"
    for run in runs:
        record = json.dumps({"params": run.data.params, "tags": run.data.tags}).encode()
        assert not leaks(record, secret_values), f"MLflow run {run.info.run_id} holds a secret"
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        for version in versions:
            record = json.dumps({"tags": version.tags, "description": version.description})
            assert not leaks(record.encode(), secret_values), f"version {version.version}"
    dump = pg_dump(postgres_cluster, "mlflow")
    assert b"COPY public.params" in dump
    assert not leaks(dump, secret_values), "a table of MLflow's backend store holds a secret"


def test_process_command_lines(fault_stack, secret_values):
    checked = 0
    for server in fault_stack.servers.values():
        root = psutil.Process(server.process.pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                command = "\0".join(process.cmdline()).encode()
            except psutil.NoSuchProcess:
                continue
            checked += 1
            assert not leaks(command, secret_values), f"{server.name} has a secret in its command"
    assert checked >= 2


def test_repository_files(secret_values):
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout
    paths = [REPOSITORY / name.decode() for name in listed.split(b"\0") if name]
    assert ".env" not in {path.name for path in paths}, ".env is tracked or not ignored"
    found = []
    for path in paths:
        if not path.is_file():
            continue
        data = path.read_bytes()
        found += [f"{path}: {name}" for name in leaks(data, secret_values)]
        found += [
            f"{path}: {name}"
            for name, pattern in CREDENTIAL_PATTERNS.items()
            if pattern.search(data)
        ]
    assert not found, f"credentials in the repository: {found}"


def pg_dump(cluster, database: str) -> bytes:
    result = subprocess.run(
        [
            str(cluster.bin_dir / "pg_dump"),
            "--data-only",
            "--host=127.0.0.1",
            f"--port={cluster.port}",
            "--username=postgres",
            database,
        ],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return result.stdout
