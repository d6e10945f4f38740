"""DAG runs under Airflow's real scheduler: two triggered at once, a cleared run, a restart.

``airflow dags test`` runs one DAG run in its own process and has no scheduler, so it cannot
show max_active_runs or a cleared run being picked up again. These tests start an API
server, a DAG processor and a scheduler (LocalExecutor) on the fault stack's PostgreSQL
metadata database. The scheduler creates no runs of its own (use_job_schedule is off), so
the only runs are those that the tests trigger.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import pytest
from faults_support import (
    LIGHT_CONF,
    dag_run,
    earlier_tries,
    mlflow_runs,
    model_versions,
    production_versions,
    query,
    s3_keys,
    task_states,
    wait_for,
    xcom_value,
)
from support import free_port

from dp_pipeline import config
from dp_pipeline.registry import PROMOTION_TAG
from dp_stack import services
from dp_stack.stack import DAG_ID

pytestmark = pytest.mark.e2e

SCHEDULED_RUN_TIMEOUT_SECONDS = 600
FINISHED = {"success", "failed"}


def _job_alive(metadata_url: str, job_type: str) -> bool:
    rows = query(
        metadata_url,
        "SELECT count(*) AS alive FROM job WHERE job_type = %s AND state = 'running' "
        "AND latest_heartbeat > now() - interval '30 seconds'",
        (job_type,),
    )
    return rows[0]["alive"] > 0


class Scheduler:
    """An API server, a DAG processor and a scheduler over the fault stack's stores."""

    def __init__(self, stack):
        self.stack = stack
        api_port = free_port()
        health_port = free_port()
        self.env = {
            **stack.env,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            # Shared by every component, which sign and check the task tokens with it.
            "AIRFLOW__API_AUTH__JWT_SECRET": f"faults-jwt-{secrets.token_hex(16)}",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(health_port),
        }
        metadata = stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        airflow = services.executable("airflow")
        log_dir = stack.log_dir
        self.servers = [
            services.Service(
                "Airflow API server",
                [airflow, "api-server"],
                log_dir / "airflow-api-server.log",
                ready_url=f"http://127.0.0.1:{api_port}/api/v2/monitor/health",
                env=self.env,
            ),
            services.Service(
                "Airflow DAG processor",
                [airflow, "dag-processor"],
                log_dir / "airflow-dag-processor.log",
                ready_check=lambda: _job_alive(metadata, "DagProcessorJob"),
                env=self.env,
            ),
            services.Service(
                "Airflow scheduler",
                [airflow, "scheduler"],
                log_dir / "airflow-scheduler.log",
                ready_url=f"http://127.0.0.1:{health_port}/health",
                env=self.env,
            ),
        ]

    def start(self) -> None:
        for server in self.servers:
            server.launch()
        for server in self.servers:
            server.wait_ready(timeout=240)
        self.airflow("dags", "unpause", DAG_ID)

    def stop(self) -> None:
        self.airflow("dags", "pause", DAG_ID, check=False)
        for server in reversed(self.servers):
            server.stop(timeout=60)

    def alive(self) -> list[str]:
        return [s.name for s in self.servers if s.process and s.process.poll() is None]

    def airflow(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [services.executable("airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check and result.returncode != 0:
            pytest.fail(f"airflow {' '.join(args)} failed: {result.stderr[-3000:]}")
        return result.stdout

    def trigger(self, run_id: str, conf: dict) -> subprocess.Popen:
        return subprocess.Popen(
            [services.executable("airflow"), "dags", "trigger", DAG_ID, "--run-id", run_id]
            + ["--conf", json.dumps(conf)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="module")
def scheduler(fault_stack, baseline_run, generated_secrets):
    running = Scheduler(fault_stack)
    secret = "AIRFLOW__API_AUTH__JWT_SECRET"
    generated_secrets[secret] = running.env[secret]
    try:
        running.start()
        yield running
    finally:
        running.stop()


def wait_finished(stack, run_ids: list[str], samples: list | None = None) -> dict[str, dict]:
    """Wait until every run has finished, recording the running runs at each poll."""
    metadata = stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]

    def finished():
        runs = {run_id: dag_run(metadata, run_id) for run_id in run_ids}
        if samples is not None:
            samples.append(sorted(r for r, row in runs.items() if row["state"] == "running"))
        return runs if all(row["state"] in FINISHED for row in runs.values()) else None

    return wait_for(
        finished, SCHEDULED_RUN_TIMEOUT_SECONDS, f"runs {run_ids} did not finish", interval=1
    )


def run_window(metadata_url: str, run_id: str) -> tuple:
    rows = query(
        metadata_url,
        "SELECT start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s",
        (DAG_ID, run_id),
    )
    return rows[0]["start_date"], rows[0]["end_date"]


@pytest.fixture(scope="module")
def concurrent_runs(fault_stack, scheduler):
    """Two runs triggered at the same moment, in the order in which they ran."""
    suffix = secrets.token_hex(3)
    run_ids = [f"faults_concurrent_{suffix}_a", f"faults_concurrent_{suffix}_b"]
    triggers = [scheduler.trigger(run_id, LIGHT_CONF) for run_id in run_ids]
    for trigger in triggers:
        output, _ = trigger.communicate(timeout=180)
        assert trigger.returncode == 0, f"airflow dags trigger failed: {output[-3000:]}"
    samples: list[list[str]] = []
    runs = wait_finished(fault_stack, run_ids, samples)
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    ordered = sorted(run_ids, key=lambda run_id: run_window(metadata, run_id)[0])
    return {"order": ordered, "runs": runs, "samples": samples}


def test_concurrent_runs_wait_their_turn(fault_stack, concurrent_runs):
    for run_id, row in concurrent_runs["runs"].items():
        assert row["state"] == "success", f"{run_id} is {row['state']}"
    samples = concurrent_runs["samples"]
    assert max(len(running) for running in samples) == 1, "both runs ran at the same time"
    first, second = concurrent_runs["order"]
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert run_window(metadata, second)[0] >= run_window(metadata, first)[1], (
        f"{second} started before {first} ended"
    )


def test_concurrent_runs_register_distinct_versions(fault_stack, concurrent_runs):
    first, second = concurrent_runs["order"]
    first_versions = model_versions(fault_stack, first)
    second_versions = model_versions(fault_stack, second)
    assert len(first_versions) == 1, f"{first} registered {len(first_versions)} versions"
    assert len(second_versions) == 1, f"{second} registered {len(second_versions)} versions"
    assert int(first_versions[0].version) < int(second_versions[0].version)
    # Both passed the gate; the one that the gate approved last is in Production.
    assert production_versions(fault_stack) == [second_versions[0].version]
    archived = model_versions(fault_stack, first)[0]
    assert archived.current_stage == "Archived"
    assert archived.tags[PROMOTION_TAG] == "approved"


def test_cleared_run_reuses_prefix_and_version(fault_stack, scheduler, concurrent_runs):
    first = concurrent_runs["order"][0]
    metadata = fault_stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    bucket = config.BUCKET.get(fault_stack.env)
    objects_before = s3_keys(fault_stack, f"s3://{bucket}/runs/{DAG_ID}")
    versions_before = [version.version for version in model_versions(fault_stack)]
    production_before = production_versions(fault_stack)
    first_version = model_versions(fault_stack, first)[0].version

    output = scheduler.airflow("dags", "clear", DAG_ID, "--run-id", first, "--yes")
    assert "Cleared 7 task instance(s)" in output, output
    # The clear has put the run back in the queue, so it finishes only after the rerun.
    runs = wait_finished(fault_stack, [first])

    assert runs[first]["state"] == "success"
    for task, row in task_states(metadata, first).items():
        assert row["try_number"] == 2, f"{task} ran {row['try_number']} times"
        assert [t["try_number"] for t in earlier_tries(metadata, first, task)] == [1]
    objects_after = s3_keys(fault_stack, f"s3://{bucket}/runs/{DAG_ID}")
    assert set(objects_after) == set(objects_before), "the rerun wrote outside its prefix"
    assert [version.version for version in model_versions(fault_stack)] == versions_before
    assert [version.version for version in model_versions(fault_stack, first)] == [first_version]
    assert len(mlflow_runs(fault_stack, first)) == 1
    # The rerun of the older run passes the gate again but does not demote the newer model.
    assert production_versions(fault_stack) == production_before
    decision = xcom_value(metadata, first, "promote")
    assert decision["promoted"] is False
    assert model_versions(fault_stack, first)[0].tags[PROMOTION_TAG] == "superseded"


def test_run_after_postgres_restart_succeeds(fault_stack, scheduler, postgres_cluster):
    restarted_at = time.monotonic()
    postgres_cluster.restart()
    assert scheduler.alive() == [server.name for server in scheduler.servers]
    run_id = f"faults_after_restart_{secrets.token_hex(3)}"
    trigger = scheduler.trigger(run_id, LIGHT_CONF)
    output, _ = trigger.communicate(timeout=180)
    assert trigger.returncode == 0, f"airflow dags trigger failed: {output[-3000:]}"

    runs = wait_finished(fault_stack, [run_id])

    assert runs[run_id]["state"] == "success", f"see the task logs of {run_id}"
    versions = model_versions(fault_stack, run_id)
    assert len(versions) == 1
    assert production_versions(fault_stack) == [versions[0].version]
    assert scheduler.alive() == [server.name for server in scheduler.servers], (
        f"a service died after the PostgreSQL restart {time.monotonic() - restarted_at:.0f} s ago"
    )
    for server in fault_stack.servers.values():
        assert server.process.poll() is None, f"{server.name} died after the restart"
