"""Rerunning tasks of a finished DAG run changes nothing that the first run decided.

``airflow tasks test DAG TASK RUN_ID`` runs one task again through the real operator, with
the templates rendered for the same run id and the upstream XComs of that run, which is
what a retry or a cleared task does. tests/faults/test_concurrent_runs.py clears and reruns
whole DAG runs under the scheduler.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from faults_support import (
    LIGHT_CONF,
    DagTest,
    mlflow_runs,
    model_versions,
    production_versions,
    s3_keys,
    xcom_value,
)

from dp_pipeline import config, storage
from dp_pipeline.registry import PROMOTION_TAG
from dp_stack import services
from dp_stack.stack import DAG_ID

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def latest_run(fault_stack, baseline_run):
    """A DAG run newer than the baseline, so that its version is the one in Production."""
    run = DagTest(fault_stack, LIGHT_CONF, fault_stack.log_dir / "dag-test-rerun.log")
    record = run.wait()
    assert record["state"] == "success", f"see {run.log_path}"
    return run.run_id


def rerun_task(stack, task_id: str, run_id: str) -> str:
    """Run one task of an existing DAG run again and return its output."""
    log_path = stack.log_dir / f"tasks-test-{task_id}-{time.time_ns()}.log"
    with open(log_path, "w") as log:
        result = subprocess.run(
            [services.executable("airflow"), "tasks", "test", DAG_ID, task_id, run_id],
            env=stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    output = log_path.read_text()
    assert result.returncode == 0, f"airflow tasks test {task_id} failed; see {log_path}"
    assert "new_state=success" in output, f"{task_id} did not succeed again; see {log_path}"
    return output


def run_prefix(stack, run_id: str) -> str:
    return storage.run_prefix(config.BUCKET.get(stack.env), DAG_ID, run_id)


def test_ingest_rerun_overwrites_same_prefix(fault_stack, latest_run):
    all_runs = storage.join(f"s3://{config.BUCKET.get(fault_stack.env)}", "runs", DAG_ID)
    before = s3_keys(fault_stack, all_runs)
    prefix = run_prefix(fault_stack, latest_run)

    rerun_task(fault_stack, "ingest", latest_run)

    after = s3_keys(fault_stack, all_runs)
    assert set(after) == set(before), f"new objects: {sorted(set(after) - set(before))}"
    raw = [key for key in after if key.startswith(storage.parse_s3_uri(prefix)[1] + "/raw/")]
    assert len(raw) == 2, f"expected adult.data and adult.test under {prefix}/raw, found {raw}"
    for key in raw:
        assert after[key] >= before[key], f"{key} was not written again"


def test_register_rerun_returns_same_version(fault_stack, latest_run):
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    first = xcom_value(metadata, latest_run, "register")
    versions_before = [version.version for version in model_versions(fault_stack)]

    output = rerun_task(fault_stack, "register", latest_run)

    assert f"already registered {first['model_name']} version {first['version']}" in output
    assert [version.version for version in model_versions(fault_stack)] == versions_before
    assert [version.version for version in model_versions(fault_stack, latest_run)] == [
        first["version"]
    ]
    assert len(mlflow_runs(fault_stack, latest_run)) == 1
    assert xcom_value(metadata, latest_run, "register") == first


def test_promote_rerun_keeps_production(fault_stack, latest_run):
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    first = xcom_value(metadata, latest_run, "promote")
    assert first["promoted"] is True, f"the run's version was not promoted: {first}"

    rerun_task(fault_stack, "promote", latest_run)

    assert production_versions(fault_stack) == [first["version"]]
    assert xcom_value(metadata, latest_run, "promote") == first


def test_old_run_rerun_does_not_demote_newer(fault_stack, baseline_run, latest_run):
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    production = production_versions(fault_stack)
    old_version = xcom_value(metadata, baseline_run["run_id"], "register")["version"]
    assert production != [old_version], "the baseline version is still in Production"

    rerun_task(fault_stack, "promote", baseline_run["run_id"])

    assert production_versions(fault_stack) == production
    old = [v for v in model_versions(fault_stack) if v.version == old_version][0]
    assert old.current_stage == "Archived"
    assert old.tags[PROMOTION_TAG] == "superseded"
    decision = xcom_value(metadata, baseline_run["run_id"], "promote")
    assert decision["promoted"] is False
    assert (
        f"version {production[0]}, registered later, is already in Production"
        in (decision["reason"])
    )
