"""Churn risk: the formula, checked against a simulation of the BG/NBD's own story, and its bands."""

from __future__ import annotations

import math

import numpy as np
import pytest

from siyu.models import BGNBDFit, ModelError
from siyu.models.churn import ChurnBand, band_of, churn_risk

FIT = BGNBDFit(r=0.5, alpha=10.0, a=0.8, b=2.5, log_likelihood=0.0, n_customers=1.0, converged=True)


def simulate(n: int, *, observe: float, horizon: float, seed: int) -> tuple[np.ndarray, ...]:
    """Customers drawn from FIT's priors, first purchase at 0: x, t_x, and whether they bought in
    (observe, observe + horizon]."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(FIT.r, 1 / FIT.alpha, n)
    drop = rng.beta(FIT.a, FIT.b, n)
    t = np.zeros(n)
    x = np.zeros(n)
    tx = np.zeros(n)
    later = np.zeros(n, dtype=bool)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        t = np.where(alive, t + rng.exponential(1 / np.maximum(rate, 1e-12)), t)
        inside = alive & (t <= observe)
        x += inside
        tx = np.where(inside, t, tx)
        later |= alive & (t > observe) & (t <= observe + horizon)
        alive &= t <= observe
        alive &= rng.random(n) >= drop  # dropout right after a purchase
    return x, tx, later


class TestChurnRisk:
    def test_matches_a_simulation_of_the_model(self) -> None:
        # given: 200 000 customers of a known BG/NBD observed for 60 days
        x, tx, later = simulate(200_000, observe=60.0, horizon=30.0, seed=5)
        # when / then: among one-time buyers, and among two-repeat buyers last seen on days 50–55,
        # the share with no purchase in the next 30 days is the predicted churn risk
        for group in (x == 0, (x == 2) & (tx >= 50) & (tx < 55), (x == 2) & (tx < 10)):
            n = int(group.sum())
            assert n > 1000
            predicted = churn_risk(FIT, x[group], tx[group], np.full(n, 60.0), horizon=30.0).mean()
            observed = 1 - later[group].mean()
            assert abs(predicted - observed) < 4 * math.sqrt(observed * (1 - observed) / n) + 0.005

    def test_one_time_buyer_closed_form(self) -> None:
        # given: x = 0, so P(alive) = 1
        # when
        risk = churn_risk(FIT, [0], [0], [40], horizon=90)
        # then
        assert risk[0] == pytest.approx((50 / 140) ** 0.5)

    def test_a_longer_silence_is_riskier(self) -> None:
        # given: same purchases and age, last purchase longer ago
        recency = np.array([55.0, 40.0, 20.0, 5.0])
        # when
        risk = churn_risk(FIT, np.full(4, 3.0), recency, np.full(4, 60.0))
        # then
        assert np.all(np.diff(risk) > 0)
        assert np.all((risk >= 0) & (risk <= 1))

    def test_extreme_histories_stay_finite(self) -> None:
        risk = churn_risk(FIT, [0, 500, 1], [0, 3000, 0], [0, 3000, 10_000])
        assert np.all(np.isfinite(risk))

    @pytest.mark.parametrize("horizon", [0.0, -1.0, math.nan])
    def test_horizon_must_be_positive(self, horizon: float) -> None:
        with pytest.raises(ModelError):
            churn_risk(FIT, [1], [1], [2], horizon=horizon)


class TestBands:
    @pytest.mark.parametrize(
        ("risk", "band"),
        [
            (0.0, ChurnBand.LOW),
            (0.2999, ChurnBand.LOW),
            (0.3, ChurnBand.MEDIUM),
            (0.5999, ChurnBand.MEDIUM),
            (0.6, ChurnBand.HIGH),
            (0.8499, ChurnBand.HIGH),
            (0.85, ChurnBand.CRITICAL),
            (1.0, ChurnBand.CRITICAL),
        ],
    )
    def test_band_floors(self, risk: float, band: ChurnBand) -> None:
        assert band_of(risk) is band
