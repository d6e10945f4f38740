"""The Compose deployment's services as local processes, shared by this suite's tests.

One twin (``dp_stack.airflow_services``) runs for the whole session. Each test module
sets the executor and schedule it needs with ``services_support.configure``, which
restarts the Airflow services only when they change. The databases, S3 and MLflow stay
up throughout.

Airflow's metadata database and MLflow's two databases are fresh databases on the
PostgreSQL server at TEST_POSTGRES_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432),
named dp_pipeline_airflow_services_*. The Celery tests use the Redis at
TEST_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import os

import pytest
from services_support import DAG_ID, RUN_TIMEOUT_SECONDS, configure
from support import REPOSITORY


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "services: starts the Compose services as local processes (minutes)"
    )
    config.addinivalue_line("markers", "browser: drives the Airflow UI in headless Chromium")
    config.addinivalue_line("markers", "slow: takes more than a minute")


def _postgres_server() -> str:
    return os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def twin(tmp_path_factory, adult_dir):
    """The whole twin, started once, with LocalExecutor and no scheduled runs."""
    from dp_stack.airflow_services import TwinSettings, running_twin

    settings = TwinSettings(
        home=tmp_path_factory.mktemp("twin"),
        postgres_server=_postgres_server(),
        database_prefix="dp_pipeline_airflow_services",
        redis_url=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        venv_cache=REPOSITORY / ".local/venvs",
        use_job_schedule=False,
        overrides={"DP_PIPELINE_DATA_SOURCE": str(adult_dir)},
    )
    with running_twin(settings) as running:
        yield running


@pytest.fixture
def local_twin(twin):
    """The twin with LocalExecutor and no scheduled runs."""
    return configure(twin, "LocalExecutor", use_job_schedule=False)


@pytest.fixture
def api(twin):
    return twin.api()


@pytest.fixture(scope="session")
def mlflow_client(twin):
    """An MLflow client logged in to the twin's MLflow server (basic auth)."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        for name, value in twin.mlflow_credentials.items():
            patch.setenv(name, value)
        yield mlflow.MlflowClient(twin.mlflow_url)


@pytest.fixture(scope="session")
def rest_run(twin):
    """One run of the default DAG, triggered through the REST API as the UI does."""
    configure(twin, "LocalExecutor", use_job_schedule=False)
    api = twin.api()
    api.set_paused(DAG_ID, False)
    triggered = api.trigger(DAG_ID, conf={}, note="triggered by tests/services")
    finished = api.wait_for_run(DAG_ID, triggered["dag_run_id"], timeout=RUN_TIMEOUT_SECONDS)
    return {"triggered": triggered, "finished": finished}
