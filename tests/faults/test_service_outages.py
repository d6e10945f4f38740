"""Faults during a DAG run that Airflow's task retries absorb: S3 or MLflow down, a killed task.

Each test disturbs the real local stack while ``airflow dags test`` runs, then checks that
the run succeeded, that the disturbed task needed a second try, and that the DAG run still
registered exactly one model version.
"""

from __future__ import annotations

import hashlib
import signal
from datetime import timedelta

import psutil
import pytest
from faults_support import (
    earlier_tries,
    mlflow_client,
    mlflow_runs,
    model_versions,
    production_versions,
    registered_artifact,
    s3_client,
    task_states,
    wait_for,
    xcom_value,
)

from dp_pipeline import storage

pytestmark = pytest.mark.e2e

TASKS = ("ingest", "validate", "preprocess", "train", "evaluate", "register", "promote")
# Line that `airflow dags test` logs when a task's try failed and a retry is due.
RETRY_LINE = r"new_state=up_for_retry"


def assert_retried_once(stack, run_id: str, task_id: str) -> None:
    states = task_states(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], run_id)
    for task in TASKS:
        assert states[task]["state"] == "success", f"{task} is {states[task]['state']}"
    assert states[task_id]["try_number"] == 2, f"{task_id} ran {states[task_id]['try_number']}x"
    tries = earlier_tries(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], run_id, task_id)
    assert [row["try_number"] for row in tries] == [1], f"earlier tries of {task_id}: {tries}"
    others = [task for task in TASKS if task != task_id and states[task]["try_number"] != 1]
    assert not others, f"tasks other than {task_id} were retried: {others}"


def assert_one_version_in_production(stack, run_id: str) -> None:
    versions = model_versions(stack, run_id)
    assert len(versions) == 1, f"DAG run {run_id} registered {len(versions)} versions"
    assert len(mlflow_runs(stack, run_id)) == 1, f"DAG run {run_id} has several MLflow runs"
    assert production_versions(stack) == [versions[0].version]


def test_s3_outage_is_retried(fault_stack, baseline_run, dag_test):
    s3 = fault_stack.servers["s3"]
    run = dag_test("s3-outage")
    try:
        # preprocess reads the raw files from S3 as soon as its virtualenv starts.
        run.wait_for_log(r"\[DAG TEST\] starting task_id=preprocess")
        s3.stop()
        run.wait_for_task_state("preprocess", {"up_for_retry"})
    finally:
        s3.start()
    record = run.wait()

    assert record["state"] == "success", f"see {run.log_path}"
    assert_retried_once(fault_stack, run.run_id, "preprocess")
    log = run.log_text()
    assert "Could not connect to the endpoint URL" in log, "the S3 error is not in the task log"
    assert RETRY_LINE in log, "the retry is not in the task log"
    assert_one_version_in_production(fault_stack, run.run_id)


def test_mlflow_outage_during_register_is_retried(fault_stack, baseline_run, dag_test):
    mlflow_server = fault_stack.servers["mlflow"]
    # The DAG's default retry delay, because restarting the MLflow server takes 10 to 30 s on
    # two busy cores, longer than the fault stack's short delay allows for.
    run = dag_test("mlflow-outage", env={"DP_PIPELINE_RETRY_DELAY_SECONDS": "20"})
    try:
        run.wait_for_log(r"\[DAG TEST\] starting task_id=evaluate")
        mlflow_server.stop()
        run.wait_for_task_state("register", {"up_for_retry"})
    finally:
        mlflow_server.start()
    record = run.wait()

    assert record["state"] == "success", f"see {run.log_path}"
    states = task_states(fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], run.run_id)
    assert states["register"]["try_number"] >= 2, "register succeeded without a retry"
    log = run.log_text()
    assert "Connection refused" in log, "the MLflow connection error is not in the task log"
    assert RETRY_LINE in log, "the retry is not in the task log"
    assert_one_version_in_production(fault_stack, run.run_id)


def _training_process(run) -> psutil.Process | None:
    """Return the virtualenv process of the running train task, a descendant of the run."""
    for child in psutil.Process(run.process.pid).children(recursive=True):
        try:
            command = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if len(command) > 1 and command[1].endswith("/script.py"):
            return child
    return None


def test_killed_training_is_retried(fault_stack, baseline_run, dag_test):
    run = dag_test("killed-training")
    # Logged by the training code inside the virtualenv, just before TensorFlow starts.
    run.wait_for_log(r"dp_pipeline\.training: Training with DP-SGD")
    victim = wait_for(lambda: _training_process(run), 30, "the train task has no process")
    victim.send_signal(signal.SIGKILL)
    record = run.wait()

    assert record["state"] == "success", f"see {run.log_path}"
    assert_retried_once(fault_stack, run.run_id, "train")
    assert "died with <Signals.SIGKILL: 9>" in run.log_text(), "the kill is not in the task log"
    assert_one_version_in_production(fault_stack, run.run_id)

    # The killed try wrote no model, so the model in S3 dates from the second try, and it
    # is the one registered.
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    trained = xcom_value(metadata, run.run_id, "train")
    retry = run.task_instance("train")
    bucket, key = storage.parse_s3_uri(trained["model"])
    stored = s3_client(fault_stack).get_object(Bucket=bucket, Key=key)
    # S3 timestamps have whole seconds.
    assert stored["LastModified"] >= retry["start_date"] - timedelta(seconds=1)
    version = model_versions(fault_stack, run.run_id)[0]
    mlflow_run = mlflow_client(fault_stack).get_run(version.run_id)
    assert mlflow_run.data.metrics["train_seconds"] == trained["train_seconds"]
    registered = registered_artifact(fault_stack, version, "artifacts/model.keras")
    assert (
        hashlib.sha256(registered).hexdigest() == hashlib.sha256(stored["Body"].read()).hexdigest()
    )
