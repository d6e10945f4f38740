"""Environment variables that configure the pipeline, declared once with types and defaults.

Credentials are read by the libraries that use them (boto3 reads ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``; MLflow reads ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``), so they never pass through this module, DAG params or XCom.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

UCI_ADULT_ARCHIVE = "https://archive.ics.uci.edu/static/public/2/adult.zip"


class ConfigurationError(ValueError):
    """An environment variable contains a value that cannot be used."""


@dataclass(frozen=True)
class EnvironmentVariable(Generic[T]):
    """A typed environment variable with a default and a description."""

    name: str
    parse: Callable[[str], T]
    default: T
    description: str

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        """Return the value in ``environ`` (default: the process environment), parsed."""
        raw = (os.environ if environ is None else environ).get(self.name)
        if raw is None or raw == "":
            return self.default
        try:
            return self.parse(raw)
        except ValueError as error:
            raise ConfigurationError(
                f"Environment variable {self.name} has the invalid value {raw!r}: {error}"
            ) from error


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError("expected a positive number")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("expected a number from 0 to 1")
    return value


DATA_SOURCE = EnvironmentVariable(
    "DP_PIPELINE_DATA_SOURCE",
    str,
    UCI_ADULT_ARCHIVE,
    "Where ingest reads adult.data and adult.test: an http(s) URL of the UCI zip archive, "
    "a local folder or zip file, or an s3:// prefix.",
)
BUCKET = EnvironmentVariable(
    "DP_PIPELINE_BUCKET",
    str,
    "dp-pipeline",
    "S3 bucket that holds each DAG run's data, reports and model files.",
)
MODEL_NAME = EnvironmentVariable(
    "DP_PIPELINE_MODEL_NAME",
    str,
    "adult-income-dp",
    "Name of the registered model in the MLflow model registry.",
)
EXPERIMENT_NAME = EnvironmentVariable(
    "DP_PIPELINE_EXPERIMENT",
    str,
    "adult-income-dp",
    "MLflow experiment that receives one run per DAG run.",
)
VENV_CACHE = EnvironmentVariable(
    "DP_PIPELINE_VENV_CACHE",
    str,
    "/tmp/dp-pipeline-venvs",
    "Folder where Airflow caches the isolated TensorFlow Privacy virtualenv.",
)
SCHEDULE = EnvironmentVariable(
    "DP_PIPELINE_SCHEDULE",
    str,
    "@weekly",
    "Airflow schedule of the retraining DAG: a cron expression or preset such as @weekly.",
)
REGISTRY_WAIT_SECONDS = EnvironmentVariable(
    "DP_PIPELINE_REGISTRY_WAIT_SECONDS",
    _positive_int,
    300,
    "Maximum time in seconds that register waits for a new model version to become READY.",
)
RETRY_DELAY_SECONDS = EnvironmentVariable(
    "DP_PIPELINE_RETRY_DELAY_SECONDS",
    _positive_int,
    20,
    "Seconds that Airflow waits before it retries a failed task; read when the DAG is parsed.",
)
MIN_ACCURACY = EnvironmentVariable(
    "DP_PIPELINE_MIN_ACCURACY",
    _fraction,
    0.80,
    "Lowest test accuracy that any run may promote to Production. A run's accuracy_threshold "
    "param can raise this limit but not lower it.",
)
MAX_EPSILON = EnvironmentVariable(
    "DP_PIPELINE_MAX_EPSILON",
    _positive_float,
    2.0,
    "Largest epsilon that any run may promote to Production. A run's epsilon_budget param can "
    "lower this limit but not raise it.",
)
