"""The loss-threshold membership-inference audit on models with known behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from dp_pipeline.audit import membership_attack_auc, per_example_loss


class LookupModel:
    """Predicts a fixed probability per row, read from the row's first feature."""

    def predict(self, features, batch_size=None, verbose=0):
        return features[:, :1]


def rows(probabilities, labels):
    features = np.asarray(probabilities, dtype="float32").reshape(-1, 1)
    return features, np.asarray(labels, dtype="float32").reshape(-1, 1)


def test_per_example_loss_is_binary_cross_entropy():
    features, labels = rows([0.9, 0.2], [1, 0])
    losses = per_example_loss(LookupModel(), features, labels)
    np.testing.assert_allclose(losses, [-np.log(0.9), -np.log(0.8)], rtol=1e-6)


def test_attack_on_memorising_model_is_perfect():
    members = rows(np.full(500, 0.99), np.ones(500))
    non_members = rows(np.full(500, 0.6), np.ones(500))
    auc = membership_attack_auc(LookupModel(), members, non_members, rows=400, seed=0)
    assert auc == pytest.approx(1.0)


def test_attack_on_model_that_ignores_membership_is_chance():
    rng = np.random.default_rng(0)
    members = rows(rng.uniform(0.05, 0.95, 4000), rng.integers(0, 2, 4000))
    non_members = rows(rng.uniform(0.05, 0.95, 4000), rng.integers(0, 2, 4000))
    auc = membership_attack_auc(LookupModel(), members, non_members, rows=4000, seed=1)
    assert auc == pytest.approx(0.5, abs=0.03)


def test_attack_uses_equal_sample_sizes():
    members = rows(np.full(50, 0.9), np.ones(50))
    non_members = rows(np.full(5000, 0.9), np.ones(5000))
    auc = membership_attack_auc(LookupModel(), members, non_members, rows=1000, seed=0)
    assert auc == pytest.approx(0.5)
