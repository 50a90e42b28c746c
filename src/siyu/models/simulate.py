"""Customers drawn from the BG/NBD + Gamma-Gamma generative process (tests, benchmarks, demos).

Per customer: age T uniform in whole days 1…max_age_days; purchase rate λ ~ Gamma(r, rate α); dropout
probability p ~ Beta(a, b), the customer leaving after the K-th repeat purchase, K ~ Geometric(p).
Repeat purchases x = min(N, K) with N ~ Poisson(λT), the x-th of N uniform purchase times giving recency
(T·Beta(x, N − x + 1)), floored to whole days as Siyu's daily data are. Spend: ν ~ Gamma(q, rate γ); each
purchase ~ Gamma(p, rate ν), so the average of x purchases is Gamma(px, rate νx); totals are rounded to
whole units of money (fen) and ``monetary`` is that total over x (0 for one-time buyers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siyu.models._common import Floats


@dataclass(frozen=True)
class SimulatedCustomers:
    frequency: Floats
    recency: Floats
    T: Floats
    monetary: Floats


def simulate_customers(
    n: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    p: float,
    q: float,
    v: float,
    max_age_days: int = 365,
    seed: int = 0,
) -> SimulatedCustomers:
    rng = np.random.default_rng(seed)
    T = rng.integers(1, max_age_days + 1, n).astype(np.float64)
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = rng.beta(a, b, n)
    events = rng.poisson(rate * T)
    lifetime = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    x = np.minimum(events, lifetime)
    repeat = x > 0
    recency = np.zeros(n)
    recency[repeat] = np.floor(T[repeat] * rng.beta(x[repeat], events[repeat] - x[repeat] + 1))
    nu = rng.gamma(q, 1.0 / v, n)
    monetary = np.zeros(n)
    xr = x[repeat].astype(np.float64)
    average = rng.gamma(p * xr, 1.0 / (nu[repeat] * xr))
    monetary[repeat] = np.maximum(1.0, np.round(average * xr)) / xr
    return SimulatedCustomers(x.astype(np.float64), recency, T, monetary)
