"""Customer lifetime value: BG/NBD purchases × Gamma-Gamma spend, discounted month by month."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from siyu.models._common import Floats, ModelError, compress, finite
from siyu.models.bgnbd import BGNBDFit, _history
from siyu.models.gammagamma import GammaGammaFit

#: Days in the month of the discounting schedule (lifetimes' ``freq="D"`` uses the same 30).
DAYS_PER_MONTH = 30.0


def clv(
    bg: BGNBDFit,
    gg: GammaGammaFit,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary: ArrayLike,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    freq_days: float = 1.0,
) -> Floats:
    """Discounted value of each customer's purchases over the next ``months`` months.

    Σ_{k=1..months} E[spend] · (E[purchases by month k] − E[purchases by month k−1]) / (1 + d)^k, with
    months of 30 days, E[spend] from Gamma-Gamma and the purchases from BG/NBD conditional on the history —
    the method of ``lifetimes.GammaGammaFitter.customer_lifetime_value``. ``discount_rate`` d is per month.
    ``freq_days`` is the length of one model period in days: 1 when recency and T are in days (Siyu's
    unit; lifetimes ``freq="D"``), 1/24 for hours (``"H"``), 30 for months (``"M"``). For weeks pass 7;
    lifetimes' ``"W"`` instead counts 4.345 weeks to a month, which is not 30 days, so the two differ there.
    The result is in the unit of ``monetary``.
    """
    if not (isinstance(months, int | np.integer) and months >= 0):
        raise ModelError("months must be a whole number ≥ 0")
    if not (np.isfinite(discount_rate) and discount_rate > -1):
        raise ModelError("discount_rate must be finite and > −1")
    if not (np.isfinite(freq_days) and freq_days > 0):
        raise ModelError("freq_days must be finite and > 0")
    x, tx, age = _history(frequency, recency, T)
    spend = gg.expected_spend(x, monetary)
    (ux, utx, uT), inverse = compress(x, tx, age)
    periods = DAYS_PER_MONTH / freq_days
    value = np.zeros(len(ux))
    before = np.zeros(len(ux))
    for month in range(1, int(months) + 1):
        by_now = bg._expected(np.full(len(ux), month * periods), ux, utx, uT)
        value += (by_now - before) / (1.0 + discount_rate) ** month
        before = by_now
    return finite("CLV", spend * value[inverse])
