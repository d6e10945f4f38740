"""DAG integrity: the DAG folder parses cleanly and wires the lifecycle as intended."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import REPOSITORY

DAG_ID = "adult_income_dp"
EXPECTED_EDGES = {
    ("ingest", "validate"),
    ("ingest", "preprocess"),
    ("validate", "preprocess"),
    ("validate", "register"),
    ("preprocess", "train"),
    ("preprocess", "evaluate"),
    ("preprocess", "register"),
    ("train", "evaluate"),
    ("train", "register"),
    ("evaluate", "register"),
    ("evaluate", "promote"),
    ("register", "promote"),
}
EXPECTED_PARAMS = {
    "epochs",
    "batch_size",
    "learning_rate",
    "l2_norm_clip",
    "noise_multiplier",
    "target_epsilon",
    "delta",
    "accuracy_threshold",
    "epsilon_budget",
    "validation_fraction",
    "seed",
    "train_baseline",
    "data_source",
    "verify_checksums",
}
HEAVY_MODULES = ("tensorflow", "pandas", "mlflow", "numpy", "dp_accounting", "boto3")


@pytest.fixture(scope="session")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPOSITORY / "dags"))


@pytest.fixture(scope="session")
def dag(dag_bag):
    return dag_bag.dags[DAG_ID]


def test_dag_bag_has_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}


def test_dag_bag_contains_only_pipeline_dag(dag_bag):
    assert set(dag_bag.dag_ids) == {DAG_ID}


def test_dag_task_ids(dag):
    assert set(dag.task_ids) == {
        "ingest",
        "validate",
        "preprocess",
        "train",
        "evaluate",
        "register",
        "promote",
    }


def test_dag_edges(dag):
    edges = {(upstream, task.task_id) for task in dag.tasks for upstream in task.upstream_task_ids}
    assert edges == EXPECTED_EDGES


def test_dag_has_no_cycles(dag):
    dag.check_cycle()


@pytest.mark.parametrize(
    "task_id", ["ingest", "validate", "preprocess", "train", "evaluate", "register", "promote"]
)
def test_task_retries_and_isolation(dag, task_id):
    task = dag.get_task(task_id)
    assert task.retries >= 1
    assert task.task_type == "_PythonVirtualenvDecoratedOperator"
    assert task.system_site_packages is False
    assert task.venv_cache_path


def test_dag_scheduling_policy(dag):
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.schedule == "@weekly"


def test_dag_tags(dag):
    assert "differential-privacy" in dag.tags


def test_params_have_defaults_and_descriptions(dag):
    params = dag.params
    assert set(params.keys()) == EXPECTED_PARAMS
    for name in EXPECTED_PARAMS:
        param = params.get_param(name)
        assert param.description, f"param {name} has no description"
        nullable = "null" in param.schema.get("type", [])
        assert param.has_value or nullable, f"param {name} has no default"


def test_params_defaults_validate(dag):
    resolved = dag.params.validate()
    assert resolved["delta"] == 1e-5
    assert resolved["target_epsilon"] is None


def test_param_rejects_out_of_range_value(dag):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="minimum"):
        dag.params.get_param("epochs").resolve(0)


def test_requirements_pin_every_package():
    requirements = (REPOSITORY / "include/requirements-lifecycle.txt").read_text().splitlines()
    packages = [line for line in requirements if line and not line.startswith("#")]
    assert packages
    assert all("==" in line for line in packages), "every lifecycle requirement must be pinned"
    assert "tensorflow==2.15.1" in packages
    assert "tensorflow_privacy==0.9.0" in packages


def test_parsing_imports_no_heavy_module():
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"DagBag(dag_folder={str(REPOSITORY / 'dags')!r})\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY / "include")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == [], f"parsing the DAG imported {imported}"
