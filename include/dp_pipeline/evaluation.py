"""Evaluate step: test-set metrics and the privacy accounting of the training run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from dp_pipeline import privacy, storage
from dp_pipeline.audit import membership_attack_auc
from dp_pipeline.features import AdultEncoder
from dp_pipeline.training import load_xy

logger = logging.getLogger(__name__)

DPSGD_KEYS = tuple(privacy.DpSgdParameters.__dataclass_fields__)
# Members and non-members sampled for the membership-inference audit, each.
AUDIT_ROWS = 10_000
AUDIT_SEED = 0


def load_keras_model(uri: str):
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        path = storage.download_file(uri, Path(folder) / "model.keras")
        return tf.keras.models.load_model(path)


def classification_metrics(labels, probabilities) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    labels = np.asarray(labels).ravel()
    probabilities = np.asarray(probabilities).ravel()
    return {
        "accuracy": float(np.mean((probabilities >= 0.5) == (labels == 1))),
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1])),
    }


def score_model(model, data: dict) -> dict[str, float]:
    """Return classification metrics per split, keyed ``<split>_<metric>``."""
    metrics = {}
    for split, (features, labels) in data.items():
        probabilities = model.predict(features, batch_size=4096, verbose=0)
        for name, value in classification_metrics(labels, probabilities).items():
            metrics[f"{split}_{name}"] = value
    return metrics


def evaluate(splits: dict[str, str], trained: dict, delta: float, report_uri: str) -> dict:
    """Score the model on the test set, account its privacy and write a JSON report.

    The non-private baseline, when trained, is scored the same way, and both models face
    the membership-inference audit. Returns the report's URI with the headline numbers.
    """
    encoder = AdultEncoder.from_json(storage.get_bytes(splits["encoder"]).decode())
    data = {split: load_xy(splits[split], encoder) for split in ("train", "validation", "test")}
    held_out = {split: data[split] for split in ("validation", "test")}
    model = load_keras_model(trained["model"])
    metrics = score_model(model, held_out)
    metrics["attack_auc"] = membership_attack_auc(
        model, data["train"], data["test"], rows=AUDIT_ROWS, seed=AUDIT_SEED
    )
    if trained.get("baseline_model"):
        baseline = load_keras_model(trained["baseline_model"])
        for name, value in score_model(baseline, held_out).items():
            metrics[f"baseline_{name}"] = value
        metrics["baseline_attack_auc"] = membership_attack_auc(
            baseline, data["train"], data["test"], rows=AUDIT_ROWS, seed=AUDIT_SEED
        )
        metrics["accuracy_gap"] = metrics["baseline_test_accuracy"] - metrics["test_accuracy"]

    dp = privacy.DpSgdParameters(**{key: trained[key] for key in DPSGD_KEYS})
    figures = privacy.account(dp, delta)
    statement = privacy.privacy_statement(figures)
    logger.info(
        "Test accuracy %.4f, ROC AUC %.4f, membership-inference AUC %.4f",
        metrics["test_accuracy"],
        metrics["test_roc_auc"],
        metrics["attack_auc"],
    )
    if "accuracy_gap" in metrics:
        logger.info(
            "Non-private baseline: test accuracy %.4f (gap %.4f), membership-inference AUC %.4f",
            metrics["baseline_test_accuracy"],
            metrics["accuracy_gap"],
            metrics["baseline_attack_auc"],
        )
    logger.info("%s", statement)
    storage.put_json(report_uri, {"metrics": metrics, "privacy": figures, "statement": statement})
    return {
        "report": report_uri,
        "accuracy": metrics["test_accuracy"],
        "roc_auc": metrics["test_roc_auc"],
        "epsilon": figures["epsilon"],
        "epsilon_rdp": figures["epsilon_rdp"],
        "delta": delta,
        "metrics": metrics,
    }
