"""Compare the model server with `mlflow models serve` on the same registered model.

Run from Airflow's environment with include/ on PYTHONPATH after `make run`, that is
`make bench-serving`, with `make ui`
stopped, because this script starts the embedded stack's S3 and MLflow servers on the
stores under .local. Pass --tracking-uri to use a tracking server that is already running
instead. Each model server runs alone on a free loopback port, in the TensorFlow
environment: first warm-up requests, then single-record requests one at a time for
latency, then 100-record batches from concurrent clients for throughput. Every load loop
stops at its request count or its time limit, whichever comes first. The results table
replaces the part of docs/serving.md between the benchmark markers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import loadgen

from dp_pipeline import adult, config
from dp_stack import stack as embedded_stack

REPOSITORY = Path(__file__).resolve().parents[2]

DOCS = REPOSITORY / "docs/serving.md"
START_MARKER = "<!-- benchmark results: start -->"
END_MARKER = "<!-- benchmark results: end -->"
START_TIMEOUT_SECONDS = 240
LIFECYCLE_PYTHON = Path(
    os.environ.get("DP_PIPELINE_LIFECYCLE_PYTHON") or REPOSITORY / ".venv-lifecycle/bin/python"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=REPOSITORY / ".local",
        help="Stores that `make run` wrote (default: .local).",
    )
    parser.add_argument(
        "--tracking-uri", help="Use this running MLflow server instead of starting the stack."
    )
    parser.add_argument(
        "--single-requests",
        type=int,
        default=2000,
        help="Single-record requests for the latency run (default: 2000).",
    )
    parser.add_argument(
        "--batch-requests",
        type=int,
        default=400,
        help="Batch requests for the throughput run (default: 400).",
    )
    parser.add_argument(
        "--batch-rows", type=int, default=100, help="Records per batch request (default: 100)."
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="Concurrent clients in the throughput run (default: 2).",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=120.0,
        help="Time limit of each load run in seconds (default: 120).",
    )
    parser.add_argument(
        "--docs", type=Path, default=DOCS, help="Markdown file whose benchmark section is replaced."
    )
    return parser.parse_args(argv)


def benchmark_records(count: int, seed: int) -> list[dict]:
    """Census records spread over every category and range, the same on every run."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        record = {}
        for column in adult.FEATURE_COLUMNS:
            if column in adult.CATEGORIES:
                record[column] = rng.choice(adult.CATEGORIES[column])
            else:
                low, high = adult.VALID_RANGES[column]
                record[column] = rng.randint(low, min(high, 100_000))
        records.append(record)
    return records


@dataclass(frozen=True)
class ServerUnderTest:
    """How to start one model server and what its requests look like."""

    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    predict_path: str
    records_key: str
    headers: dict[str, str]


def wait_until_up(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server at {url} not ready after {START_TIMEOUT_SECONDS} s")


@contextlib.contextmanager
def started(server: ServerUnderTest, port: int, log_path: Path):
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            server.command,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}{server.ready_path}", process, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(server: ServerUnderTest, base_url: str, args: argparse.Namespace) -> dict:
    url = f"{base_url}{server.predict_path}"
    single = json.dumps({server.records_key: benchmark_records(1, seed=1)}).encode()
    batch = json.dumps({server.records_key: benchmark_records(args.batch_rows, seed=2)}).encode()
    for body, count in ((single, 50), (batch, 20)):
        warm_up = loadgen.run_load(url, body, headers=server.headers, max_requests=count)
        if warm_up.failed:
            raise RuntimeError(f"{server.name} failed warm-up: {warm_up.failure_samples[:3]}")
    latency = loadgen.run_load(
        url,
        single,
        headers=server.headers,
        max_requests=args.single_requests,
        max_seconds=args.max_seconds,
    )
    throughput = loadgen.run_load(
        url,
        batch,
        headers=server.headers,
        concurrency=args.concurrency,
        max_requests=args.batch_requests,
        max_seconds=args.max_seconds,
    )
    succeeded = throughput.statuses.get(200, 0)
    return {
        "server": server.name,
        "single_requests": latency.requests,
        "single_p50_ms": latency.percentile(0.50) * 1000,
        "single_p99_ms": latency.percentile(0.99) * 1000,
        "batch_requests": throughput.requests,
        "batch_rows_per_second": succeeded * args.batch_rows / throughput.elapsed_seconds,
        "batch_p50_ms": throughput.percentile(0.50) * 1000,
        "failed": latency.failed + throughput.failed,
    }


def servers_under_test(env: dict[str, str], model_name: str) -> list[tuple[ServerUnderTest, int]]:
    ours_port, mlflow_port = loadgen.free_port(), loadgen.free_port()
    lifecycle_bin = LIFECYCLE_PYTHON.parent
    ours_env = {**env, "DP_SERVING_PORT": str(ours_port), "DP_SERVING_TOKEN": ""}
    # `mlflow models serve` starts `uvicorn` by name, so the environment's bin folder must
    # come first on PATH.
    mlflow_env = {**env, "PATH": f"{lifecycle_bin}{os.pathsep}{env.get('PATH', '')}"}
    ours = ServerUnderTest(
        name="dp_serving (this server)",
        command=[str(LIFECYCLE_PYTHON), "-m", "dp_serving"],
        env=ours_env,
        ready_path="/ready",
        predict_path="/predict",
        records_key="records",
        headers={},
    )
    mlflow_serve = ServerUnderTest(
        name="mlflow models serve",
        command=[
            str(lifecycle_bin / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{model_name}/Production",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(mlflow_port),
        ],
        env=mlflow_env,
        ready_path="/ping",
        predict_path="/invocations",
        records_key="dataframe_records",
        headers={},
    )
    return [(ours, ours_port), (mlflow_serve, mlflow_port)]


def hardware() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB memory"
    return f"{os.cpu_count()} cores of {model}{memory}, {platform.system()} {platform.release()}"


def markdown(results: list[dict], args: argparse.Namespace, model: str, load: str) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench-serving` "
        f"(benchmarks/serving/run.py) on {hardware()}, on {model}. Client and servers share "
        "the machine and talk over 127.0.0.1. Each server runs as one process with its "
        f"default settings, one after the other. {load}",
        "",
        f"Latency: up to {args.single_requests} single-record requests, one at a time. "
        f"Throughput: up to {args.batch_requests} requests of {args.batch_rows} records "
        f"from {args.concurrency} concurrent clients. Each run also stops after "
        f"{args.max_seconds:g} s, so the request columns give the number sent.",
        "",
        f"| Server | 1-record requests | p50 (ms) | p99 (ms) | {args.batch_rows}-record requests "
        "| rows/s | p50 (ms) | Failed requests |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result['server']} | {result['single_requests']} "
            f"| {result['single_p50_ms']:.1f} | {result['single_p99_ms']:.1f} "
            f"| {result['batch_requests']} | {result['batch_rows_per_second']:,.0f} "
            f"| {result['batch_p50_ms']:.1f} | {result['failed']} |"
        )
    return "\n".join(lines) + "\n"


def write_results(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    section = f"{START_MARKER}\n{table}{END_MARKER}"
    if START_MARKER in text and END_MARKER in text:
        before = text.split(START_MARKER, 1)[0]
        after = text.split(END_MARKER, 1)[1]
        text = f"{before}{section}{after}"
    else:
        text = f"{text.rstrip()}\n\n## Benchmark\n\n{section}\n"
    path.write_text(text, encoding="utf-8")


def run(env: dict[str, str], args: argparse.Namespace, log_dir: Path) -> list[dict]:
    model_name = config.MODEL_NAME.get(env)
    results = []
    for server, port in servers_under_test(env, model_name):
        log_path = log_dir / f"bench-{server.records_key}.log"
        print(f"Starting {server.name}, log in {log_path}", file=sys.stderr, flush=True)
        with started(server, port, log_path) as base_url:
            result = measure(server, base_url, args)
        print(json.dumps(result), file=sys.stderr, flush=True)
        results.append(result)
    return results


def served_version(env: dict[str, str]) -> str:
    import mlflow

    model_name = config.MODEL_NAME.get(env)
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    version = client.get_model_version_by_alias(model_name, "production")
    return f"{model_name} version {version.version}"


def load_average(at_start: float) -> str:
    """Describe the machine's load, because other processes distort the numbers."""
    return (
        f"The 1-minute load average was {at_start:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_load = os.getloadavg()[0]
    if args.tracking_uri:
        env = {**os.environ, "MLFLOW_TRACKING_URI": args.tracking_uri}
        env["PYTHONPATH"] = str(REPOSITORY / "include")
        log_dir = args.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        results = run(env, args, log_dir)
        model = served_version(env)
    else:
        with embedded_stack.running_stack(args.home) as running:
            results = run(running.env, args, running.log_dir)
            model = served_version(running.env)
    table = markdown(results, args, model, load_average(started_load))
    write_results(args.docs, table)
    print(table)
    return 0 if all(result["failed"] == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
