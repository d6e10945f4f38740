"""Command line of the embedded stack.

``python -m dp_stack run`` starts the S3 and MLflow servers, runs the DAG once with
``airflow dags test`` and prints what the run produced. ``python -m dp_stack ui`` serves
the MLflow UI over the same stores until interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from dp_pipeline import config
from dp_stack import stack, summary

DEFAULT_HOME = stack.REPOSITORY / ".local"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dp_stack", description=__doc__)
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("DP_STACK_HOME", DEFAULT_HOME)),
        help="Folder for the S3 data, databases, virtualenv cache and logs (default: .local).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Run the DAG once and print its outcome.")
    run.add_argument(
        "--conf",
        type=json.loads,
        default={},
        help="DAG params as a JSON object, for example '{\"epochs\": 5}'.",
    )
    commands.add_parser("ui", help="Serve the MLflow UI over the stack's stores until Ctrl-C.")
    return parser.parse_args(argv)


def run_once(home: Path, conf: dict) -> int:
    with stack.running_stack(home) as running:
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        log_path = running.log_dir / f"dag-test-{started}.log"
        record = stack.test_dag(running, conf, log_path)
        outcome = summary.summarize(
            record,
            running.env["MLFLOW_TRACKING_URI"],
            config.EXPERIMENT_NAME.get(running.env),
            config.MODEL_NAME.get(running.env),
        )
    print()
    for line in outcome.lines(
        f"{running.env['MLFLOW_TRACKING_URI']} while `make ui` runs "
        f"(MLflow run {outcome.mlflow_run_id})"
    ):
        print(line)
    print(f"Full log: {log_path}")
    return 0 if record["state"] == "success" else 1


def serve_ui(home: Path) -> int:
    with stack.running_stack(home) as running:
        print(f"MLflow UI at {running.env['MLFLOW_TRACKING_URI']}; press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    if args.command == "run":
        return run_once(args.home, args.conf)
    return serve_ui(args.home)


if __name__ == "__main__":
    sys.exit(main())
