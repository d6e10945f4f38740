"""Run the model server: ``python -m dp_serving`` in the TensorFlow environment.

Every setting comes from the environment (see dp_serving.settings); --host and --port
override DP_SERVING_HOST and DP_SERVING_PORT.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dp_pipeline.config import ConfigurationError
from dp_serving.settings import Settings

logger = logging.getLogger("dp_serving")

# MLflow retries a failed request 7 times with exponential backoff by default, which would
# block a registry check or POST /admin/reload for minutes while the registry is down.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
# TensorFlow's C++ start-up notes (CUDA not found, CPU features) are not errors.
TENSORFLOW_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dp_serving", description=__doc__)
    parser.add_argument("--host", help="Listen address (default: DP_SERVING_HOST or 127.0.0.1).")
    parser.add_argument("--port", type=int, help="TCP port (default: DP_SERVING_PORT or 8000).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings.from_environment()
    except ConfigurationError as error:
        print(f"dp_serving: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        logger.error(
            "MLFLOW_TRACKING_URI is not set; set it to the MLflow tracking server, for "
            "example http://127.0.0.1:5000"
        )
        return 2
    for name, value in {**MLFLOW_CLIENT_DEFAULTS, **TENSORFLOW_DEFAULTS}.items():
        os.environ.setdefault(name, value)

    import uvicorn

    from dp_serving.app import create_app
    from dp_serving.model_store import ModelStore
    from dp_serving.tracking import RegistrySource

    host = args.host or settings.host
    port = args.port or settings.port
    source = RegistrySource(settings.model_name)
    logger.info(
        "Serving the Production version of %s from the registry at %s on http://%s:%d",
        settings.model_name,
        source.tracking_uri,
        host,
        port,
    )
    store = ModelStore(source, settings.poll_seconds)
    try:
        uvicorn.run(
            create_app(settings, store),
            host=host,
            port=port,
            log_config=None,
            access_log=settings.access_log,
            timeout_graceful_shutdown=30,
        )
    finally:
        source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
