"""Client of the Airflow 3 REST API (v2) with the simple auth manager's login.

Only the calls that the tests and the benchmark need: a JWT from ``/auth/token``, DAG
pause state, triggering a run with a ``conf`` the way the UI's trigger form sends it,
and reading runs, task instances, XCom and extra links.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

import requests

logger = logging.getLogger(__name__)

FINISHED_RUN_STATES = {"success", "failed"}
REQUEST_TIMEOUT_SECONDS = 30


class AirflowApiError(RuntimeError):
    """A REST API call failed or a run did not reach the expected state in time."""


class AirflowApi:
    """A logged-in session against one Airflow API server."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.session = requests.Session()
        self._token: str | None = None

    def token(self) -> str:
        """Log in with the user and password and return a new access token (JWT)."""
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        if response.status_code != 201:
            raise AirflowApiError(
                f"Login of {self.username!r} at {self.base_url}/auth/token failed with "
                f"HTTP {response.status_code}: {response.text[:500]}"
            )
        return response.json()["access_token"]

    def request(self, method: str, path: str, **kwargs) -> dict:
        """Send a request to ``/api/v2{path}`` and return the JSON body.

        Logs in on first use, and once more when the token has expired (HTTP 401).
        """
        for attempt in range(2):
            if self._token is None:
                self._token = self.token()
            response = self.session.request(
                method,
                f"{self.base_url}/api/v2{path}",
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=REQUEST_TIMEOUT_SECONDS,
                **kwargs,
            )
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            if response.status_code >= 400:
                raise AirflowApiError(
                    f"{method} /api/v2{path} failed with HTTP {response.status_code}: "
                    f"{response.text[:1000]}"
                )
            return response.json() if response.content else {}
        raise AssertionError("unreachable")

    def get_dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}")

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict | None = None, note: str | None = None) -> dict:
        """Create a manual run with the body that the UI's trigger form sends."""
        body = {
            "conf": conf or {},
            "logical_date": None,
            "data_interval_start": None,
            "data_interval_end": None,
        }
        if note:
            body["note"] = note
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def get_run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def list_runs(self, dag_id: str, run_type: str | None = None) -> list[dict]:
        params = {"order_by": "-run_after", "limit": 100}
        if run_type:
            params["run_type"] = run_type
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def mark_run_failed(self, dag_id: str, run_id: str) -> dict:
        """Set a run to failed, which also stops its running tasks."""
        return self.request(
            "PATCH", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}", json={"state": "failed"}
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self.request("GET", path, params={"limit": 100})["task_instances"]

    def xcom_value(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        path = (
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
            f"/xcomEntries/{key}"
        )
        return self.request("GET", path, params={"deserialize": "true"})["value"]

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"
        return self.request("GET", path)["extra_links"]

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float,
        states: set[str] = FINISHED_RUN_STATES,
        poll_seconds: float = 2.0,
    ) -> dict:
        """Poll a run until its state is one of ``states``; raise when ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        last_state = None
        while True:
            run = self.get_run(dag_id, run_id)
            if run["state"] != last_state:
                logger.info("DAG run %s of %s is %s", run_id, dag_id, run["state"])
                last_state = run["state"]
            if run["state"] in states:
                return run
            if time.monotonic() > deadline:
                raise AirflowApiError(
                    f"DAG run {run_id} of {dag_id} is still {run['state']} after {timeout:g} s; "
                    f"expected one of {sorted(states)}"
                )
            time.sleep(poll_seconds)

    def wait_for_new_run(self, dag_id: str, run_type: str, known: set[str], timeout: float) -> dict:
        """Wait until a run of ``run_type`` whose id is not in ``known`` appears."""
        deadline = time.monotonic() + timeout
        while True:
            for run in self.list_runs(dag_id, run_type=run_type):
                if run["dag_run_id"] not in known:
                    return run
            if time.monotonic() > deadline:
                raise AirflowApiError(
                    f"No new {run_type} run of {dag_id} appeared within {timeout:g} s"
                )
            time.sleep(2)
