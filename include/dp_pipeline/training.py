"""Train step: a Keras MLP trained with DP-SGD, run inside the isolated TensorFlow environment.

Per-example clipping uses TensorFlow Privacy's fast gradient clipping (the layer registry
of its DP Keras models), which computes per-example gradient norms from one backward pass
instead of one per example. Batches are drawn by Poisson sampling, and the noisy gradient
sum is divided by the expected batch size, so the run matches the accounting in
``dp_pipeline.privacy`` exactly.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dp_pipeline import adult, privacy, storage
from dp_pipeline.errors import PrivacyParameterError

logger = logging.getLogger(__name__)

HIDDEN_UNITS = (64, 32)
# Steps whose Poisson samples are drawn in one vectorised call, bounding memory to about
# 128 * n bytes.
POISSON_CHUNK_STEPS = 128


FLOAT_FIELDS = ("learning_rate", "l2_norm_clip", "noise_multiplier", "target_epsilon", "delta")


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of one training run, as the DAG params give them."""

    epochs: int = 15
    batch_size: int = 256
    learning_rate: float = 0.002
    l2_norm_clip: float = 1.0
    noise_multiplier: float = 1.1
    target_epsilon: float | None = None
    delta: float = 1e-5
    seed: int = 42
    train_baseline: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1. Found {getattr(self, name)}.")
        for name in ("learning_rate", "l2_norm_clip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive. Found {getattr(self, name)}.")
        if self.noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0. Found {self.noise_multiplier}.")

    @classmethod
    def from_params(cls, params: dict) -> TrainingConfig:
        """Build the config from DAG params, ignoring the params of other steps.

        The Airflow UI sends a whole-number float such as 1.0 as the integer 1, which
        TensorFlow would then refuse to mix with float tensors, so float fields are cast.
        """
        names = cls.__dataclass_fields__
        values = {key: value for key, value in params.items() if key in names}
        for key in FLOAT_FIELDS:
            if values.get(key) is not None:
                values[key] = float(values[key])
        return cls(**values)


def plan_privacy(config: TrainingConfig, examples: int) -> privacy.DpSgdParameters:
    """Fix the sampling rate, step count and noise multiplier before any training.

    In target-epsilon mode the noise multiplier is the smallest that meets the target.
    """
    privacy.check_delta(config.delta, examples)
    if config.batch_size > examples:
        raise PrivacyParameterError(
            f"batch_size must not exceed the {examples} training examples. "
            f"Found {config.batch_size}."
        )
    steps_per_epoch = max(1, round(examples / config.batch_size))
    steps = config.epochs * steps_per_epoch
    q = config.batch_size / examples
    sigma = config.noise_multiplier
    if config.target_epsilon is not None:
        sigma = privacy.calibrate_noise_multiplier(config.target_epsilon, q, steps, config.delta)
        logger.info(
            "Calibrated noise multiplier %.4f for target epsilon %g at delta %g",
            sigma,
            config.target_epsilon,
            config.delta,
        )
    return privacy.DpSgdParameters(
        examples=examples,
        expected_batch_size=float(config.batch_size),
        steps=steps,
        noise_multiplier=sigma,
        l2_norm_clip=config.l2_norm_clip,
        epochs=config.epochs,
    )


def build_mlp(input_dim: int, *, dp: privacy.DpSgdParameters | None = None):
    """Build the MLP that outputs one logit; with ``dp``, as a Poisson DP-SGD model."""
    import tensorflow as tf

    layers = [tf.keras.Input(shape=(input_dim,))]
    layers += [tf.keras.layers.Dense(units, activation="relu") for units in HIDDEN_UNITS]
    layers.append(tf.keras.layers.Dense(1))
    if dp is None:
        return tf.keras.Sequential(layers)
    return _poisson_dp_sequential_class()(
        expected_batch_size=dp.expected_batch_size,
        l2_norm_clip=dp.l2_norm_clip,
        noise_multiplier=dp.noise_multiplier,
        layers=layers,
    )


def _poisson_dp_sequential_class():
    import tensorflow as tf
    import tensorflow_privacy
    from tensorflow_privacy.privacy.fast_gradient_clipping import (
        clip_grads,
        layer_registry,
    )

    class PoissonDPSequential(tensorflow_privacy.DPSequential):
        """DPSequential whose noisy gradient sum is divided by the expected batch size.

        TensorFlow Privacy divides by the actual batch size, which is fine for fixed
        batches but, under Poisson sampling, makes each step's output depend on how many
        examples were drawn, which the subsampled Gaussian analysis does not cover.
        """

        def __init__(self, expected_batch_size, **kwargs):
            super().__init__(
                layer_registry=layer_registry.make_default_layer_registry(),
                use_xla=False,  # batch sizes vary, and XLA would recompile for each size
                **kwargs,
            )
            if not self._enable_fast_peg_computation:
                raise ValueError("Every trainable layer must be in the fast clipping registry")
            self._expected_batch_size = float(expected_batch_size)
            # Noise and sampling must stay unpredictable even to someone who has the seed.
            self._noise = tf.random.Generator.from_non_deterministic_state()

        def train_step(self, data):
            if self._clipping_loss is None:
                self._make_clipping_loss()
            x, y, weights = tf.keras.utils.unpack_x_y_sample_weight(data)
            clipped_sums, y_pred, _ = clip_grads.compute_clipped_gradients_and_outputs(
                input_model=self,
                x_batch=x,
                y_batch=y,
                weight_batch=weights,
                l2_norm_clip=self._l2_norm_clip,
                layer_registry=self._layer_registry,
                clipping_loss=self._clipping_loss,
            )
            stddev = self._l2_norm_clip * self._noise_multiplier
            gradients = [
                (grad + self._noise.normal(tf.shape(grad), stddev=stddev))
                / self._expected_batch_size
                for grad in clipped_sums
            ]
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=False))
            self.compiled_metrics.update_state(y, y_pred, weights)
            return {metric.name: metric.result() for metric in self.metrics}

    return PoissonDPSequential


def poisson_sample(examples: int, sampling_probability: float, steps: int) -> list:
    """Draw each step's batch: every example joins independently with the given rate.

    Returns one array of example indices per step. The generator takes fresh OS entropy,
    never the run's seed, because the privacy amplification of sampling holds only if
    the sample stays secret.
    """
    import numpy as np

    rng = np.random.default_rng()
    batches = []
    for start in range(0, steps, POISSON_CHUNK_STEPS):
        chunk = min(POISSON_CHUNK_STEPS, steps - start)
        included = rng.random((chunk, examples)) < sampling_probability
        batches.extend(np.flatnonzero(row).astype("int32") for row in included)
    return batches


def poisson_dataset(features, labels, batches):
    """Build a tf.data pipeline that gathers each step's rows inside the graph."""
    import numpy as np
    import tensorflow as tf

    indices = tf.RaggedTensor.from_row_lengths(
        np.concatenate(batches), [len(batch) for batch in batches]
    )
    features, labels = tf.constant(features), tf.constant(labels)
    return (
        tf.data.Dataset.from_tensor_slices(indices)
        .map(lambda chosen: (tf.gather(features, chosen), tf.gather(labels, chosen)))
        .prefetch(tf.data.AUTOTUNE)
    )


def fit_dp_model(features, labels, dp: privacy.DpSgdParameters, config: TrainingConfig):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(config.seed)  # weight initialisation only
    model = build_mlp(features.shape[1], dp=dp)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        # Summed per-example losses: the train step normalises by the expected batch size.
        loss=tf.keras.losses.BinaryCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.SUM
        ),
        metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    batches = poisson_sample(len(labels), dp.sampling_probability, dp.steps)
    dataset = poisson_dataset(features, labels, batches)
    model.fit(dataset, epochs=dp.epochs, steps_per_epoch=dp.steps // dp.epochs, verbose=2)
    return model


def fit_baseline(features, labels, config: TrainingConfig):
    """Train the same MLP without privacy: shuffled fixed batches, mean loss, same epochs."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(config.seed)
    model = build_mlp(features.shape[1])
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    model.fit(
        features,
        labels,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=2,
    )
    return model


def export_model(trained, input_dim: int):
    """Copy trained weights into a plain Keras model that ends in a sigmoid.

    The plain model has no TensorFlow Privacy classes in it, so loading it needs only
    Keras.
    """
    import tensorflow as tf

    plain = build_mlp(input_dim)
    plain.set_weights(trained.get_weights())
    return tf.keras.Sequential(
        [tf.keras.Input(shape=(input_dim,)), plain, tf.keras.layers.Activation("sigmoid")]
    )


def load_xy(uri: str, encoder):
    from dp_pipeline.preprocess import read_parquet

    frame = read_parquet(uri)
    features = encoder.transform(frame)
    labels = frame[adult.LABEL].to_numpy(dtype="float32").reshape(-1, 1)
    return features, labels


def train(splits: dict[str, str], output_prefix: str, params: dict) -> dict:
    """Train the DP model on ``splits['train']`` and store it under ``output_prefix``.

    Returns the model's URI and the parameters that privacy accounting needs. Unless
    ``train_baseline`` is false, a non-private model of the same architecture is also
    trained on the same data and epochs, as a reference that is evaluated but never
    registered.
    """
    from dp_pipeline.features import AdultEncoder

    config = TrainingConfig.from_params(params)
    encoder = AdultEncoder.from_json(storage.get_bytes(splits["encoder"]).decode())
    features, labels = load_xy(splits["train"], encoder)
    dp = plan_privacy(config, len(labels))
    logger.info("Training with DP-SGD: %s", asdict(dp))
    started = time.perf_counter()
    model = fit_dp_model(features, labels, dp, config)
    train_seconds = time.perf_counter() - started
    logger.info("DP training took %.1f s", train_seconds)
    result = {
        "model": save_model(model, features.shape[1], storage.join(output_prefix, "model.keras")),
        "train_seconds": round(train_seconds, 2),
        "learning_rate": config.learning_rate,
        "target_epsilon": config.target_epsilon,
        **asdict(dp),
    }
    if config.train_baseline:
        started = time.perf_counter()
        baseline = fit_baseline(features, labels, config)
        result["baseline_train_seconds"] = round(time.perf_counter() - started, 2)
        logger.info("Non-private baseline took %.1f s", result["baseline_train_seconds"])
        baseline_uri = storage.join(output_prefix, "baseline.keras")
        result["baseline_model"] = save_model(baseline, features.shape[1], baseline_uri)
    return result


def save_model(trained, input_dim: int, uri: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        export_model(trained, input_dim).save(path)
        return storage.upload_file(path, uri)
