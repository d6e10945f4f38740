"""The promotion gate's decision, independent of the registry."""

from __future__ import annotations

import math

from dp_pipeline.registry import promotion_failures


def test_gate_passes_model_within_both_limits():
    assert promotion_failures(0.85, 1.0, accuracy_threshold=0.8, epsilon_budget=2.0) == []


def test_gate_passes_model_exactly_at_limits():
    assert promotion_failures(0.8, 2.0, accuracy_threshold=0.8, epsilon_budget=2.0) == []


def test_gate_names_low_accuracy_with_numbers():
    failures = promotion_failures(0.75, 1.0, accuracy_threshold=0.8, epsilon_budget=2.0)
    assert failures == ["test accuracy 0.7500 is below the threshold 0.8000"]


def test_gate_names_epsilon_over_budget_with_numbers():
    failures = promotion_failures(0.85, 3.5, accuracy_threshold=0.8, epsilon_budget=2.0)
    assert failures == ["epsilon 3.5000 exceeds the budget 2.0000"]


def test_gate_lists_both_failures():
    failures = promotion_failures(0.5, 9.0, accuracy_threshold=0.8, epsilon_budget=2.0)
    assert len(failures) == 2


def test_gate_rejects_infinite_epsilon():
    failures = promotion_failures(0.9, math.inf, accuracy_threshold=0.8, epsilon_budget=2.0)
    assert failures == ["epsilon inf exceeds the budget 2.0000"]


def test_gate_rejects_nan_accuracy():
    failures = promotion_failures(math.nan, 1.0, accuracy_threshold=0.8, epsilon_budget=2.0)
    assert failures == ["test accuracy nan is below the threshold 0.8000"]
