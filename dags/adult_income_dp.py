"""Train, evaluate, register and promote a differentially private Adult income classifier.

Every task runs in one cached virtualenv with TensorFlow Privacy and its pinned
dependencies, apart from Airflow's own. The steps live in the ``dp_pipeline`` package
(``include/``); this file only wires them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Param, dag, task

from dp_pipeline import config
from dp_pipeline.retry_policy import PermanentErrorRetryPolicy

INCLUDE_DIR = Path(config.__file__).resolve().parents[1]

LIFECYCLE_ENVIRONMENT = {
    "requirements": "requirements-lifecycle.txt",
    "python_version": "3.11",
    "system_site_packages": False,
    "venv_cache_path": config.VENV_CACHE.get(),
}


PARAMS = {
    "epochs": Param(15, type="integer", minimum=1, maximum=200, description="Training epochs."),
    "batch_size": Param(
        256,
        type="integer",
        minimum=8,
        maximum=8192,
        description="Expected batch size: each step samples every example with probability "
        "batch_size / n (Poisson sampling).",
    ),
    "learning_rate": Param(
        0.002,
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        description="Adam learning rate.",
    ),
    "l2_norm_clip": Param(
        1.0,
        type="number",
        exclusiveMinimum=0,
        maximum=100,
        description="L2 norm to which each example's gradient is clipped.",
    ),
    "noise_multiplier": Param(
        1.6,
        type="number",
        minimum=0.1,
        maximum=100,
        description="Standard deviation of the Gaussian noise divided by the clipping norm. "
        "Ignored when target_epsilon is set.",
    ),
    "target_epsilon": Param(
        None,
        type=["null", "number"],
        exclusiveMinimum=0,
        description="If set, train with the smallest noise multiplier whose epsilon at delta "
        "is at most this value.",
    ),
    "delta": Param(
        1e-5,
        type="number",
        exclusiveMinimum=0,
        maximum=1e-3,
        description="Delta of the (epsilon, delta) guarantee; must be below 1/n.",
    ),
    "accuracy_threshold": Param(
        0.80,
        type="number",
        minimum=0,
        maximum=1,
        description="Minimum test accuracy for promotion to Production. A value below the "
        "deployment's DP_PIPELINE_MIN_ACCURACY (default 0.80) does not lower that limit.",
    ),
    "epsilon_budget": Param(
        2.0,
        type="number",
        exclusiveMinimum=0,
        description="Maximum epsilon (PLD accountant) for promotion to Production. A value "
        "above the deployment's DP_PIPELINE_MAX_EPSILON (default 2.0) does not raise that limit.",
    ),
    "validation_fraction": Param(
        0.1,
        type="number",
        minimum=0.01,
        maximum=0.5,
        description="Share of adult.data held out for validation.",
    ),
    "seed": Param(
        42,
        type="integer",
        minimum=0,
        description="Seed of the train/validation split and the weight initialisation. "
        "DP noise and batch sampling always draw fresh randomness.",
    ),
    "train_baseline": Param(
        True,
        type="boolean",
        description="Also train the same model without privacy, as a reference that is "
        "evaluated and logged but never registered.",
    ),
    "data_source": Param(
        None,
        type=["null", "string"],
        description="Where to read adult.data and adult.test: an http(s) zip URL, a local "
        "folder or an s3:// prefix. Empty: the DP_PIPELINE_DATA_SOURCE setting.",
    ),
    "verify_checksums": Param(
        True,
        type="boolean",
        description="Refuse files whose SHA-256 differs from the published UCI release.",
    ),
}

# Rendered as native objects, because the virtualenv has no Airflow to read the context.
# Task arguments cannot be named run_id or params, which Airflow reserves.
RUN = "{{ {'dag_id': dag.dag_id, 'run_id': run_id} }}"
RUN_PARAMS = "{{ params }}"


@dag(
    dag_id="adult_income_dp",
    description=__doc__.splitlines()[0],
    schedule=config.SCHEDULE.get(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    template_searchpath=[str(INCLUDE_DIR)],
    render_template_as_native_obj=True,
    # S3, MLflow and process failures are retried; invalid data and parameters fail at once.
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=config.RETRY_DELAY_SECONDS.get()),
        "retry_policy": PermanentErrorRetryPolicy(),
    },
    tags=["mlops", "differential-privacy"],
)
def adult_income_dp():
    @task.virtualenv(**LIFECYCLE_ENVIRONMENT)
    def ingest(run: dict, run_params: dict) -> dict:
        from dp_pipeline import steps

        return steps.ingest(run, run_params)

    @task.virtualenv(**LIFECYCLE_ENVIRONMENT)
    def validate(run: dict, raw: dict) -> dict:
        from dp_pipeline import steps

        return steps.validate(run, raw)

    @task.virtualenv(**LIFECYCLE_ENVIRONMENT)
    def preprocess(run: dict, raw: dict, run_params: dict) -> dict:
        from dp_pipeline import steps

        return steps.preprocess(run, raw, run_params)

    @task.virtualenv(**LIFECYCLE_ENVIRONMENT)
    def train(run: dict, splits: dict, run_params: dict) -> dict:
        from dp_pipeline import steps

        return steps.train(run, splits, run_params)

    @task.virtualenv(**LIFECYCLE_ENVIRONMENT)
    def evaluate(run: dict, splits: dict, trained: dict, run_params: dict) -> dict:
        from dp_pipeline import steps

        return steps.evaluate(run, splits, trained, run_params)

    @task.virtualenv(**LIFECYCLE_ENVIRONMENT)
    def register(
        run: dict,
        run_params: dict,
        splits: dict,
        trained: dict,
        evaluation: dict,
        validation: dict,
    ) -> dict:
        from dp_pipeline import steps

        return steps.register(run, run_params, splits, trained, evaluation, validation)

    @task.virtualenv(**LIFECYCLE_ENVIRONMENT)
    def promote(registration: dict, evaluation: dict, run_params: dict) -> dict:
        from dp_pipeline import steps

        return steps.promote(registration, evaluation, run_params)

    raw = ingest(RUN, RUN_PARAMS)
    validation = validate(RUN, raw)
    splits = preprocess(RUN, raw, RUN_PARAMS)
    validation >> splits
    trained = train(RUN, splits, RUN_PARAMS)
    evaluation = evaluate(RUN, splits, trained, RUN_PARAMS)
    registration = register(RUN, RUN_PARAMS, splits, trained, evaluation, validation)
    promote(registration, evaluation, RUN_PARAMS)


adult_income_dp()
