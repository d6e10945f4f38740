"""Register and promote steps: one MLflow run and one model version per DAG run.

Both steps are idempotent. A DAG run's MLflow run and model version carry the DAG id and
run id as tags, so a retried or cleared task finds them instead of creating new ones.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

from dp_pipeline import adult, storage
from dp_pipeline.errors import RegistryTimeoutError

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
LIFECYCLE_REQUIREMENTS = PACKAGE_DIR.parent / "requirements-lifecycle.txt"

DAG_ID_TAG = "airflow.dag_id"
RUN_ID_TAG = "airflow.run_id"
PROMOTION_TAG = "promotion.decision"
PROMOTION_REASON_TAG = "promotion.reason"
PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"


def find_model_version(client, model_name: str, mlflow_run_id: str):
    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{mlflow_run_id}'")
    return min(versions, key=lambda version: int(version.version)) if versions else None


def find_or_start_run(mlflow, experiment_name: str, dag_id: str, run_id: str):
    """Resume the MLflow run of this DAG run if an earlier try created one."""
    experiment = mlflow.set_experiment(experiment_name)
    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.`{DAG_ID_TAG}` = '{dag_id}' and tags.`{RUN_ID_TAG}` = '{run_id}'",
        output_format="list",
    )
    if runs:
        logger.info("Resuming MLflow run %s of DAG run %s", runs[0].info.run_id, run_id)
        return mlflow.start_run(run_id=runs[0].info.run_id)
    return mlflow.start_run(
        run_name=f"{dag_id}/{run_id}", tags={DAG_ID_TAG: dag_id, RUN_ID_TAG: run_id}
    )


def wait_until_ready(client, model_name: str, version: str, timeout_seconds: float):
    deadline = time.monotonic() + timeout_seconds
    while True:
        model_version = client.get_model_version(model_name, version)
        status = model_version.status
        if status == "READY":
            return model_version
        if status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RegistryTimeoutError(
                f"Model {model_name!r} version {version} is {status} after waiting up to "
                f"{timeout_seconds:g} s; expected READY. {model_version.status_message or ''}"
            )
        time.sleep(1)


def _download_artifacts(uris: dict[str, str], folder: Path) -> dict[str, Path]:
    return {name: storage.download_file(uri, folder / Path(uri).name) for name, uri in uris.items()}


def _model_signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from dp_pipeline.pyfunc_model import (
        PREDICTED_LABEL,
        PROBABILITY,
        UNKNOWN_CATEGORIES,
    )

    inputs = Schema(
        [
            ColSpec("string" if column in adult.CATEGORIES else "long", column)
            for column in adult.FEATURE_COLUMNS
        ]
    )
    outputs = Schema(
        [
            ColSpec("double", PROBABILITY),
            ColSpec("string", PREDICTED_LABEL),
            ColSpec("string", UNKNOWN_CATEGORIES),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _input_example(test_uri: str):
    from dp_pipeline.preprocess import read_parquet

    frame = read_parquet(test_uri).head(5)
    frame = frame[list(adult.FEATURE_COLUMNS)].copy()
    for column in adult.CATEGORIES:
        frame[column] = frame[column].fillna(adult.MISSING).astype(str)
    return frame


def log_model(mlflow, files: dict[str, Path], test_uri: str):
    from dp_pipeline.pyfunc_model import IncomeClassifier

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=IncomeClassifier(),
        artifacts={
            "keras_model": str(files["model"]),
            "encoder": str(files["encoder"]),
        },
        code_paths=[str(PACKAGE_DIR)],
        pip_requirements=str(LIFECYCLE_REQUIREMENTS),
        signature=_model_signature(),
        input_example=_input_example(test_uri),
    )


def register(
    *,
    model_name: str,
    experiment_name: str,
    dag_id: str,
    run_id: str,
    params: dict,
    splits: dict[str, str],
    trained: dict,
    evaluation: dict,
    validation_report: str,
    timeout_seconds: float = 300,
) -> dict:
    """Log the DAG run to MLflow and register its model as a new version of ``model_name``."""
    import mlflow

    client = mlflow.MlflowClient()
    with find_or_start_run(mlflow, experiment_name, dag_id, run_id) as run:
        mlflow_run_id = run.info.run_id
        existing = find_model_version(client, model_name, mlflow_run_id)
        if existing is None:
            version = _log_and_register(
                mlflow,
                model_name=model_name,
                tags={DAG_ID_TAG: dag_id, RUN_ID_TAG: run_id},
                params=params,
                splits=splits,
                trained=trained,
                evaluation=evaluation,
                validation_report=validation_report,
            )
        else:
            version = existing.version
            logger.info(
                "DAG run %s already registered %s version %s",
                run_id,
                model_name,
                version,
            )
        # Also for a version that an earlier try registered, because that try may have
        # stopped before the version was READY or before its tags were set.
        wait_until_ready(client, model_name, version, timeout_seconds)
        for key in ("accuracy", "roc_auc", "epsilon", "delta"):
            client.set_model_version_tag(model_name, version, key, str(evaluation[key]))
        return _registration(model_name, version, mlflow_run_id)


def _log_and_register(
    mlflow,
    *,
    model_name: str,
    tags: dict[str, str],
    params: dict,
    splits: dict[str, str],
    trained: dict,
    evaluation: dict,
    validation_report: str,
) -> str:
    """Log params, metrics, reports and the model to the active run, and register the model."""
    _log_run(mlflow, params, trained, evaluation)
    with tempfile.TemporaryDirectory() as folder:
        files = _download_artifacts(
            {
                "model": trained["model"],
                "encoder": splits["encoder"],
                "validation": validation_report,
                "evaluation": evaluation["report"],
            },
            Path(folder),
        )
        report = storage.get_json(evaluation["report"])
        mlflow.log_text(report["statement"], "privacy_statement.md")
        mlflow.log_artifact(str(files["validation"]), "reports")
        mlflow.log_artifact(str(files["evaluation"]), "reports")
        model_info = log_model(mlflow, files, splits["test"])
    version = mlflow.register_model(
        model_info.model_uri,
        model_name,
        tags=tags,
        await_registration_for=0,
    ).version
    logger.info(
        "Registered %s version %s from MLflow run %s",
        model_name,
        version,
        mlflow.active_run().info.run_id,
    )
    return version


def _registration(model_name: str, version, mlflow_run_id: str) -> dict:
    return {
        "model_name": model_name,
        "version": str(version),
        "mlflow_run_id": mlflow_run_id,
    }


def _log_run(mlflow, params: dict, trained: dict, evaluation: dict) -> None:
    logged_params = {f"param.{key}": value for key, value in params.items()}
    logged_params.update(
        {
            key: trained[key]
            for key in (
                "examples",
                "expected_batch_size",
                "steps",
                "epochs",
                "noise_multiplier",
                "l2_norm_clip",
                "learning_rate",
                "target_epsilon",
            )
        }
    )
    logged_params.update({"sampling": "poisson", "accountant": "pld", "delta": evaluation["delta"]})
    mlflow.log_params(logged_params)
    baseline_seconds = trained.get("baseline_train_seconds")
    timings = {"train_seconds": trained["train_seconds"]}
    if baseline_seconds:
        timings["baseline_train_seconds"] = baseline_seconds
        timings["dp_slowdown"] = trained["train_seconds"] / baseline_seconds
    mlflow.log_metrics(
        {
            **evaluation.get("metrics", {}),
            **timings,
            "test_accuracy": evaluation["accuracy"],
            "test_roc_auc": evaluation["roc_auc"],
            "epsilon": evaluation["epsilon"],
            "epsilon_rdp": evaluation["epsilon_rdp"],
            "delta": evaluation["delta"],
            "sampling_probability": trained["expected_batch_size"] / trained["examples"],
        }
    )


def promotion_failures(
    accuracy: float, epsilon: float, accuracy_threshold: float, epsilon_budget: float
) -> list[str]:
    """Return why a model may not be promoted; an empty list means it may."""
    failures = []
    if not accuracy >= accuracy_threshold:
        failures.append(
            f"test accuracy {accuracy:.4f} is below the threshold {accuracy_threshold:.4f}"
        )
    if not (math.isfinite(epsilon) and epsilon <= epsilon_budget):
        failures.append(f"epsilon {epsilon:.4f} exceeds the budget {epsilon_budget:.4f}")
    return failures


def newer_production_version(client, model_name: str, version: str) -> str | None:
    """Return the number of a Production version newer than ``version``, if there is one."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    newer = [
        int(found.version)
        for found in versions
        if found.current_stage == "Production" and int(found.version) > int(version)
    ]
    return str(max(newer)) if newer else None


def promote(
    *,
    model_name: str,
    version: str,
    accuracy: float,
    epsilon: float,
    accuracy_threshold: float,
    epsilon_budget: float,
) -> dict:
    """Move the version to Staging, then Production, if it passes the gate.

    The previous Production version is archived. A version that fails the gate stays
    where it is, and a tag on it records the reason with the numbers. So does a version that
    passes the gate while a newer version is in Production, which happens when an old DAG
    run is cleared or its promote task rerun.
    """
    import mlflow

    client = mlflow.MlflowClient()
    failures = promotion_failures(accuracy, epsilon, accuracy_threshold, epsilon_budget)
    if failures:
        reason = "; ".join(failures)
        logger.warning("Not promoting %s version %s: %s", model_name, version, reason)
        client.set_model_version_tag(model_name, version, PROMOTION_TAG, "rejected")
        client.set_model_version_tag(model_name, version, PROMOTION_REASON_TAG, reason)
        stage = client.get_model_version(model_name, version).current_stage
        return {"promoted": False, "stage": stage, "reason": reason}

    reason = (
        f"test accuracy {accuracy:.4f} >= {accuracy_threshold:.4f} and "
        f"epsilon {epsilon:.4f} <= {epsilon_budget:.4f}"
    )
    newer = newer_production_version(client, model_name, version)
    if newer is not None:
        # A cleared or rerun old DAG run must not replace the model of a later run.
        reason = f"{reason}, but version {newer}, registered later, is already in Production"
        logger.warning("Not promoting %s version %s: %s", model_name, version, reason)
        client.set_model_version_tag(model_name, version, PROMOTION_TAG, "superseded")
        client.set_model_version_tag(model_name, version, PROMOTION_REASON_TAG, reason)
        stage = client.get_model_version(model_name, version).current_stage
        return {"promoted": False, "stage": stage, "reason": reason}
    if client.get_model_version(model_name, version).current_stage != "Production":
        client.transition_model_version_stage(model_name, version, "Staging")
        client.set_registered_model_alias(model_name, STAGING_ALIAS, version)
        client.transition_model_version_stage(
            model_name, version, "Production", archive_existing_versions=True
        )
        # The staging alias follows the stage, which this version has just left.
        client.delete_registered_model_alias(model_name, STAGING_ALIAS)
    client.set_registered_model_alias(model_name, PRODUCTION_ALIAS, version)
    client.set_model_version_tag(model_name, version, PROMOTION_TAG, "approved")
    client.set_model_version_tag(model_name, version, PROMOTION_REASON_TAG, reason)
    logger.info("Promoted %s version %s to Production: %s", model_name, version, reason)
    return {"promoted": True, "stage": "Production", "reason": reason}
