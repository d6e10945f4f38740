"""The DAG on the real Adult files, against MLflow on PostgreSQL and a real S3 server."""

from __future__ import annotations

import math

import pytest
from e2e_support import run_in_lifecycle_env

pytestmark = pytest.mark.e2e

PREDICT_FIVE_ROWS = """
import json, sys
import mlflow.pyfunc
from dp_pipeline import adult
from dp_pipeline.preprocess import to_frame
from dp_pipeline.validate import parse_adult_file

frame = to_frame(parse_adult_file("adult.test", open(sys.argv[1], "rb").read()).columns)
rows = frame[list(adult.FEATURE_COLUMNS)].head(5).copy()
for column in adult.CATEGORIES:
    rows[column] = rows[column].fillna(adult.MISSING)
model = mlflow.pyfunc.load_model(f"models:/{sys.argv[2]}/Production")
output = model.predict(rows)
print(json.dumps({key: output[key].tolist() for key in ("probability", "label")}))
"""


def test_run_succeeds(pipeline_run):
    assert pipeline_run["record"]["state"] == "success", f"see {pipeline_run['log']}"


def test_new_version_is_in_production(pipeline_run):
    summary = pipeline_run["summary"]
    assert summary.version is not None
    assert summary.stage == "Production"
    assert summary.promotion.startswith("approved")


def test_run_metrics_meet_targets(pipeline_run):
    summary = pipeline_run["summary"]
    assert summary.accuracy >= 0.80
    assert math.isfinite(summary.epsilon)
    assert summary.delta == 1e-5


def test_mlflow_run_holds_privacy_record(stack, pipeline_run):
    import mlflow

    client = mlflow.MlflowClient(stack.env["MLFLOW_TRACKING_URI"])
    run = client.get_run(pipeline_run["summary"].mlflow_run_id)
    for name in ("epsilon", "epsilon_rdp", "delta", "test_accuracy", "test_roc_auc"):
        assert name in run.data.metrics, f"metric {name} missing"
    for name in ("noise_multiplier", "l2_norm_clip", "steps", "sampling", "accountant"):
        assert name in run.data.params, f"param {name} missing"
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert "privacy_statement.md" in artifacts
    reports = {item.path for item in client.list_artifacts(run.info.run_id, "reports")}
    assert reports == {"reports/validation.json", "reports/evaluation.json"}


def test_mlflow_run_holds_baseline_and_audit(stack, pipeline_run):
    import mlflow

    client = mlflow.MlflowClient(stack.env["MLFLOW_TRACKING_URI"])
    metrics = client.get_run(pipeline_run["summary"].mlflow_run_id).data.metrics
    for name in ("baseline_test_accuracy", "accuracy_gap", "attack_auc", "baseline_attack_auc"):
        assert name in metrics, f"metric {name} missing"
    assert metrics["attack_auc"] <= 0.55
    versions = client.search_model_versions(f"run_id = '{pipeline_run['summary'].mlflow_run_id}'")
    assert len(versions) == 1, "only the DP model may be registered"


def test_privacy_statement_names_every_assumption(stack, pipeline_run):
    import mlflow

    mlflow.set_tracking_uri(stack.env["MLFLOW_TRACKING_URI"])
    uri = f"runs:/{pipeline_run['summary'].mlflow_run_id}/privacy_statement.md"
    statement = mlflow.artifacts.load_text(uri)
    for field in (
        "epsilon (PLD accountant",
        "epsilon (RDP accountant",
        "| delta |",
        "Poisson",
        "clipping norm",
        "noise multiplier",
        "| steps |",
        "epochs",
        "## Assumptions",
    ):
        assert field in statement, f"statement lacks {field!r}"


def test_backend_store_is_postgresql(stack):
    assert stack.env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql")


def test_production_pyfunc_predicts_raw_rows(stack, pipeline_run, adult_dir):
    from dp_pipeline import config

    result = run_in_lifecycle_env(
        stack,
        PREDICT_FIVE_ROWS,
        str(adult_dir / "adult.test"),
        config.MODEL_NAME.get(stack.env),
    )
    assert len(result["probability"]) == 5
    assert all(0.0 <= value <= 1.0 for value in result["probability"])
    assert set(result["label"]) <= {">50K", "<=50K"}
