"""Privacy accounting checked against independent references."""

from __future__ import annotations

import math

import pytest
from scipy import optimize, stats

from dp_pipeline import privacy
from dp_pipeline.errors import PrivacyParameterError

DELTA = 1e-5


def analytic_gaussian_epsilon(sigma: float, delta: float) -> float:
    """Exact epsilon of the Gaussian mechanism with sensitivity 1 (Balle and Wang, 2018)."""

    def delta_at(epsilon: float) -> float:
        return stats.norm.cdf(0.5 / sigma - epsilon * sigma) - math.exp(epsilon) * stats.norm.cdf(
            -0.5 / sigma - epsilon * sigma
        )

    return optimize.brentq(lambda epsilon: delta_at(epsilon) - delta, 1e-6, 100.0)


@pytest.mark.parametrize("sigma", [0.8, 1.5, 4.0])
def test_pld_full_batch_step_matches_analytic_gaussian(sigma):
    expected = analytic_gaussian_epsilon(sigma, DELTA)
    actual = privacy.epsilon_pld(1.0, sigma, 1, DELTA)
    assert actual == pytest.approx(expected, rel=0.01)
    assert actual >= expected * 0.999, "the PLD accountant must not under-report epsilon"


@pytest.mark.parametrize(
    ("q", "sigma", "steps"),
    [(0.0087, 1.1, 1710), (0.01, 0.8, 1000), (0.05, 2.0, 200), (1.0, 5.0, 10)],
)
def test_pld_epsilon_not_above_rdp(q, sigma, steps):
    pld = privacy.epsilon_pld(q, sigma, steps, DELTA)
    rdp = privacy.epsilon_rdp(q, sigma, steps, DELTA)
    assert pld <= rdp


@pytest.mark.parametrize("target", [0.5, 1.0, 4.0])
def test_calibrated_noise_reproduces_target_epsilon(target):
    q, steps = 256 / 29_305, 1710
    sigma = privacy.calibrate_noise_multiplier(target, q, steps, DELTA)
    epsilon = privacy.epsilon_pld(q, sigma, steps, DELTA)
    assert epsilon <= target
    assert epsilon == pytest.approx(target, rel=0.01)


def test_more_noise_gives_smaller_epsilon():
    q, steps = 0.01, 500
    assert privacy.epsilon_pld(q, 2.0, steps, DELTA) < privacy.epsilon_pld(q, 1.0, steps, DELTA)


def test_zero_noise_is_infinite_epsilon():
    assert privacy.epsilon_pld(0.01, 0.0, 100, DELTA) == math.inf


def test_delta_of_one_over_n_is_refused():
    with pytest.raises(PrivacyParameterError, match=r"n = 1000 training examples.*below 0.001"):
        privacy.check_delta(1 / 1000, 1000)


def test_delta_below_one_over_n_is_accepted():
    privacy.check_delta(0.99 / 1000, 1000)


@pytest.mark.parametrize("delta", [0.0, -1e-6])
def test_non_positive_delta_is_refused(delta):
    with pytest.raises(PrivacyParameterError, match="delta must be in"):
        privacy.check_delta(delta, 1000)


def test_sampling_probability_outside_unit_interval_is_refused():
    with pytest.raises(PrivacyParameterError, match="sampling_probability must be in"):
        privacy.dp_sgd_event(1.5, 1.0, 10)


def test_account_reports_every_statement_field():
    parameters = privacy.DpSgdParameters(
        examples=29_305,
        expected_batch_size=256,
        steps=1710,
        noise_multiplier=1.6,
        l2_norm_clip=1.0,
        epochs=15,
    )
    figures = privacy.account(parameters, DELTA)
    statement = privacy.privacy_statement(figures)
    assert figures["epsilon"] <= figures["epsilon_rdp"]
    for field in (
        "epsilon (PLD accountant",
        "epsilon (RDP accountant",
        "delta",
        "Poisson, rate q = 0.008736",
        "steps | 1710",
        "epochs",
        "noise multiplier sigma | 1.6000",
        "clipping norm C",
        "## Assumptions",
        "public information",
        "person-level",
    ):
        assert field in statement, f"statement lacks {field!r}"
