"""Serve the model that `make run` registered: ``python -m dp_serving.embedded`` from .venv.

The embedded stack's S3 and MLflow servers come from Airflow's environment, and the model
server needs TensorFlow, so this process starts the stack on the stores under .local and
runs ``python -m dp_serving`` with the lifecycle interpreter as a child process. Ctrl-C
or SIGTERM stops the model server first, then the stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from dp_stack import services, stack

logger = logging.getLogger(__name__)

DEFAULT_HOME = stack.REPOSITORY / ".local"
DEFAULT_LIFECYCLE_PYTHON = stack.REPOSITORY / ".venv-lifecycle/bin/python"
STOP_TIMEOUT_SECONDS = 40


def lifecycle_python() -> Path:
    return Path(os.environ.get("DP_PIPELINE_LIFECYCLE_PYTHON") or DEFAULT_LIFECYCLE_PYTHON)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dp_serving.embedded", description=__doc__)
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("DP_STACK_HOME", DEFAULT_HOME)),
        help="Folder with the stack's stores, as written by `make run` (default: .local).",
    )
    parser.add_argument("--host", help="Model server address (default: 127.0.0.1).")
    parser.add_argument("--port", type=int, help="Model server port (default: 8000).")
    return parser.parse_args(argv)


def stop_child(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # One SIGTERM: uvicorn finishes the requests in flight; a second signal would not wait.
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        logger.warning("Model server did not stop in %d s; killing it", STOP_TIMEOUT_SECONDS)
        process.kill()
        process.wait()


def serve(home: Path, extra_args: list[str]) -> int:
    python = lifecycle_python()
    if not python.exists():
        logger.error("%s not found; run `make install-lifecycle` first", python)
        return 2
    with stack.running_stack(home) as running:
        command = [str(python), "-m", "dp_serving", *extra_args]
        # A session of its own, so that Ctrl-C reaches only this process, which then stops
        # the child exactly once.
        process = subprocess.Popen(command, env=running.env, start_new_session=True)
        logger.info(
            "Started the model server (pid %s) on the registry at %s",
            process.pid,
            running.env["MLFLOW_TRACKING_URI"],
        )
        # SIGTERM ends this process through KeyboardInterrupt, like Ctrl-C does.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            return process.wait()
        except KeyboardInterrupt:
            logger.info("Stopping the model server")
            return 0
        finally:
            stop_child(process)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    extra_args = []
    if args.host:
        extra_args += ["--host", args.host]
    if args.port:
        extra_args += ["--port", str(args.port)]
    try:
        return serve(args.home, extra_args)
    except services.ServiceError as error:
        logger.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
