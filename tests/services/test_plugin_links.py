"""The MLflow links plugin: its URLs, its loading, and the links the API server returns."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest
from services_support import DAG_ID
from support import REPOSITORY

PLUGIN_FILE = REPOSITORY / "plugins/mlflow_links.py"
REGISTRATION = {"model_name": "adult-income-dp", "version": "7", "mlflow_run_id": "abc123"}
BASE = "http://mlflow.example:5000"


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("mlflow_links_under_test", PLUGIN_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def returns(values: dict):
    return lambda task_id: values.get(task_id)


@pytest.mark.parametrize("task_id", ["register", "promote"])
def test_link_uses_own_xcom(plugin, task_id):
    read = returns({task_id: {**REGISTRATION, "stage": "Production"}})
    run = plugin.link_url(plugin.RUN_LINK_NAME, DAG_ID, task_id, read, BASE)
    version = plugin.link_url(plugin.MODEL_VERSION_LINK_NAME, DAG_ID, task_id, read, BASE)
    assert run == f"{BASE}/#/runs/abc123"
    assert version == f"{BASE}/#/models/adult-income-dp/versions/7"


def test_train_link_uses_register_xcom(plugin):
    read = returns({"train": {"model_uri": "s3://bucket/model.keras"}, "register": REGISTRATION})
    assert plugin.link_url(plugin.RUN_LINK_NAME, DAG_ID, "train", read, BASE) == (
        f"{BASE}/#/runs/abc123"
    )


def test_train_link_empty_before_register(plugin):
    read = returns({"train": {"model_uri": "s3://bucket/model.keras"}})
    assert plugin.link_url(plugin.RUN_LINK_NAME, DAG_ID, "train", read, BASE) == ""


@pytest.mark.parametrize("task_id", ["ingest", "validate", "preprocess", "evaluate"])
def test_other_tasks_have_no_link(plugin, task_id):
    read = returns({"register": REGISTRATION, "promote": REGISTRATION})
    assert plugin.link_url(plugin.RUN_LINK_NAME, DAG_ID, task_id, read, BASE) == ""


def test_other_dags_have_no_link(plugin):
    read = returns({"register": REGISTRATION})
    assert plugin.link_url(plugin.RUN_LINK_NAME, "another_dag", "register", read, BASE) == ""


@pytest.mark.parametrize(
    "value",
    [None, "a string", {"model_name": "m", "version": "1"}, {**REGISTRATION, "version": ""}],
)
def test_incomplete_xcom_gives_no_link(plugin, value):
    read = returns({"register": value})
    assert plugin.link_url(plugin.RUN_LINK_NAME, DAG_ID, "register", read, BASE) == ""


def test_link_quotes_model_name(plugin):
    read = returns({"register": {**REGISTRATION, "model_name": "income model/v2"}})
    url = plugin.link_url(plugin.MODEL_VERSION_LINK_NAME, DAG_ID, "register", read, BASE)
    assert url == f"{BASE}/#/models/income%20model%2Fv2/versions/7"


def test_ui_url_prefers_its_own_variable(plugin):
    environ = {
        "DP_PIPELINE_MLFLOW_UI_URL": "http://127.0.0.1:5000/",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    }
    assert plugin.mlflow_ui_url(environ) == "http://127.0.0.1:5000"


def test_ui_url_falls_back_to_tracking_uri(plugin):
    assert plugin.mlflow_ui_url({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}) == (
        "http://mlflow:5000"
    )


def test_no_ui_url_gives_no_link(plugin):
    read = returns({"register": REGISTRATION})
    assert plugin.link_url(plugin.RUN_LINK_NAME, DAG_ID, "register", read, "") == ""


@pytest.mark.services
def test_airflow_lists_plugin(twin):
    result = subprocess.run(
        [str(REPOSITORY / ".venv/bin/airflow"), "plugins", "--output", "json"],
        env=twin.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    listing = json.loads(result.stdout.strip().splitlines()[-1])
    plugins = {entry["name"]: entry for entry in listing}
    assert "dp_pipeline_mlflow_links" in plugins
    links = plugins["dp_pipeline_mlflow_links"]["global_operator_extra_links"]
    assert len(links) == 2


@pytest.mark.services
@pytest.mark.slow
def test_api_server_returns_mlflow_links(twin, api, rest_run):
    run_id = rest_run["triggered"]["dag_run_id"]
    promoted = api.xcom_value(DAG_ID, run_id, "promote")
    run_url = f"{twin.mlflow_url}/#/runs/{promoted['mlflow_run_id']}"
    version_url = (
        f"{twin.mlflow_url}/#/models/{promoted['model_name']}/versions/{promoted['version']}"
    )
    for task_id in ("train", "register", "promote"):
        links = api.extra_links(DAG_ID, run_id, task_id)
        assert links["MLflow run"] == run_url, task_id
        assert links["MLflow model version"] == version_url, task_id
    ingest_links = api.extra_links(DAG_ID, run_id, "ingest")
    assert set(ingest_links.values()) == {None}
