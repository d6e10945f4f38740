"""The DAG's retry policy: permanent errors fail at once, everything else keeps its retries.

The policy runs in Airflow's worker. An error raised in the task virtualenv arrives there as
the virtualenv operator's AirflowException, with the error's message below a first line
about the exit status, and these tests build it that way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from airflow.sdk.definitions.retry_policy import RetryAction
from airflow.sdk.exceptions import AirflowException
from support import REPOSITORY

from dp_pipeline.errors import (
    ChecksumMismatchError,
    DataValidationError,
    PrivacyParameterError,
    RegistryTimeoutError,
    SourceError,
)
from dp_pipeline.retry_policy import PermanentErrorRetryPolicy

DAG_ID = "adult_income_dp"


def from_virtualenv(error: BaseException) -> AirflowException:
    """The exception that the virtualenv operator raises when ``error`` ended the task."""
    return AirflowException(f"Process returned non-zero exit status 1.\n{error}")


PERMANENT = {
    "validation": DataValidationError("adult.data", "expected an integer", line=3, column="age"),
    "checksum": ChecksumMismatchError("adult.test", "a2a9", "ffff"),
    "privacy": PrivacyParameterError("delta must be in (0, 1/n)"),
}
TRANSIENT = {
    "source": SourceError("Could not download https://archive.ics.uci.edu/adult.zip"),
    "registry": RegistryTimeoutError("version 3 is PENDING_REGISTRATION after 300 s"),
    "S3": AirflowException(
        "Process returned non-zero exit status 1.\n"
        'Could not connect to the endpoint URL: "http://127.0.0.1:9000/dp-pipeline/raw"'
    ),
    "killed process": subprocess.CalledProcessError(-9, ["python", "script.py"]),
    "virtualenv build": AirflowException("Unable to create new virtual environment in /tmp/v"),
}


@pytest.mark.parametrize("case", list(PERMANENT))
def test_policy_fails_permanent_error(case):
    policy = PermanentErrorRetryPolicy()
    for error in (PERMANENT[case], from_virtualenv(PERMANENT[case])):
        decision = policy.evaluate(error, try_number=1, max_tries=3)
        assert decision.action is RetryAction.FAIL, f"{case}: {error!r}"
        assert decision.reason


@pytest.mark.parametrize("case", list(TRANSIENT))
def test_policy_retries_transient_error(case):
    decision = PermanentErrorRetryPolicy().evaluate(TRANSIENT[case], try_number=1, max_tries=3)
    assert decision.action is RetryAction.DEFAULT, f"{case}: {TRANSIENT[case]!r}"


def test_permanent_message_keeps_location():
    message = str(PERMANENT["validation"])
    assert message == "[permanent error] adult.data line 3 column 'age': expected an integer"


def test_mark_inside_a_line_is_not_permanent():
    error = AirflowException("Process returned non-zero exit status 1.\nsaw '[permanent error] '")
    decision = PermanentErrorRetryPolicy().evaluate(error, try_number=1, max_tries=3)
    assert decision.action is RetryAction.DEFAULT


def test_policy_round_trips():
    policy = PermanentErrorRetryPolicy()
    data = policy.serialize()
    assert json.loads(json.dumps(data)) == data
    assert isinstance(PermanentErrorRetryPolicy.deserialize(data), PermanentErrorRetryPolicy)
    with pytest.raises(ValueError, match="expected '\\[permanent error\\] '"):
        PermanentErrorRetryPolicy.deserialize({**data, "mark": "other"})


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPOSITORY / "dags"))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_every_task_has_policy(dag):
    for task in dag.tasks:
        assert isinstance(task.retry_policy, PermanentErrorRetryPolicy), task.task_id
        assert task.retries == 2, task.task_id


def test_serialized_dag_flags_policy(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.to_dict(dag)
    tasks = serialized["dag"]["tasks"]
    assert tasks, "the serialized DAG has no tasks"
    for task in tasks:
        assert task["__var"].get("has_retry_policy") is True, task["__var"]["task_id"]
    restored = DagSerialization.from_dict(serialized)
    assert all(task.has_retry_policy for task in restored.tasks)


def test_retry_delay_follows_environment():
    script = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"dag = DagBag(dag_folder={str(REPOSITORY / 'dags')!r}).dags[{DAG_ID!r}]\n"
        "print(json.dumps(sorted({t.retry_delay.total_seconds() for t in dag.tasks})))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPOSITORY / "include"),
        "DP_PIPELINE_RETRY_DELAY_SECONDS": "7",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [7.0]


def test_default_retry_delay(dag):
    if os.environ.get("DP_PIPELINE_RETRY_DELAY_SECONDS"):
        pytest.skip("DP_PIPELINE_RETRY_DELAY_SECONDS is set in the environment")
    assert {task.retry_delay for task in dag.tasks} == {timedelta(seconds=20)}
