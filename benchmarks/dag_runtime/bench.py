"""Time the default DAG from trigger to success on the local twin of the Compose stack.

Starts the twin (dp_stack.airflow_services, LocalExecutor), then measures:

- a warm run: the task virtualenv is already in the repository's .local/venvs (one
  untimed run builds it first if it is missing);
- a cold run: the Airflow services restart with DP_PIPELINE_VENV_CACHE pointing at an
  empty temporary folder, so the first task also builds the virtualenv.

Each run is triggered through the REST API and polled every second. The report gives
the time from the POST to the success state, each task's duration as Airflow records
it, and the machine's load averages before and after. Results are printed and written
as JSON to .local/bench-dag/.

    .venv/bin/python benchmarks/dag_runtime/bench.py --data-source ../shared/data/adult
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "include"))

from dp_stack.airflow_services import TwinSettings, running_twin  # noqa: E402
from dp_stack.stack import DAG_ID  # noqa: E402

logger = logging.getLogger("bench_dag")

RUN_TIMEOUT_SECONDS = 1800
TASK_ORDER = ("ingest", "validate", "preprocess", "train", "evaluate", "register", "promote")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-source",
        default=os.environ.get("ADULT_DATA_DIR", str(REPOSITORY.parent / "shared/data/adult")),
        help="Folder with adult.data and adult.test (default: ADULT_DATA_DIR or "
        "../shared/data/adult).",
    )
    parser.add_argument(
        "--postgres-server",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432"
        ),
        help="PostgreSQL server for the twin's fresh dp_pipeline_bench_dag_* databases.",
    )
    parser.add_argument("--skip-cold", action="store_true", help="Measure only the warm run.")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPOSITORY / ".local/bench-dag",
        help="Folder for the JSON results (default: .local/bench-dag).",
    )
    return parser.parse_args(argv)


def load_averages() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed_run(twin, label: str) -> dict:
    """Trigger the default DAG, wait for it to finish and return the timings."""
    api = twin.api()
    api.set_paused(DAG_ID, False)
    load_before = load_averages()
    started = time.monotonic()
    triggered = api.trigger(DAG_ID, conf={}, note=f"benchmark: {label} run")
    finished = api.wait_for_run(
        DAG_ID, triggered["dag_run_id"], timeout=RUN_TIMEOUT_SECONDS, poll_seconds=1.0
    )
    elapsed = time.monotonic() - started
    instances = {ti["task_id"]: ti for ti in api.task_instances(DAG_ID, triggered["dag_run_id"])}
    tasks = [
        {
            "task_id": task_id,
            "state": instances[task_id]["state"],
            "duration_seconds": instances[task_id]["duration"],
            "try_number": instances[task_id]["try_number"],
        }
        for task_id in TASK_ORDER
        if task_id in instances
    ]
    return {
        "label": label,
        "run_id": triggered["dag_run_id"],
        "state": finished["state"],
        "trigger_to_finish_seconds": round(elapsed, 1),
        "tasks": tasks,
        "load_before": load_before,
        "load_after": load_averages(),
    }


def has_cached_virtualenv(folder: Path) -> bool:
    return folder.is_dir() and any(path.is_dir() for path in folder.glob("venv-*"))


def print_report(result: dict) -> None:
    print(f"\n{result['label']} run {result['run_id']}: {result['state']}")
    print(f"  trigger to {result['state']}: {result['trigger_to_finish_seconds']:.1f} s")
    task_total = 0.0
    slowest = max(result["tasks"], key=lambda task: task["duration_seconds"] or 0)
    for task in result["tasks"]:
        duration = task["duration_seconds"] or 0.0
        task_total += duration
        marker = "  <- slowest" if task is slowest else ""
        print(f"  {task['task_id']:<11} {duration:7.1f} s  try {task['try_number']}{marker}")
    overhead = result["trigger_to_finish_seconds"] - task_total
    print(f"  {'scheduling':<11} {overhead:7.1f} s  (trigger to finish minus the task durations)")
    print(f"  load average before {result['load_before']}, after {result['load_after']}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    warm_cache = REPOSITORY / ".local/venvs"
    with tempfile.TemporaryDirectory(prefix="bench-dag-") as scratch:
        settings = TwinSettings(
            home=Path(scratch) / "twin",
            postgres_server=args.postgres_server,
            database_prefix="dp_pipeline_bench_dag",
            venv_cache=warm_cache,
            use_job_schedule=False,
            overrides={"DP_PIPELINE_DATA_SOURCE": args.data_source},
        )
        results = []
        with running_twin(settings) as twin:
            if not has_cached_virtualenv(warm_cache):
                logger.info("No virtualenv in %s yet; an untimed run builds it", warm_cache)
                timed_run(twin, "untimed build")
            results.append(timed_run(twin, "warm"))
            if not args.skip_cold:
                cold_cache = Path(scratch) / "empty-venv-cache"
                cold_cache.mkdir()
                twin.restart_airflow(venv_cache=cold_cache)
                results.append(timed_run(twin, "cold"))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "runs": results,
    }
    for result in results:
        print_report(result)
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"results-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nResults in {path}")
    return 0 if all(result["state"] == "success" for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
