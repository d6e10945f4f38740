"""Summary of a DAG run's outcome, read back from the MLflow registry."""

from __future__ import annotations

from dataclasses import dataclass

from dp_pipeline.registry import PROMOTION_REASON_TAG, PROMOTION_TAG, RUN_ID_TAG


@dataclass(frozen=True)
class RunSummary:
    """The outcome of one DAG run as the tracking server records it."""

    run_id: str
    state: str
    accuracy: float | None = None
    roc_auc: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    model_name: str | None = None
    version: str | None = None
    stage: str | None = None
    promotion: str | None = None
    mlflow_run_id: str | None = None

    def lines(self, mlflow_ui: str) -> list[str]:
        lines = [f"DAG run {self.run_id}: {self.state}"]
        if self.accuracy is not None:
            lines.append(f"  test accuracy {self.accuracy:.4f}, ROC AUC {self.roc_auc:.4f}")
            lines.append(f"  epsilon {self.epsilon:.4f} (PLD accountant) at delta {self.delta:g}")
        if self.version is not None:
            lines.append(f"  model {self.model_name} version {self.version}, stage {self.stage}")
            lines.append(f"  promotion: {self.promotion}")
        else:
            lines.append("  no model version was registered")
        lines.append(f"MLflow UI: {mlflow_ui}")
        return lines


def summarize(run: dict, tracking_uri: str, experiment_name: str, model_name: str) -> RunSummary:
    """Look up the MLflow run and model version that the DAG run ``run`` created."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    summary = RunSummary(run_id=run["run_id"], state=run["state"])
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return summary
    found = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run['run_id']}'"
    )
    if not found:
        return summary
    mlflow_run = found[0]
    metrics = mlflow_run.data.metrics
    versions = client.search_model_versions(
        f"name = '{model_name}' and run_id = '{mlflow_run.info.run_id}'"
    )
    version = versions[0] if versions else None
    return RunSummary(
        run_id=run["run_id"],
        state=run["state"],
        accuracy=metrics.get("test_accuracy"),
        roc_auc=metrics.get("test_roc_auc"),
        epsilon=metrics.get("epsilon"),
        delta=metrics.get("delta"),
        model_name=model_name if version else None,
        version=version.version if version else None,
        stage=version.current_stage if version else None,
        promotion=_promotion(version),
        mlflow_run_id=mlflow_run.info.run_id,
    )


def _promotion(version) -> str | None:
    if version is None:
        return None
    decision = version.tags.get(PROMOTION_TAG, "not decided")
    reason = version.tags.get(PROMOTION_REASON_TAG)
    return f"{decision} ({reason})" if reason else decision
