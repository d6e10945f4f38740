"""A run triggered through Airflow's REST API on the local twin of the Compose stack."""

from __future__ import annotations

import pytest
from services_support import DAG_ID, failed_tasks_report

pytestmark = [pytest.mark.services, pytest.mark.slow]

TASK_IDS = {"ingest", "validate", "preprocess", "train", "evaluate", "register", "promote"}


def test_rest_run_succeeds(twin, api, rest_run):
    run_id = rest_run["triggered"]["dag_run_id"]
    assert rest_run["finished"]["state"] == "success", failed_tasks_report(twin, api, run_id)


def test_rest_run_is_manual_with_default_conf(rest_run):
    finished = rest_run["finished"]
    assert finished["run_type"] == "manual"
    assert finished["conf"] == {}
    assert finished["note"] == "triggered by tests/services"


def test_every_task_ran_once_and_succeeded(api, rest_run):
    instances = api.task_instances(DAG_ID, rest_run["triggered"]["dag_run_id"])
    assert {instance["task_id"] for instance in instances} == TASK_IDS
    for instance in instances:
        assert instance["state"] == "success", instance["task_id"]
        assert instance["try_number"] == 1, instance["task_id"]


def test_new_version_is_in_production(twin, mlflow_client, rest_run):
    from dp_pipeline import config
    from dp_pipeline.registry import RUN_ID_TAG

    run_id = rest_run["triggered"]["dag_run_id"]
    experiment = mlflow_client.get_experiment_by_name(config.EXPERIMENT_NAME.get(twin.env))
    assert experiment is not None
    found = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'"
    )
    assert len(found) == 1
    model_name = config.MODEL_NAME.get(twin.env)
    versions = mlflow_client.search_model_versions(
        f"name = '{model_name}' and run_id = '{found[0].info.run_id}'"
    )
    assert len(versions) == 1
    assert versions[0].current_stage == "Production"


def test_promote_xcom_matches_registry(api, mlflow_client, rest_run):
    promoted = api.xcom_value(DAG_ID, rest_run["triggered"]["dag_run_id"], "promote")
    assert promoted["promoted"] is True
    version = mlflow_client.get_model_version(promoted["model_name"], promoted["version"])
    assert version.run_id == promoted["mlflow_run_id"]
    assert version.current_stage == "Production"


def test_mlflow_rejects_anonymous_requests(twin):
    import requests

    response = requests.get(
        f"{twin.mlflow_url}/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        timeout=10,
    )
    assert response.status_code == 401
