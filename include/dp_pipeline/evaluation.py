"""Evaluate step: test-set metrics and the privacy accounting of the training run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from dp_pipeline import privacy, storage
from dp_pipeline.features import AdultEncoder
from dp_pipeline.training import load_xy

logger = logging.getLogger(__name__)

DPSGD_KEYS = tuple(privacy.DpSgdParameters.__dataclass_fields__)


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


def evaluate(splits: dict[str, str], trained: dict, delta: float, report_uri: str) -> dict:
    """Score the model on the test set, account its privacy and write a JSON report.

    Returns the report's URI with the headline numbers: accuracy, ROC AUC, epsilon (PLD),
    epsilon (RDP) and delta.
    """
    encoder = AdultEncoder.from_json(storage.get_bytes(splits["encoder"]).decode())
    model = load_keras_model(trained["model"])
    metrics = {}
    for split in ("validation", "test"):
        features, labels = load_xy(splits[split], encoder)
        probabilities = model.predict(features, batch_size=4096, verbose=0)
        for name, value in classification_metrics(labels, probabilities).items():
            metrics[f"{split}_{name}"] = value
    dp = privacy.DpSgdParameters(**{key: trained[key] for key in DPSGD_KEYS})
    figures = privacy.account(dp, delta)
    statement = privacy.privacy_statement(figures)
    logger.info(
        "Test accuracy %.4f, ROC AUC %.4f",
        metrics["test_accuracy"],
        metrics["test_roc_auc"],
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
    }
