"""Local processes that stand in for the Compose services: an S3 server and MLflow.

Each service is configured only through environment variables, the same names that the
Compose deployment sets, so the pipeline code cannot tell the two apart.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 120


class ServiceError(RuntimeError):
    """A local service failed to start or stopped unexpectedly."""


@dataclass
class Service:
    """A background process with a readiness probe and a log file.

    The probe is ``ready_url`` (HTTP 200), else ``ready_check`` (a callable that returns
    True once the service works), else ``ready_port`` (a TCP port accepts connections).
    """

    name: str
    command: list[str]
    log_path: Path
    ready_url: str | None = None
    ready_port: tuple[str, int] | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    process: subprocess.Popen | None = None
    ready_check: Callable[[], bool] | None = None

    def start(self) -> Service:
        """Start the process and wait until its probe succeeds."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> Service:
        """Start the process without waiting, so that several services can start at once."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.ready_port and _port_open(*self.ready_port):
            raise ServiceError(
                f"Cannot start {self.name}: port {self.ready_port[1]} on "
                f"{self.ready_port[0]} is already in use. Stop the other process or choose "
                "another port in the environment."
            )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        logger.info("Started %s (pid %s), log in %s", self.name, self.process.pid, self.log_path)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.process.returncode} while starting; "
                    f"see {self.log_path}"
                )
            if self._is_ready():
                return
            time.sleep(0.5)
        raise ServiceError(f"{self.name} was not ready after {timeout:g} s; see {self.log_path}")

    def _is_ready(self) -> bool:
        if self.ready_url:
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError):
                return False
        if self.ready_check is not None:
            return self.ready_check()
        return self.ready_port is not None and _port_open(*self.ready_port)

    def stop(self, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The process group, because MLflow's server forks workers.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s (pid %s) did not stop within %g s of SIGTERM; sending SIGKILL",
                self.name,
                self.process.pid,
                timeout,
            )
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        logger.info("Stopped %s", self.name)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def host_and_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"Expected a URL with a host and a port, found {url!r}")
    return parsed.hostname, parsed.port


def executable(name: str) -> str:
    """Find a console script next to the running interpreter, then on PATH."""
    import sys

    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"{name} not found; run `make install` first")
    return found


def s3_server(env: dict[str, str], root: Path, buckets: list[str], log_path: Path) -> Service:
    """Build rclone's S3 server over a local folder, whose subfolders are the buckets."""
    for bucket in buckets:
        (root / bucket).mkdir(parents=True, exist_ok=True)
    host, port = host_and_port(env["AWS_ENDPOINT_URL_S3"])
    command = [
        executable("rclone"),
        "serve",
        "s3",
        "--addr",
        f"{host}:{port}",
        "--config",
        "/dev/null",
        str(root),
    ]
    # rclone reads --auth-key from RCLONE_AUTH_KEY, which keeps the secret key out of the
    # process list. The variable is a CSV list, so the "key,secret" pair is one quoted field.
    pair = f"{env['AWS_ACCESS_KEY_ID']},{env['AWS_SECRET_ACCESS_KEY']}"
    server_env = {**env, "RCLONE_AUTH_KEY": '"' + pair.replace('"', '""') + '"'}
    return Service("S3 server (rclone)", command, log_path, ready_port=(host, port), env=server_env)


def mlflow_server(env: dict[str, str], log_path: Path) -> Service:
    """Build the MLflow tracking server, which proxies artifacts to S3."""
    host, port = host_and_port(env["MLFLOW_TRACKING_URI"])
    command = [
        executable("mlflow"),
        "server",
        "--backend-store-uri",
        env["MLFLOW_BACKEND_STORE_URI"],
        "--artifacts-destination",
        env["MLFLOW_ARTIFACTS_DESTINATION"],
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    return Service(
        "MLflow server", command, log_path, ready_url=f"http://{host}:{port}/health", env=env
    )


def recreate_postgres_database(url: str) -> None:
    """Drop and create the database named in a postgresql:// URL, for a clean test run."""
    import psycopg2
    from psycopg2 import sql

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()
