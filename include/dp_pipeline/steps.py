"""Entry points of the DAG's tasks, one per lifecycle step.

Each task runs in the isolated virtualenv, where Airflow is not installed, so a step
receives the DAG id, the run id and the params as plain values and returns S3 URIs and
small dicts of numbers for XCom. Objects are written under the run's own prefix, so a
retried task overwrites what its earlier try wrote.
"""

from __future__ import annotations

import logging
import sys

from dp_pipeline import config, storage

logger = logging.getLogger(__name__)


def _configure_logging() -> None:
    # The task's stdout and stderr become the Airflow task log.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def _prefix(run: dict, *parts: str) -> str:
    prefix = storage.run_prefix(config.BUCKET.get(), run["dag_id"], run["run_id"])
    return storage.join(prefix, *parts)


def ingest(run: dict, params: dict) -> dict:
    from dp_pipeline.ingest import ingest as ingest_files

    _configure_logging()
    source = params.get("data_source") or config.DATA_SOURCE.get()
    return ingest_files(source, _prefix(run), verify_checksums=params["verify_checksums"])


def validate(run: dict, raw: dict) -> dict:
    from dp_pipeline.validate import validate as validate_files

    _configure_logging()
    return validate_files(raw, _prefix(run, "reports", "validation.json"))


def preprocess(run: dict, raw: dict, params: dict) -> dict:
    from dp_pipeline.preprocess import preprocess as split_and_encode

    _configure_logging()
    return split_and_encode(
        raw,
        _prefix(run, "splits"),
        validation_fraction=params["validation_fraction"],
        seed=params["seed"],
    )


def train(run: dict, splits: dict, params: dict) -> dict:
    from dp_pipeline.training import train as train_model

    _configure_logging()
    return train_model(splits, _prefix(run, "model"), params)


def evaluate(run: dict, splits: dict, trained: dict, params: dict) -> dict:
    from dp_pipeline.evaluation import evaluate as evaluate_model

    _configure_logging()
    report_uri = _prefix(run, "reports", "evaluation.json")
    return evaluate_model(splits, trained, params["delta"], report_uri)


def register(
    run: dict,
    params: dict,
    splits: dict,
    trained: dict,
    evaluation: dict,
    validation: dict,
) -> dict:
    from dp_pipeline.registry import register as register_model

    _configure_logging()
    return register_model(
        model_name=config.MODEL_NAME.get(),
        experiment_name=config.EXPERIMENT_NAME.get(),
        dag_id=run["dag_id"],
        run_id=run["run_id"],
        params=params,
        splits=splits,
        trained=trained,
        evaluation=evaluation,
        validation_report=validation["report"],
        timeout_seconds=config.REGISTRY_WAIT_SECONDS.get(),
    )


def gate_limits(params: dict) -> tuple[float, float]:
    """Return the accuracy threshold and epsilon budget that the promotion gate applies.

    A run's params may only tighten the deployment's limits (DP_PIPELINE_MIN_ACCURACY and
    DP_PIPELINE_MAX_EPSILON), so no trigger can promote a weaker or less private model.
    """
    accuracy_threshold = max(params["accuracy_threshold"], config.MIN_ACCURACY.get())
    epsilon_budget = min(params["epsilon_budget"], config.MAX_EPSILON.get())
    if accuracy_threshold != params["accuracy_threshold"]:
        logger.warning(
            "accuracy_threshold %g is below the deployment's minimum; the gate uses %g",
            params["accuracy_threshold"],
            accuracy_threshold,
        )
    if epsilon_budget != params["epsilon_budget"]:
        logger.warning(
            "epsilon_budget %g is above the deployment's maximum; the gate uses %g",
            params["epsilon_budget"],
            epsilon_budget,
        )
    return accuracy_threshold, epsilon_budget


def promote(registration: dict, evaluation: dict, params: dict) -> dict:
    from dp_pipeline.registry import promote as promote_version

    _configure_logging()
    accuracy_threshold, epsilon_budget = gate_limits(params)
    decision = promote_version(
        model_name=registration["model_name"],
        version=registration["version"],
        accuracy=evaluation["accuracy"],
        epsilon=evaluation["epsilon"],
        accuracy_threshold=accuracy_threshold,
        epsilon_budget=epsilon_budget,
    )
    return {**registration, **decision}
