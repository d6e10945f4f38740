"""Airflow retry policy of the DAG's tasks: a permanent error fails the task at once.

Only the DAG file imports this module, because the task virtualenv has no Airflow. The
exception passed to the policy is usually the virtualenv operator's AirflowException, whose
message contains the message of the error raised inside the virtualenv. So the policy
recognises a permanent error by ``errors.PERMANENT_ERROR_MARK`` as well as by its type.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

from dp_pipeline.errors import PERMANENT_ERROR_MARK, PermanentError, is_permanent_message


class PermanentErrorRetryPolicy(RetryPolicy):
    """Fail without retry on bad data or bad parameters, and retry anything else as usual.

    Everything else includes S3 and MLflow errors, a killed task process and a virtualenv that
    failed to build, which the task's ``retries`` and ``retry_delay`` then govern.
    """

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Any = None,
    ) -> RetryDecision:
        if isinstance(exception, PermanentError) or is_permanent_message(str(exception)):
            return RetryDecision.fail(
                reason="permanent error: the input data or the parameters are invalid, "
                "so a retry would fail the same way"
            )
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"__type": type(self).__name__, "mark": PERMANENT_ERROR_MARK}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> PermanentErrorRetryPolicy:
        if data.get("mark") != PERMANENT_ERROR_MARK:
            raise ValueError(
                f"Serialized {cls.__name__} has the mark {data.get('mark')!r}, expected "
                f"{PERMANENT_ERROR_MARK!r}"
            )
        return cls()
