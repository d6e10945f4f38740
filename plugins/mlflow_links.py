"""Airflow UI links from the train, register and promote tasks to MLflow.

Each of those task instances gets two extra links: the MLflow run of its DAG run and the
model version that the run registered. Register and promote return ``model_name``,
``version`` and ``mlflow_run_id`` in XCom, and train's links use register's XCom of the
same DAG run, so train has links once register has succeeded.

The links are global operator extra links, which the API server evaluates when the UI
requests a task instance's links, so they read XCom from the metadata database there.
They return an empty URL, which the UI does not show, for every other task and DAG.

The MLflow UI's address comes from DP_PIPELINE_MLFLOW_UI_URL, and without it from
MLFLOW_TRACKING_URI. In Compose the tracking URI names the mlflow container, which a
browser cannot reach, so set DP_PIPELINE_MLFLOW_UI_URL to the published address there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

logger = logging.getLogger(__name__)

DAG_ID = "adult_income_dp"
MLFLOW_UI_URL_VARIABLE = "DP_PIPELINE_MLFLOW_UI_URL"
# Task id, then the task whose return value names the MLflow run and model version.
REGISTRATION_SOURCE = {"train": "register", "register": "register", "promote": "promote"}
REGISTRATION_KEYS = ("model_name", "version", "mlflow_run_id")

RUN_LINK_NAME = "MLflow run"
MODEL_VERSION_LINK_NAME = "MLflow model version"


def mlflow_ui_url(environ: Mapping[str, str] | None = None) -> str:
    """Return the MLflow UI's base URL without a trailing slash, or "" if none is set."""
    environ = os.environ if environ is None else environ
    base = environ.get(MLFLOW_UI_URL_VARIABLE) or environ.get("MLFLOW_TRACKING_URI") or ""
    return base.rstrip("/")


def run_url(base: str, mlflow_run_id: str) -> str:
    """URL of an MLflow run's page. The MLflow UI routes with the URL fragment."""
    return f"{base}/#/runs/{quote(mlflow_run_id, safe='')}"


def model_version_url(base: str, model_name: str, version: str | int) -> str:
    """URL of a registered model version's page."""
    return f"{base}/#/models/{quote(model_name, safe='')}/versions/{quote(str(version), safe='')}"


def registration_from(value: Any) -> dict[str, str] | None:
    """Return model_name, version and mlflow_run_id of an XCom value, None if one is missing."""
    if not isinstance(value, Mapping):
        return None
    if any(value.get(key) in (None, "") for key in REGISTRATION_KEYS):
        return None
    return {key: str(value[key]) for key in REGISTRATION_KEYS}


def link_url(
    link_name: str,
    dag_id: str,
    task_id: str,
    read_return_value: Callable[[str], Any],
    base: str,
) -> str:
    """Return the URL of ``link_name`` for a task instance, or "" when it has none.

    ``read_return_value(task_id)`` returns the XCom return value of a task of the same
    DAG run, or None if that task has not pushed one.
    """
    source = REGISTRATION_SOURCE.get(task_id)
    if dag_id != DAG_ID or source is None or not base:
        return ""
    registration = registration_from(read_return_value(source))
    if registration is None:
        return ""
    if link_name == RUN_LINK_NAME:
        return run_url(base, registration["mlflow_run_id"])
    if link_name == MODEL_VERSION_LINK_NAME:
        return model_version_url(base, registration["model_name"], registration["version"])
    raise ValueError(
        f"Invalid link name {link_name!r}; expected {RUN_LINK_NAME!r} "
        f"or {MODEL_VERSION_LINK_NAME!r}"
    )


def _database_return_value(dag_id: str, run_id: str, map_index: int) -> Callable[[str], Any]:
    """Read return values from the metadata database, as the API server can."""

    def read(task_id: str) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        query = XComModel.get_many(
            key="return_value",
            run_id=run_id,
            dag_ids=dag_id,
            task_ids=task_id,
            map_indexes=map_index,
        ).with_only_columns(XComModel.value)
        with create_session() as session:
            row = session.execute(query).first()
        return None if row is None else XComModel.deserialize_value(row)

    return read


class _MlflowLink(BaseOperatorLink):
    def get_link(self, operator, *, ti_key) -> str:
        if ti_key.dag_id != DAG_ID or ti_key.task_id not in REGISTRATION_SOURCE:
            return ""
        read = _database_return_value(ti_key.dag_id, ti_key.run_id, ti_key.map_index)
        try:
            return link_url(self.name, ti_key.dag_id, ti_key.task_id, read, mlflow_ui_url())
        except Exception:
            # A broken link must not break the task instance page, so log and show none.
            logger.exception("Failed to build the %s link for %s", self.name, ti_key)
            return ""


class MlflowRunLink(_MlflowLink):
    """Link to the MLflow run of the task's DAG run."""

    name = RUN_LINK_NAME


class MlflowModelVersionLink(_MlflowLink):
    """Link to the model version that the task's DAG run registered."""

    name = MODEL_VERSION_LINK_NAME


class MlflowLinksPlugin(AirflowPlugin):
    """Adds the MLflow run and model version links to the pipeline's tasks."""

    name = "dp_pipeline_mlflow_links"
    global_operator_extra_links = [MlflowRunLink(), MlflowModelVersionLink()]
