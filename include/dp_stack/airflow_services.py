"""A local twin of the Compose deployment: the same services as local processes.

The twin reads docker-compose.yaml and .env.example, generates a value for every
``change-me-...`` secret, and then changes only what a single machine needs:

- service host names become 127.0.0.1 and every port is a free one, so several twins and
  other test runs can share the machine;
- PostgreSQL is the server at ``postgres_server`` (the machine's own, trust auth). Fresh
  databases named ``<database_prefix>_airflow``, ``..._mlflow`` and ``..._mlflow_auth``
  replace the Compose databases. Every URL names the psycopg2 driver, because
  SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not installed;
- the Celery broker is ``redis_url`` (the machine's Redis, without a password), and the
  tasks go to a queue of this twin's own, so that workers of another twin on the same
  Redis do not take them;
- /opt/airflow paths become folders of the repository and of ``home``;
- the object store is rclone's S3 server, because SeaweedFS is not installed here.

MLflow runs through the image's own entrypoint (mlflow/entrypoint.sh) with the Compose
command, so it has basic auth and its auth database as in Compose. Airflow runs
``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` (and ``celery worker``
processes with CeleryExecutor), each its own process, after ``airflow db migrate``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

from dp_stack import compose, services
from dp_stack.airflow_api import AirflowApi, AirflowApiError
from dp_stack.stack import DAG_ID, REPOSITORY
from dp_stack.worker_hostname import WORKER_HOSTNAME_VARIABLE

logger = logging.getLogger(__name__)

COMPOSE_FILE = REPOSITORY / "docker-compose.yaml"
ENV_EXAMPLE = REPOSITORY / ".env.example"
DEFAULT_POSTGRES_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PLACEHOLDER_PREFIX = "change-me-"

# Every Airflow service shares the x-airflow-common-env anchor, so one of them is enough.
AIRFLOW_ENV_SOURCE = "airflow-scheduler"
MLFLOW_SERVICE = "mlflow"

# Variables of the calling process that would leak into the twin's services.
_INHERITED_PREFIXES = ("AIRFLOW", "MLFLOW_", "AWS_", "DP_PIPELINE_", "DP_STACK_", "PYTHONPATH")
_DATABASE_URL = re.compile(
    r"(?P<scheme>(?:db\+)?postgresql(?:\+\w+)?)://[^@/\s]*@postgres:5432/(?P<database>\w+)"
)
_REDIS_URL = re.compile(r"redis://[^@/\s]*@?redis:6379/\d+")

# The scheduler waits for its running tasks on SIGTERM before it exits. The tests stop
# the twin between runs, so a longer wait would only delay a stuck process.
STOP_TIMEOUT_SECONDS = 30


def generate_secrets(variables: dict[str, str]) -> dict[str, str]:
    """Replace every ``change-me-...`` value with a new random secret of the right form."""
    from cryptography.fernet import Fernet

    generated = dict(variables)
    for name, value in variables.items():
        if not value.startswith(PLACEHOLDER_PREFIX):
            continue
        if name == "AIRFLOW_FERNET_KEY":
            generated[name] = Fernet.generate_key().decode()
        else:
            # .env.example allows only letters, digits and . _ ~ = - in secrets.
            generated[name] = secrets.token_hex(24)
    return generated


@dataclass
class TwinPorts:
    """Free loopback ports of one twin, drawn when it is configured."""

    api: int = field(default_factory=services.free_port)
    mlflow: int = field(default_factory=services.free_port)
    s3: int = field(default_factory=services.free_port)
    scheduler_health: int = field(default_factory=services.free_port)
    worker_logs: int = field(default_factory=services.free_port)
    trigger_logs: int = field(default_factory=services.free_port)


@dataclass
class TwinSettings:
    """Settings of a twin beyond host names: its state folder, servers and executor.

    ``overrides`` are set last in the Airflow environment, for example
    DP_PIPELINE_DATA_SOURCE for a machine without internet access.
    """

    home: Path
    postgres_server: str = DEFAULT_POSTGRES_SERVER
    database_prefix: str = "dp_pipeline_airflow_services"
    redis_url: str = DEFAULT_REDIS_URL
    venv_cache: Path = REPOSITORY / ".local/venvs"
    executor: str = "LocalExecutor"
    celery_workers: int = 2
    # False keeps the scheduler from creating scheduled runs, which Airflow does as soon as
    # a DAG with a cron schedule is unpaused, next to the run that a test triggered.
    use_job_schedule: bool = True
    overrides: dict[str, str] = field(default_factory=dict)


def _local_process_environment() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES)
    }
    # The services' console scripts (airflow, mlflow, rclone) sit beside this interpreter.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    return env


class LocalTwin:
    """The Compose services as local processes, configured from the Compose file."""

    def __init__(self, settings: TwinSettings) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.log_dir = self.home / "logs"
        self.ports = TwinPorts()
        self.queue = f"dp-twin-{uuid.uuid4().hex[:10]}"
        variables = generate_secrets(compose.read_env_file(ENV_EXAMPLE))
        self.variables = variables
        self.compose = compose.load_compose(COMPOSE_FILE, variables)
        self.databases = {
            name: f"{settings.database_prefix}_{name}"
            for name in ("airflow", "mlflow", "mlflow_auth")
        }
        self.username = variables["AIRFLOW_ADMIN_USERNAME"]
        self.password = variables["AIRFLOW_ADMIN_PASSWORD"]
        self.env = self._airflow_environment()
        self.mlflow_env = self._mlflow_environment()
        self._storage: list[services.Service] = []
        self._airflow: list[services.Service] = []

    # --- configuration -------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def mlflow_credentials(self) -> dict[str, str]:
        """The MLflow client variables that the pipeline's tasks use."""
        return {
            name: self.env[name]
            for name in (
                "MLFLOW_TRACKING_URI",
                "MLFLOW_TRACKING_USERNAME",
                "MLFLOW_TRACKING_PASSWORD",
            )
        }

    def database_url(self, compose_name: str, scheme: str = "postgresql+psycopg2") -> str:
        server = urlparse(self.settings.postgres_server)
        return f"{scheme}://{server.netloc}/{self.databases[compose_name]}"

    def localize(self, value: str) -> str:
        """Rewrite a value of the Compose file for this machine (see the module docstring)."""

        def database(match: re.Match) -> str:
            scheme = match["scheme"]
            if "+" not in scheme.removeprefix("db+"):
                scheme += "+psycopg2"
            return self.database_url(match["database"], scheme)

        value = _DATABASE_URL.sub(database, value)
        value = _REDIS_URL.sub(self.settings.redis_url, value)
        replacements = {
            "airflow-apiserver:8080": f"127.0.0.1:{self.ports.api}",
            "object-store:8333": f"127.0.0.1:{self.ports.s3}",
            "mlflow:5000": f"127.0.0.1:{self.ports.mlflow}",
            "/opt/airflow/include": str(REPOSITORY / "include"),
            "/opt/airflow/venv-cache": str(self.settings.venv_cache),
            "/opt/airflow/auth": str(self.home / "auth"),
        }
        for container_value, local_value in replacements.items():
            value = value.replace(container_value, local_value)
        return value

    def _airflow_environment(self) -> dict[str, str]:
        env = _local_process_environment()
        container = compose.service_environment(self.compose, AIRFLOW_ENV_SOURCE)
        env.update({name: self.localize(value) for name, value in container.items()})
        airflow_home = self.home / "airflow"
        env.update(
            {
                # Set by the Airflow image or by Compose's ports in the deployment.
                "AIRFLOW_HOME": str(airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPOSITORY / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPOSITORY / "plugins"),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(
                    self.ports.scheduler_health
                ),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports.worker_logs),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports.trigger_logs),
                "AIRFLOW__CORE__EXECUTOR": self.settings.executor,
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(self.settings.use_job_schedule),
                "DP_PIPELINE_VENV_CACHE": str(self.settings.venv_cache),
                # Compose points the links at MLflow's published port; here it is drawn.
                "DP_PIPELINE_MLFLOW_UI_URL": self.mlflow_url,
            }
        )
        env.update(self.settings.overrides)
        return env

    def _mlflow_environment(self) -> dict[str, str]:
        env = _local_process_environment()
        container = compose.service_environment(self.compose, MLFLOW_SERVICE)
        env.update({name: self.localize(value) for name, value in container.items()})
        # Temporary files of the server stay in the twin's home. NOTE: mlflow/entrypoint.sh
        # writes its auth config to /tmp/mlflow-auth.* whatever TMPDIR is, and never
        # removes it, so each start of the twin leaves one such folder.
        env["TMPDIR"] = str(self.home / "mlflow-tmp")
        return env

    def reconfigure(self, **changes) -> None:
        """Change settings (executor, celery_workers, use_job_schedule, overrides).

        Takes effect at the next ``start_airflow``; call ``stop_airflow`` first.
        """
        for name, value in changes.items():
            if not hasattr(self.settings, name):
                raise TypeError(f"TwinSettings has no field {name!r}")
            setattr(self.settings, name, value)
        self.env = self._airflow_environment()

    # --- services ------------------------------------------------------------------------

    def _mlflow_service(self) -> services.Service:
        command = [
            self.localize(argument)
            .replace("--host=0.0.0.0", "--host=127.0.0.1")
            .replace("--port=5000", f"--port={self.ports.mlflow}")
            for argument in compose.service_command(self.compose, MLFLOW_SERVICE)
        ]
        Path(self.mlflow_env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        return services.Service(
            "MLflow server (basic auth)",
            ["sh", str(REPOSITORY / "mlflow/entrypoint.sh"), *command],
            self.log_dir / "mlflow.log",
            ready_url=f"{self.mlflow_url}/health",
            env=self.mlflow_env,
        )

    def start_storage(self) -> None:
        """Create the databases and start the S3 and MLflow servers."""
        for name in self.databases:
            services.recreate_postgres_database(self.database_url(name))
        buckets = [
            self.env.get("DP_PIPELINE_BUCKET") or "dp-pipeline",
            "mlflow",
        ]
        s3_env = {**self.env, "AWS_ENDPOINT_URL_S3": self.s3_url}
        s3 = services.s3_server(s3_env, self.home / "s3", buckets, self.log_dir / "s3.log")
        self._storage.append(s3.start())
        self._storage.append(self._mlflow_service().start())

    def migrate(self) -> None:
        """Migrate the metadata database and write the simple auth manager's password file."""
        airflow_home = Path(self.env["AIRFLOW_HOME"])
        airflow_home.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / "airflow-db-migrate.log"
        with open(log_path, "w") as log:
            result = subprocess.run(
                [services.executable("airflow"), "db", "migrate"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            raise services.ServiceError(f"airflow db migrate failed; see {log_path}")
        passwords = Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        passwords.parent.mkdir(parents=True, exist_ok=True)
        passwords.write_text(json.dumps({self.username: self.password}) + "\n")
        passwords.chmod(0o600)

    def _airflow_service(self, name: str, args: list[str], **probe) -> services.Service:
        return services.Service(
            name,
            [services.executable("airflow"), *args],
            self.log_dir / f"{name}.log",
            env=self.env,
            **probe,
        )

    def _dag_is_parsed(self) -> bool:
        # The DAG is readable through the API once the DAG processor has stored it.
        try:
            self.api().get_dag(DAG_ID)
        except (AirflowApiError, requests.RequestException):
            return False
        return True

    def _airflow_services(self) -> list[services.Service]:
        api = self._airflow_service(
            "airflow-apiserver",
            ["api-server", "--host", "127.0.0.1", "--port", str(self.ports.api), "--workers", "1"],
            ready_url=f"{self.api_url}/api/v2/monitor/health",
        )
        dag_processor = self._airflow_service(
            "airflow-dag-processor", ["dag-processor"], ready_check=self._dag_is_parsed
        )
        scheduler = self._airflow_service(
            "airflow-scheduler",
            ["scheduler"],
            ready_url=f"http://127.0.0.1:{self.ports.scheduler_health}/health",
        )
        triggerer = self._airflow_service(
            "airflow-triggerer",
            ["triggerer"],
            ready_port=("127.0.0.1", self.ports.trigger_logs),
        )
        started = [api, dag_processor, scheduler, triggerer]
        if self.settings.executor == "CeleryExecutor":
            started += [
                self._celery_worker(index) for index in range(1, self.settings.celery_workers + 1)
            ]
        return started

    def worker_hostname(self, index: int) -> str:
        return f"worker-{index}.{self.queue}"

    def _celery_worker(self, index: int) -> services.Service:
        hostname = self.worker_hostname(index)
        env = {
            **self.env,
            WORKER_HOSTNAME_VARIABLE: hostname,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "dp_stack.worker_hostname.hostname",
        }
        args = [
            "celery",
            "worker",
            "--celery-hostname",
            f"worker-{index}@{self.queue}",
            "--concurrency",
            "1",
            "--queues",
            self.queue,
            # The workers share this machine's log folder with the API server, which reads
            # task logs from it, so they need no log server of their own.
            "--skip-serve-logs",
        ]

        def ping() -> bool:
            return self._celery_ping(f"worker-{index}@{self.queue}")

        service = services.Service(
            f"airflow-worker-{index}",
            [services.executable("airflow"), *args],
            self.log_dir / f"airflow-worker-{index}.log",
            env=env,
            ready_check=ping,
        )
        return service

    def _celery_ping(self, destination: str) -> bool:
        result = subprocess.run(
            [
                services.executable("celery"),
                "--app",
                "airflow.providers.celery.executors.celery_executor.app",
                "inspect",
                "ping",
                "--timeout",
                "2",
                "-d",
                destination,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.returncode == 0

    def start_airflow(self) -> None:
        """Start the Airflow services at once, then wait until each one is ready."""
        self._airflow = self._airflow_services()
        try:
            for service in self._airflow:
                service.launch()
            for service in self._airflow:
                service.wait_ready(timeout=240)
        except BaseException:
            self.stop_airflow()
            raise
        logger.info("Airflow UI and API at %s (%s)", self.api_url, self.settings.executor)

    def stop_airflow(self) -> None:
        for service in reversed(self._airflow):
            service.stop(timeout=STOP_TIMEOUT_SECONDS)
        self._airflow = []

    def restart_airflow(self, **changes) -> None:
        """Stop the Airflow services, apply ``reconfigure(**changes)`` and start them again."""
        self.stop_airflow()
        self.reconfigure(**changes)
        self.start_airflow()

    def stop(self) -> None:
        self.stop_airflow()
        for service in reversed(self._storage):
            service.stop()
        self._storage = []

    def api(self) -> AirflowApi:
        return AirflowApi(self.api_url, self.username, self.password)


@contextlib.contextmanager
def running_twin(settings: TwinSettings) -> Iterator[LocalTwin]:
    """Start the whole twin and stop every process that it started on exit."""
    twin = LocalTwin(settings)
    try:
        twin.start_storage()
        twin.migrate()
        twin.start_airflow()
        yield twin
    finally:
        twin.stop()
