"""The stack of the fault tests: its own PostgreSQL cluster, S3 and MLflow servers, and Airflow.

Airflow's metadata database and MLflow's backend store live on a PostgreSQL cluster that the
session creates in a temporary folder on a free port, so a test may restart it without
touching the machine's shared server. The S3 credentials are fresh random values, which the
secret tests then search for everywhere the runs wrote. Retries are short: a 5 s retry delay,
two attempts per S3 request and one retry per MLflow request, so an outage reaches Airflow's
task retries within seconds.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from faults_support import LIGHT_CONF, DagTest, PostgresCluster, production_versions
from support import REPOSITORY, free_port

RETRY_DELAY_SECONDS = 5
# Names of the generated credentials, whose values the secret tests search for.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")


def pytest_collection_modifyitems(config, items):
    # The secret scans read what every other fault test wrote, so they run after the last.
    scans = [item for item in items if item.path.name == "test_secrets_not_leaked.py"]
    if not scans:
        return
    others = [item for item in items if item not in scans]
    fault_tests = Path(__file__).parent
    last = max(
        (index for index, item in enumerate(others) if fault_tests in item.path.parents),
        default=len(others) - 1,
    )
    items[:] = others[: last + 1] + scans + others[last + 1 :]


@pytest.fixture(scope="session")
def postgres_cluster():
    cluster = PostgresCluster(free_port()).create()
    cluster.start()
    yield cluster
    cluster.stop()
    cluster.remove()


@pytest.fixture(scope="session")
def generated_secrets() -> dict[str, str]:
    """Credentials that the session generated, by variable name; the secret tests read it."""
    return {}


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory, adult_dir, postgres_cluster, generated_secrets):
    from dp_stack.stack import running_stack

    overrides = {
        "AWS_ACCESS_KEY_ID": f"faultsaccess{secrets.token_hex(6)}",
        "AWS_SECRET_ACCESS_KEY": f"faults-secret-{secrets.token_hex(16)}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_BACKEND_STORE_URI": postgres_cluster.create_database("mlflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_cluster.create_database("airflow"),
        "DP_PIPELINE_DATA_SOURCE": str(adult_dir),
        "DP_PIPELINE_VENV_CACHE": str(REPOSITORY / ".local/venvs"),
        "DP_PIPELINE_RETRY_DELAY_SECONDS": str(RETRY_DELAY_SECONDS),
        # boto3's total attempts per request: a stopped S3 server fails the try in seconds.
        "AWS_MAX_ATTEMPTS": "2",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    }
    overrides["MLFLOW_S3_ENDPOINT_URL"] = overrides["AWS_ENDPOINT_URL_S3"]
    generated_secrets.update({name: overrides[name] for name in SECRET_VARIABLES})
    home = tmp_path_factory.mktemp("faults-stack")
    overrides["AIRFLOW_HOME"] = str(home / "airflow")
    with running_stack(home, overrides) as running:
        yield running


@pytest.fixture(scope="session")
def baseline_run(fault_stack):
    """A successful light DAG run, so that a Production version exists before the faults."""
    run = DagTest(fault_stack, LIGHT_CONF, fault_stack.log_dir / "dag-test-baseline.log")
    record = run.wait()
    assert record["state"] == "success", f"the baseline run failed; see {run.log_path}"
    production = production_versions(fault_stack)
    assert len(production) == 1, f"expected one Production version, found {production}"
    return {"run_id": run.run_id, "log": run.log_path, "production": production[0]}


@pytest.fixture
def dag_test(fault_stack):
    """Start DAG runs in the background; any still running when the test ends is killed."""
    started: list[DagTest] = []

    def start(name: str, conf: dict | None = None, env: dict | None = None) -> DagTest:
        log_path = fault_stack.log_dir / f"dag-test-{name}.log"
        run = DagTest(fault_stack, LIGHT_CONF if conf is None else conf, log_path, env)
        started.append(run)
        return run

    yield start
    for run in started:
        run.terminate()
