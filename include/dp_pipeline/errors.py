"""Exceptions for the outcomes that a caller or an operator may act on."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of the pipeline's own errors."""


class SourceError(PipelineError):
    """The data source cannot be read or does not contain the expected files."""


class ChecksumMismatchError(PipelineError):
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


class DataValidationError(PipelineError):
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


class PrivacyParameterError(PipelineError):
    """The requested privacy parameters cannot give a meaningful guarantee."""


class RegistryTimeoutError(PipelineError):
    """A model version did not reach the expected state before the deadline."""
