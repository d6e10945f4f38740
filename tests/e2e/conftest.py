"""The whole stack for end-to-end tests: MLflow on the local PostgreSQL, S3 and Airflow.

The MLflow backend store is a fresh database on the PostgreSQL server at
TEST_POSTGRES_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432). The virtualenv cache
is the repository's own .local/venvs, so the TensorFlow environment is built only once.
"""

from __future__ import annotations

import os

import pytest
from support import REPOSITORY, TEST_S3_CREDENTIALS, free_port


def postgres_url(database: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the stack ships psycopg2.
    server = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
    return f"{server.rstrip('/')}/{database}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory, adult_dir):
    from dp_stack import services
    from dp_stack.stack import running_stack

    backend = postgres_url("dp_pipeline_mlflow_e2e")
    services.recreate_postgres_database(backend)
    overrides = {
        **TEST_S3_CREDENTIALS,
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_BACKEND_STORE_URI": backend,
        "DP_PIPELINE_DATA_SOURCE": str(adult_dir),
        "DP_PIPELINE_VENV_CACHE": str(REPOSITORY / ".local/venvs"),
    }
    overrides["MLFLOW_S3_ENDPOINT_URL"] = overrides["AWS_ENDPOINT_URL_S3"]
    home = tmp_path_factory.mktemp("stack")
    overrides["AIRFLOW_HOME"] = str(home / "airflow")
    with running_stack(home, overrides) as running:
        yield running


@pytest.fixture(scope="session")
def pipeline_run(stack):
    """One DAG run with the default params, and what it produced."""
    from dp_pipeline import config
    from dp_stack.stack import test_dag
    from dp_stack.summary import summarize

    record = test_dag(stack, None, stack.log_dir / "dag-test-default.log")
    outcome = summarize(
        record,
        stack.env["MLFLOW_TRACKING_URI"],
        config.EXPERIMENT_NAME.get(stack.env),
        config.MODEL_NAME.get(stack.env),
    )
    return {"record": record, "summary": outcome, "log": stack.log_dir / "dag-test-default.log"}
