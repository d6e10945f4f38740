"""DP-SGD training: Poisson sampling, the clipped and normalised update, and planning."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dp_pipeline import privacy, training
from dp_pipeline.errors import PrivacyParameterError


def test_poisson_sample_sizes_have_binomial_mean_and_variance():
    n, q, steps = 5000, 0.02, 3000
    sizes = np.array([len(batch) for batch in training.poisson_sample(n, q, steps)])
    assert len(sizes) == steps
    assert sizes.mean() == pytest.approx(n * q, rel=0.02)
    assert sizes.var() == pytest.approx(n * q * (1 - q), rel=0.1)


def test_poisson_sample_includes_each_example_at_rate_q():
    n, q, steps = 2000, 0.1, 500
    counts = np.zeros(n)
    for batch in training.poisson_sample(n, q, steps):
        counts[batch] += 1
    assert counts.mean() / steps == pytest.approx(q, rel=0.03)
    assert counts.min() > 0


def test_poisson_sample_draws_fresh_randomness_each_call():
    first = training.poisson_sample(1000, 0.05, 3)
    second = training.poisson_sample(1000, 0.05, 3)
    assert any(not np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_poisson_dataset_gathers_sampled_rows():
    features = np.arange(20, dtype="float32").reshape(10, 2)
    labels = np.arange(10, dtype="float32").reshape(10, 1)
    batches = [np.array([1, 4], dtype="int32"), np.array([], dtype="int32")]
    gathered = list(training.poisson_dataset(features, labels, batches).as_numpy_iterator())
    np.testing.assert_array_equal(gathered[0][1].ravel(), [1, 4])
    assert gathered[1][0].shape == (0, 2)


def test_plan_uses_expected_batch_for_sampling_rate():
    plan = training.plan_privacy(training.TrainingConfig(epochs=3, batch_size=100), 10_000)
    assert plan.sampling_probability == pytest.approx(0.01)
    assert plan.steps == 300


def test_plan_calibrates_noise_for_target_epsilon():
    config = training.TrainingConfig(epochs=5, batch_size=200, target_epsilon=2.0)
    plan = training.plan_privacy(config, 20_000)
    epsilon = privacy.epsilon_pld(
        plan.sampling_probability, plan.noise_multiplier, plan.steps, 1e-5
    )
    assert epsilon == pytest.approx(2.0, rel=0.01)


def test_plan_refuses_delta_at_one_over_n():
    config = training.TrainingConfig(delta=1e-3)
    with pytest.raises(PrivacyParameterError, match="n = 1000 training examples"):
        training.plan_privacy(config, 1000)


def test_plan_refuses_batch_larger_than_data():
    with pytest.raises(PrivacyParameterError, match="batch_size must not exceed the 100"):
        training.plan_privacy(training.TrainingConfig(batch_size=256, delta=1e-4), 100)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("epochs", 0, "epochs must be at least 1"),
        ("learning_rate", 0.0, "learning_rate must be positive"),
        ("noise_multiplier", -1.0, "noise_multiplier must be >= 0"),
    ],
)
def test_config_rejects_invalid_value(field, value, match):
    with pytest.raises(ValueError, match=match):
        training.TrainingConfig(**{field: value})


def test_config_from_params_casts_integer_floats():
    config = training.TrainingConfig.from_params({"l2_norm_clip": 1, "noise_multiplier": 2})
    assert isinstance(config.l2_norm_clip, float)
    assert isinstance(config.noise_multiplier, float)


def test_config_from_params_ignores_other_keys():
    config = training.TrainingConfig.from_params({"epochs": 2, "accuracy_threshold": 0.8})
    assert config.epochs == 2


def test_dp_step_matches_manual_clipping():
    tf.keras.utils.set_random_seed(0)
    clip, expected_batch = 0.5, 10.0
    plan = privacy.DpSgdParameters(
        examples=100,
        expected_batch_size=expected_batch,
        steps=1,
        noise_multiplier=0.0,
        l2_norm_clip=clip,
        epochs=1,
    )
    model = training.build_mlp(4, dp=plan)
    loss = tf.keras.losses.BinaryCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.SUM
    )
    model.compile(optimizer=tf.keras.optimizers.SGD(1.0), loss=loss)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4)).astype("float32") * 5
    y = rng.integers(0, 2, size=(6, 1)).astype("float32")
    before = [weight.numpy().copy() for weight in model.trainable_variables]

    expected = [np.zeros_like(weight) for weight in before]
    for index in range(len(x)):
        with tf.GradientTape() as tape:
            example_loss = loss(y[index : index + 1], model(x[index : index + 1]))
        grads = tape.gradient(example_loss, model.trainable_variables)
        norm = np.sqrt(sum(np.sum(grad.numpy() ** 2) for grad in grads))
        scale = min(1.0, clip / norm)
        for total, grad in zip(expected, grads, strict=True):
            total += grad.numpy() * scale

    model.train_on_batch(x, y)
    for old, new, summed in zip(before, model.trainable_variables, expected, strict=True):
        np.testing.assert_allclose(old - new.numpy(), summed / expected_batch, rtol=1e-4, atol=1e-6)


def test_dp_model_uses_fast_clipping():
    plan = privacy.DpSgdParameters(100, 10.0, 1, 1.0, 1.0, 1)
    model = training.build_mlp(4, dp=plan)
    assert model._enable_fast_peg_computation


def test_fit_and_export_predict_probabilities():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(400, 5)).astype("float32")
    labels = (features[:, :1] > 0).astype("float32")
    config = training.TrainingConfig(epochs=3, batch_size=40, noise_multiplier=0.5, delta=1e-4)
    plan = training.plan_privacy(config, len(labels))
    model = training.fit_dp_model(features, labels, plan, config)
    probabilities = training.export_model(model, 5).predict(features, verbose=0)
    assert probabilities.shape == (400, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
