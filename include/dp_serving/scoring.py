"""Scoring of validated census columns with a loaded MLflow pyfunc.

The registered pyfunc (dp_pipeline.pyfunc_model.IncomeClassifier) scores with Keras'
``Model.predict``, which sets up a data pipeline on every call: about 50 ms for one row on
a 2-core machine, twice the latency budget of a single-row request. KerasScorer therefore
runs the pyfunc's own encoder and Keras model through one traced ``tf.function``, the same
arithmetic without that set-up. Any other pyfunc goes through PyfuncScorer, which calls
``predict``. The end-to-end tests check that both give the pyfunc's probabilities.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from mlflow.exceptions import MlflowException

from dp_pipeline import adult
from dp_pipeline.pyfunc_model import (
    PREDICTED_LABEL,
    PROBABILITY,
    THRESHOLD,
    UNKNOWN_CATEGORIES,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scores:
    """Model output for a batch: one entry per record, in request order."""

    probabilities: list[float]
    labels: list[str]
    unknown_categories: list[dict[str, str]]


class Scorer(Protocol):
    kind: str

    def score(self, columns: dict[str, list]) -> Scores: ...


def unknown_categories(
    columns: dict[str, list], categories: dict[str, tuple[str, ...]]
) -> list[dict[str, str]]:
    """Return, per record, each categorical value that ``categories`` does not list.

    The missing marker ``?`` is not unknown. This is the rule of the pyfunc's
    ``unknown_categories`` column, as a mapping instead of a ``column=value;...`` string.
    """
    rows = len(next(iter(columns.values()))) if columns else 0
    unknown: list[dict[str, str]] = [{} for _ in range(rows)]
    for column, known in categories.items():
        known_values = set(known)
        for index, value in enumerate(columns[column]):
            if value != adult.MISSING and value not in known_values:
                unknown[index][column] = value
    return unknown


class KerasScorer:
    """Scores with the pyfunc's encoder and Keras model, called directly."""

    kind = "keras"

    def __init__(self, encoder, keras_model):
        import tensorflow as tf

        self.encoder = encoder
        width = len(encoder.feature_names)
        # One trace for every batch size, because the row dimension is left open.
        self._forward = tf.function(
            lambda features: keras_model(features, training=False),
            input_signature=[tf.TensorSpec(shape=(None, width), dtype=tf.float32)],
        )

    def score(self, columns: dict[str, list]) -> Scores:
        import numpy as np
        import pandas as pd

        features = self.encoder.transform(pd.DataFrame(columns))
        probabilities = np.asarray(self._forward(features)).ravel()
        labels = np.where(probabilities >= THRESHOLD, adult.POSITIVE_LABEL, adult.NEGATIVE_LABEL)
        return Scores(
            probabilities=probabilities.astype("float64").tolist(),
            labels=labels.tolist(),
            unknown_categories=unknown_categories(columns, self.encoder.categories),
        )


class PyfuncScorer:
    """Scores through the pyfunc's ``predict``, for a model that is no IncomeClassifier."""

    kind = "pyfunc"

    def __init__(self, pyfunc_model):
        self.pyfunc_model = pyfunc_model

    def score(self, columns: dict[str, list]) -> Scores:
        import pandas as pd

        output = self.pyfunc_model.predict(pd.DataFrame(columns))
        return Scores(
            probabilities=[float(value) for value in output[PROBABILITY]],
            labels=[str(value) for value in output[PREDICTED_LABEL]],
            unknown_categories=[
                parse_unknown_categories(value) for value in output[UNKNOWN_CATEGORIES]
            ],
        )


def parse_unknown_categories(text: str) -> dict[str, str]:
    """Parse the pyfunc's ``column=value;column=value`` string into a mapping.

    NOTE: a value that itself contains ``;`` is split wrongly; KerasScorer has no such limit.
    """
    entries = [entry for entry in (text or "").split(";") if entry]
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def scorer_for(pyfunc_model) -> Scorer:
    """Choose the scorer for a loaded ``mlflow.pyfunc.PyFuncModel``."""
    python_model = _python_model(pyfunc_model)
    encoder = getattr(python_model, "encoder", None)
    keras_model = getattr(python_model, "model", None)
    if hasattr(encoder, "transform") and hasattr(encoder, "categories") and keras_model:
        return KerasScorer(encoder, keras_model)
    logger.warning(
        "The model is no IncomeClassifier (%s); scoring through its predict method, which "
        "is slower",
        type(python_model).__name__,
    )
    return PyfuncScorer(pyfunc_model)


def _python_model(pyfunc_model):
    try:
        return pyfunc_model.unwrap_python_model()
    except MlflowException:
        # Another flavor, such as a plain Keras model, has no python_model.
        return None
