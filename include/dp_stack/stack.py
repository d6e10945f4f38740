"""The embedded stack: Airflow on SQLite, a local MLflow server and a local S3 server.

Every endpoint, credential and database URL comes from the environment, with the
defaults below for a laptop; .env.example documents each name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dp_stack import services

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
DAG_ID = "adult_income_dp"


def stack_environment(home: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Return the process environment with every unset stack variable at its local default.

    The S3 credentials default to fixed local values because the server only listens on
    the loopback interface.
    """
    home = home.resolve()
    defaults = {
        "AWS_ACCESS_KEY_ID": "dp-pipeline-local",
        "AWS_SECRET_ACCESS_KEY": "dp-pipeline-local-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{home}/mlflow.db",
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow",
        "DP_PIPELINE_BUCKET": "dp-pipeline",
        "DP_PIPELINE_VENV_CACHE": str(home / "venvs"),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPOSITORY / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPOSITORY / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    env = dict(os.environ)
    for name, value in defaults.items():
        if not env.get(name):
            env[name] = value
    env.update(overrides or {})
    if not env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{env['AIRFLOW_HOME']}/airflow.db"
    # The MLflow server writes artifacts to the same S3 server that the tasks use.
    env.setdefault("MLFLOW_S3_ENDPOINT_URL", env["AWS_ENDPOINT_URL_S3"])
    include = str(REPOSITORY / "include")
    paths = [include, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


@dataclass
class Stack:
    """Running local services and the environment that points at them."""

    home: Path
    env: dict[str, str]
    # The running servers by role ("s3", "mlflow"), so that a test can stop and restart one.
    servers: dict[str, services.Service] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def airflow(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [services.executable("airflow"), *args], env=self.env, text=True, **kwargs
        )


@contextlib.contextmanager
def running_stack(home: Path, overrides: dict[str, str] | None = None):
    """Start the S3 and MLflow servers, prepare Airflow's database, and stop all on exit."""
    env = stack_environment(home, overrides)
    stack = Stack(home, env)
    buckets = [env["DP_PIPELINE_BUCKET"], _bucket_of(env["MLFLOW_ARTIFACTS_DESTINATION"])]
    try:
        s3 = services.s3_server(env, home / "s3", buckets, stack.log_dir / "s3.log")
        stack.servers["s3"] = s3.start()
        mlflow = services.mlflow_server(env, stack.log_dir / "mlflow.log")
        stack.servers["mlflow"] = mlflow.start()
        prepare_airflow(stack)
        yield stack
    finally:
        for service in reversed(stack.servers.values()):
            service.stop()


def _bucket_of(uri: str) -> str:
    if not uri.startswith("s3://"):
        raise ValueError(f"MLFLOW_ARTIFACTS_DESTINATION must be an s3:// URI, found {uri!r}")
    return uri[len("s3://") :].split("/", 1)[0]


def prepare_airflow(stack: Stack) -> None:
    """Migrate Airflow's metadata database and parse the DAG into it."""
    Path(stack.env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    for args in (("db", "migrate"), ("dags", "reserialize")):
        log_path = stack.log_dir / f"airflow-{'-'.join(args)}.log"
        with open(log_path, "w") as log:
            result = stack.airflow(*args, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise services.ServiceError(f"airflow {' '.join(args)} failed; see {log_path}")


def test_dag(stack: Stack, conf: dict | None, log_path: Path) -> dict:
    """Run the DAG once with ``airflow dags test`` and return the new run's record.

    The full output goes to ``log_path``; task state changes are echoed to stderr.
    """
    args = ["dags", "test", DAG_ID]
    if conf:
        args += ["--conf", json.dumps(conf)]
    before = {run["run_id"] for run in list_runs(stack)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [services.executable("airflow"), *args],
            env=stack.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for line in process.stdout:
            log.write(line)
            _echo_progress(line)
        process.wait()
    new_runs = [run for run in list_runs(stack) if run["run_id"] not in before]
    if not new_runs:
        raise services.ServiceError(f"airflow dags test started no run; see {log_path}")
    return new_runs[0]


_PROGRESS = re.compile(
    r"^(?P<time>\S+).*?(?:\[DAG TEST\] (?P<task>starting task_id=\S+)"
    r"|(?P<state>new_state=\w+)|(?P<run>DagRun Finished: dag_id=\S+).*?(?P<run_state>state=\w+))"
)


def _echo_progress(line: str) -> None:
    match = _PROGRESS.search(line)
    if match:
        words = [value for key, value in match.groupdict().items() if value and key != "time"]
        print(f"{match['time'][11:19]}  {' '.join(words)}", file=sys.stderr, flush=True)


def list_runs(stack: Stack) -> list[dict]:
    result = stack.airflow("dags", "list-runs", DAG_ID, "--output", "json", capture_output=True)
    if result.returncode != 0:
        raise services.ServiceError(f"airflow dags list-runs failed: {result.stderr[-2000:]}")
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("["):
            return json.loads(line)
    return []
