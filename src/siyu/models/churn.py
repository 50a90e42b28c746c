"""Churn risk: the probability that a buyer makes no purchase in the next ``horizon`` days.

From a fitted BG/NBD model (:class:`siyu.models.BGNBDFit`): a buyer is either gone (probability
1 − P(alive)) or alive with a purchase rate whose posterior is Gamma(r + x, α + T), under which no
purchase in ``h`` days has probability ((α + T)/(α + T + h))^(r + x). So

    churn_risk = 1 − P(alive) + P(alive) · ((α + T) / (α + T + h))^(r + x)

Recency enters twice: through P(alive) (a long silence since the last purchase, measured against
the buyer's own rate, makes dropout likely) and through T (a one-time buyer, whom the BG/NBD
keeps alive by construction, grows riskier as their first purchase recedes). The bands are in
docs/models.md.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from siyu.models import BGNBDFit, ModelError

Floats = NDArray[np.float64]
HORIZON_DAYS = 90


class ChurnBand(StrEnum):
    """How likely a buyer is to be lost (流失风险)."""

    LOW = "low"
    """Below 0.3."""
    MEDIUM = "medium"
    """0.3 to below 0.6."""
    HIGH = "high"
    """0.6 to below 0.85: a recall campaign's audience."""
    CRITICAL = "critical"
    """0.85 and above: probably lost already."""


BAND_FLOORS: tuple[tuple[float, ChurnBand], ...] = (
    (0.85, ChurnBand.CRITICAL),
    (0.6, ChurnBand.HIGH),
    (0.3, ChurnBand.MEDIUM),
    (0.0, ChurnBand.LOW),
)


def churn_risk(
    fit: BGNBDFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    horizon: float = HORIZON_DAYS,
) -> Floats:
    """Per buyer, the probability of no purchase in the next ``horizon`` days (0…1, never NaN)."""
    if not np.isfinite(horizon) or horizon <= 0:
        raise ModelError("the churn horizon must be a positive number of days")
    x = np.asarray(frequency, dtype=np.float64)
    age = np.asarray(T, dtype=np.float64)
    alive = np.asarray(fit.p_alive(x, recency, age), dtype=np.float64)
    quiet = np.exp((fit.r + x) * (np.log(fit.alpha + age) - np.log(fit.alpha + age + horizon)))
    risk = np.clip(1.0 - alive + alive * quiet, 0.0, 1.0)
    if not np.all(np.isfinite(risk)):
        raise ModelError("churn risk is not finite for some buyers")
    return np.asarray(risk, dtype=np.float64)


def band_of(risk: float) -> ChurnBand:
    """The band of one churn-risk value."""
    for floor, band in BAND_FLOORS:
        if risk >= floor:
            return band
    return ChurnBand.LOW


__all__ = ["BAND_FLOORS", "HORIZON_DAYS", "ChurnBand", "band_of", "churn_risk"]
