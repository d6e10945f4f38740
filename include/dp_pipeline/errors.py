"""Exceptions for the outcomes that a caller or an operator may act on.

A task's exception reaches Airflow only as text: the virtualenv operator raises an
AirflowException whose message contains ``str()`` of the exception raised in the virtualenv.
So a permanent error, one that a retry cannot fix, starts its message with
``PERMANENT_ERROR_MARK``, and the DAG's retry policy fails such a task at once.
"""

from __future__ import annotations

PERMANENT_ERROR_MARK = "[permanent error] "


class PipelineError(Exception):
    """Base class of the pipeline's own errors."""


class PermanentError(PipelineError):
    """An error that the same task would raise again on retry: bad data or bad parameters."""

    def __str__(self) -> str:
        return PERMANENT_ERROR_MARK + super().__str__()


def is_permanent_message(message: str) -> bool:
    """Return whether an error message, possibly wrapped by Airflow, is a permanent error's."""
    return any(line.startswith(PERMANENT_ERROR_MARK) for line in message.splitlines())


class SourceError(PipelineError):
    """The data source cannot be read or does not contain the expected files.

    Retried, because the usual causes (a network error, S3 or a mount not reachable) pass.
    """


class ChecksumMismatchError(PermanentError):
    """A downloaded file's SHA-256 differs from the published digest."""

    def __init__(self, file_name: str, expected: str, actual: str):
        self.file_name = file_name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{file_name}: SHA-256 mismatch, expected {expected} but found {actual}. "
            "The file is corrupt or not the published release; set the DAG param "
            "verify_checksums to false to accept a new data drop on purpose."
        )


class DataValidationError(PermanentError):
    """A data file violates the Adult schema."""

    def __init__(
        self,
        file_name: str,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ):
        self.file_name = file_name
        self.line = line
        self.column = column
        self.value = value
        location = file_name
        if line is not None:
            location += f" line {line}"
        if column is not None:
            location += f" column {column!r}"
        detail = message if value is None else f"{message}, found {value!r}"
        super().__init__(f"{location}: {detail}")


class PrivacyParameterError(PermanentError):
    """The requested privacy parameters cannot give a meaningful guarantee."""


class RegistryTimeoutError(PipelineError):
    """A model version did not reach the expected state before the deadline."""
