"""Helpers of the tests that run the Compose services as local processes."""

from __future__ import annotations

DAG_ID = "adult_income_dp"
# A warm run of the default DAG took 1.5 to 2 minutes on 2 cores. The limit leaves room
# for a machine that other test runs load, and for a first run that builds the virtualenv.
RUN_TIMEOUT_SECONDS = 900


def configure(twin, executor: str, use_job_schedule: bool, schedule: str = ""):
    """Restart the twin's Airflow services unless they already run with this configuration.

    ``schedule`` sets DP_PIPELINE_SCHEDULE; an empty one keeps the DAG's default.
    """
    overrides = dict(twin.settings.overrides)
    overrides.pop("DP_PIPELINE_SCHEDULE", None)
    if schedule:
        overrides["DP_PIPELINE_SCHEDULE"] = schedule
    current = twin.settings
    if (
        current.executor == executor
        and current.use_job_schedule == use_job_schedule
        and current.overrides == overrides
    ):
        return twin
    twin.restart_airflow(executor=executor, use_job_schedule=use_job_schedule, overrides=overrides)
    return twin


def task_log_tail(twin, run_id: str, task_id: str, characters: int = 3000) -> str:
    """Return the end of a task's newest log file, for assertion messages."""
    folder = twin.home / "airflow/logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    logs = sorted((folder / f"task_id={task_id}").glob("attempt=*.log"))
    return logs[-1].read_text()[-characters:] if logs else f"no log in {folder}"


def failed_tasks_report(twin, api, run_id: str) -> str:
    """Name the task instances of a run that did not succeed, with the end of their logs."""
    lines = []
    for instance in api.task_instances(DAG_ID, run_id):
        if instance["state"] != "success":
            lines.append(f"{instance['task_id']}: {instance['state']}")
            if instance["state"] == "failed":
                lines.append(task_log_tail(twin, run_id, instance["task_id"]))
    return "\n".join(lines) or "every task succeeded"


def stop_unfinished_runs(api) -> None:
    """Mark every queued or running run failed and wait until each has stopped.

    A leftover run would hold the DAG's only active run slot (max_active_runs=1) and the
    CPU in the tests after it.
    """
    for run in api.list_runs(DAG_ID):
        if run["state"] in ("queued", "running"):
            api.mark_run_failed(DAG_ID, run["dag_run_id"])
            api.wait_for_run(DAG_ID, run["dag_run_id"], timeout=120)
