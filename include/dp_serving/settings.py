"""Environment variables of the model server, with types and defaults.

The server reads MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD
only through the MLflow client, so they are not declared here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from dp_pipeline import config
from dp_pipeline.config import EnvironmentVariable

# A census row in JSON takes about 350 bytes; 1 KiB per row leaves room for whitespace.
BODY_BYTES_PER_ROW = 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _non_negative_seconds(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65_535:
        raise ValueError("expected a TCP port from 1 to 65535")
    return value


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


HOST = EnvironmentVariable(
    "DP_SERVING_HOST",
    str,
    "127.0.0.1",
    "Address that the server listens on; 0.0.0.0 in a container.",
)
PORT = EnvironmentVariable("DP_SERVING_PORT", _port, 8000, "TCP port that the server listens on.")
POLL_SECONDS = EnvironmentVariable(
    "DP_SERVING_POLL_SECONDS",
    _non_negative_seconds,
    10.0,
    "Seconds between two checks of the registry for a new Production version; 0 checks "
    "only at start and on POST /admin/reload.",
)
MAX_BATCH_ROWS = EnvironmentVariable(
    "DP_SERVING_MAX_BATCH_ROWS",
    _positive_int,
    10_000,
    "Maximum number of records in one POST /predict request.",
)
MAX_BODY_BYTES = EnvironmentVariable(
    "DP_SERVING_MAX_BODY_BYTES",
    _positive_int,
    None,
    f"Maximum request body in bytes. Default: {BODY_BYTES_PER_ROW} bytes per allowed row.",
)
TOKEN = EnvironmentVariable(
    "DP_SERVING_TOKEN",
    str,
    "",
    "If set, /predict, /model and /admin/reload require 'Authorization: Bearer <token>'.",
)
LOG_LEVEL = EnvironmentVariable(
    "DP_SERVING_LOG_LEVEL", _log_level, "INFO", "Level of the server's log."
)
ACCESS_LOG = EnvironmentVariable(
    "DP_SERVING_ACCESS_LOG",
    _boolean,
    False,
    "Log one line per request (uvicorn's access log).",
)


@dataclass(frozen=True)
class Settings:
    """The server's configuration, read once at start."""

    model_name: str = config.MODEL_NAME.default
    host: str = HOST.default
    port: int = PORT.default
    poll_seconds: float = POLL_SECONDS.default
    max_batch_rows: int = MAX_BATCH_ROWS.default
    max_body_bytes: int | None = None
    token: str = TOKEN.default
    log_level: str = LOG_LEVEL.default
    access_log: bool = ACCESS_LOG.default

    @property
    def body_limit_bytes(self) -> int:
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_batch_rows * BODY_BYTES_PER_ROW

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: the process environment).

        Raises ConfigurationError, naming the variable, for a value that cannot be parsed.
        """
        return cls(
            model_name=config.MODEL_NAME.get(environ),
            host=HOST.get(environ),
            port=PORT.get(environ),
            poll_seconds=POLL_SECONDS.get(environ),
            max_batch_rows=MAX_BATCH_ROWS.get(environ),
            max_body_bytes=MAX_BODY_BYTES.get(environ),
            token=TOKEN.get(environ),
            log_level=LOG_LEVEL.get(environ),
            access_log=ACCESS_LOG.get(environ),
        )
