"""The MLflow pyfunc that serves the classifier: raw census rows in, probability and label out."""

from __future__ import annotations

import mlflow.pyfunc

from dp_pipeline import adult

PROBABILITY = "probability"
PREDICTED_LABEL = "label"
UNKNOWN_CATEGORIES = "unknown_categories"
THRESHOLD = 0.5
PREDICT_CHUNK_ROWS = 4096


class IncomeClassifier(mlflow.pyfunc.PythonModel):
    """Encodes raw Adult rows with the bundled encoder and scores them with the Keras model.

    Artifacts: ``keras_model`` (a ``.keras`` file) and ``encoder`` (the encoder's JSON).
    A category that adult.names does not list encodes as all zeros in its one-hot block;
    the output names such values per row in ``unknown_categories``.
    """

    def load_context(self, context):
        import tensorflow as tf

        from dp_pipeline.features import AdultEncoder

        with open(context.artifacts["encoder"], encoding="utf-8") as handle:
            self.encoder = AdultEncoder.from_json(handle.read())
        self.model = tf.keras.models.load_model(context.artifacts["keras_model"])

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        frame = pd.DataFrame(model_input)
        features = self.encoder.transform(frame)
        # A direct call, because Model.predict costs tens of milliseconds per call even for
        # one row. The chunks bound memory on large batches.
        chunks = [np.zeros(0, dtype="float32")]
        for start in range(0, len(features), PREDICT_CHUNK_ROWS):
            batch = features[start : start + PREDICT_CHUNK_ROWS]
            chunks.append(self.model(batch, training=False).numpy().ravel())
        probabilities = np.concatenate(chunks)
        return pd.DataFrame(
            {
                PROBABILITY: probabilities.astype("float64"),
                PREDICTED_LABEL: np.where(
                    probabilities >= THRESHOLD,
                    adult.POSITIVE_LABEL,
                    adult.NEGATIVE_LABEL,
                ),
                UNKNOWN_CATEGORIES: self._unknown_per_row(frame),
            }
        )

    def _unknown_per_row(self, frame) -> list[str]:
        flags = [""] * len(frame)
        for column, known in self.encoder.categories.items():
            values = frame[column].astype(object)
            unknown = ~values.isin(known) & values.notna() & (values != adult.MISSING)
            for index in unknown.to_numpy().nonzero()[0]:
                entry = f"{column}={values.iloc[index]}"
                flags[index] = f"{flags[index]};{entry}" if flags[index] else entry
        return flags
