"""From features to per-member scores: the arithmetic of a refit, with no database.

Buyers (members with a purchase day) get ``clv``, ``p_alive``, ``expected_purchases_30d`` and
``churn_risk`` from BG/NBD + Gamma-Gamma; prospects (members seen but without an order) get
``high_potential``. Each part fails on its own with a :class:`~siyu.models.ModelError` message,
so degenerate data never yield a NaN score: the part is reported failed instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from siyu.models import BGNBDFit, ModelError, clv, fit_bgnbd, fit_gamma_gamma
from siyu.models import high_potential as hp
from siyu.models.churn import HORIZON_DAYS as CHURN_HORIZON_DAYS
from siyu.models.churn import churn_risk
from siyu.models.features import Engagement, PurchaseHistory

MIN_REPEAT_BUYERS = 10
"""Fewer buyers with a repeat purchase day than this and the BG/NBD is not fitted: its dropout
and spend parameters would rest on a handful of people."""
EXPECTED_DAYS = 30
CLV_MONTHS = 12
DISCOUNT_RATE = 0.01
"""Per month (about 12.7 % a year)."""
PROSPECT_HORIZON_DAYS = 30
"""High-potential: a first order within this many days."""


class ScoreName(StrEnum):
    """The ``model`` names under which scores are written (``{"score": {"model": …}}`` in segments)."""

    CLV = "clv"
    """Discounted value of the next 12 months' purchases, integer fen."""
    P_ALIVE = "p_alive"
    EXPECTED_PURCHASES = "expected_purchases_30d"
    CHURN_RISK = "churn_risk"
    HIGH_POTENTIAL = "high_potential"


BUYER_SCORES = (ScoreName.CLV, ScoreName.P_ALIVE, ScoreName.EXPECTED_PURCHASES, ScoreName.CHURN_RISK)


@dataclass
class Outcome:
    """What a refit computed: scores per model name, parameters, figures and each part's error."""

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    parts_fitted: int = 0
    log_likelihood: float | None = None
    auc: float | None = None
    n_customers: int = 0
    n_repeat: int = 0
    n_prospects: int = 0

    @property
    def members_scored(self) -> int:
        return len({m for scores in self.scores.values() for m in scores})


def _bgnbd_params(bg: BGNBDFit) -> dict[str, Any]:
    return {
        "r": bg.r,
        "alpha": bg.alpha,
        "a": bg.a,
        "b": bg.b,
        "log_likelihood": bg.log_likelihood,
        "n_customers": bg.n_customers,
        "converged": bg.converged,
    }


def score_buyers(history: PurchaseHistory, outcome: Outcome) -> None:
    """BG/NBD (+ Gamma-Gamma for CLV) on the purchase history; errors go to ``outcome.errors``."""
    outcome.n_customers = len(history)
    x, tx, age, m = history.frequency, history.recency, history.T, history.monetary
    outcome.n_repeat = int(np.count_nonzero(x > 0))
    if outcome.n_repeat < MIN_REPEAT_BUYERS:
        outcome.errors.append(
            f"clv: too few repeat buyers to fit BG/NBD: {outcome.n_repeat} of {len(history)} buyers have a "
            f"second purchase day (at least {MIN_REPEAT_BUYERS} are needed)"
        )
        return
    try:
        bg = fit_bgnbd(x, tx, age)
        alive = bg.p_alive(x, tx, age)
        expected = bg.expected_purchases(EXPECTED_DAYS, x, tx, age)
        risk = churn_risk(bg, x, tx, age, horizon=CHURN_HORIZON_DAYS)
    except ModelError as error:
        outcome.errors.append(f"clv: {error}")
        return
    outcome.params["bgnbd"] = _bgnbd_params(bg)
    outcome.log_likelihood = bg.log_likelihood
    ids = history.member_ids
    outcome.scores[ScoreName.P_ALIVE] = dict(zip(ids, alive.tolist(), strict=True))
    outcome.scores[ScoreName.EXPECTED_PURCHASES] = dict(zip(ids, expected.tolist(), strict=True))
    outcome.scores[ScoreName.CHURN_RISK] = dict(zip(ids, risk.tolist(), strict=True))
    try:
        gg = fit_gamma_gamma(x, m)
        value = clv(bg, gg, x, tx, age, m, months=CLV_MONTHS, discount_rate=DISCOUNT_RATE)
    except ModelError as error:
        outcome.errors.append(f"clv: spend (Gamma-Gamma): {error}")
        return
    outcome.params["gamma_gamma"] = {
        "p": gg.p,
        "q": gg.q,
        "v": gg.v,
        "log_likelihood": gg.log_likelihood,
        "n_customers": gg.n_customers,
        "converged": gg.converged,
    }
    outcome.params["clv"] = {"months": CLV_MONTHS, "discount_rate": DISCOUNT_RATE, "unit": "fen"}
    fen = np.floor(value + 0.5)  # integer fen, half up
    outcome.scores[ScoreName.CLV] = dict(zip(ids, fen.tolist(), strict=True))
    outcome.parts_fitted += 1


def score_prospects(training: Engagement, current: Engagement, outcome: Outcome, *, seed: int = 0) -> None:
    """Train the high-potential classifier at the cutoff and score today's prospects."""
    outcome.n_prospects = len(current)
    if training.converted is None:
        raise ValueError("the training engagement needs its labels (label_days)")
    try:
        fit = hp.train(training.values, training.converted, seed=seed)
        probability = fit.predict(current.values)
    except ModelError as error:
        outcome.errors.append(f"high_potential: {error}")
        return
    outcome.params["high_potential"] = {
        **fit.summary(),
        "cutoff": training.as_of.isoformat(),
        "horizon_days": PROSPECT_HORIZON_DAYS,
    }
    outcome.auc = fit.auc
    outcome.scores[ScoreName.HIGH_POTENTIAL] = dict(
        zip(current.member_ids, probability.tolist(), strict=True)
    )
    outcome.parts_fitted += 1


__all__ = [
    "BUYER_SCORES",
    "CLV_MONTHS",
    "DISCOUNT_RATE",
    "EXPECTED_DAYS",
    "MIN_REPEAT_BUYERS",
    "PROSPECT_HORIZON_DAYS",
    "Outcome",
    "ScoreName",
    "score_buyers",
    "score_prospects",
]
