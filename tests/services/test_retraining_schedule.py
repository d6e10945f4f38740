"""Scheduled retraining: with a one-minute schedule the scheduler starts a run by itself."""

from __future__ import annotations

import time

import pytest
from services_support import (
    DAG_ID,
    RUN_TIMEOUT_SECONDS,
    configure,
    failed_tasks_report,
    stop_unfinished_runs,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

SCHEDULE = "*/1 * * * *"
PARSE_TIMEOUT_SECONDS = 180


def wait_for_schedule(api, schedule: str) -> dict:
    """Wait until the DAG processor has stored the DAG with ``schedule``."""
    deadline = time.monotonic() + PARSE_TIMEOUT_SECONDS
    while True:
        dag = api.get_dag(DAG_ID)
        if dag["timetable_summary"] == schedule:
            return dag
        if time.monotonic() > deadline:
            raise AssertionError(
                f"DAG schedule is {dag['timetable_summary']!r} after {PARSE_TIMEOUT_SECONDS} s; "
                f"expected {schedule!r}"
            )
        time.sleep(2)


@pytest.fixture(scope="module")
def scheduled_run(twin):
    api = twin.api()
    stop_unfinished_runs(api)
    known = {run["dag_run_id"] for run in api.list_runs(DAG_ID, run_type="scheduled")}
    configure(twin, "LocalExecutor", use_job_schedule=True, schedule=SCHEDULE)
    dag = wait_for_schedule(api, SCHEDULE)
    api.set_paused(DAG_ID, False)
    try:
        started = api.wait_for_new_run(DAG_ID, "scheduled", known, timeout=150)
        finished = api.wait_for_run(DAG_ID, started["dag_run_id"], timeout=RUN_TIMEOUT_SECONDS)
    finally:
        # Pausing stops further scheduled runs; one that started meanwhile is stopped.
        api.set_paused(DAG_ID, True)
        stop_unfinished_runs(api)
    return {"dag": dag, "started": started, "finished": finished}


def test_dag_has_shortened_schedule(scheduled_run):
    assert scheduled_run["dag"]["timetable_summary"] == SCHEDULE


def test_scheduler_starts_scheduled_run(scheduled_run):
    started = scheduled_run["started"]
    assert started["run_type"] == "scheduled"
    assert started["dag_run_id"].startswith("scheduled__")


def test_scheduled_run_succeeds(twin, scheduled_run):
    run_id = scheduled_run["finished"]["dag_run_id"]
    assert scheduled_run["finished"]["state"] == "success", failed_tasks_report(
        twin, twin.api(), run_id
    )


def test_scheduled_run_uses_default_params(scheduled_run):
    assert scheduled_run["finished"]["conf"] in ({}, None)
