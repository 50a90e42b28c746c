"""Gamma-Gamma: how much a customer spends per purchase (Fader & Hardie 2013, "The Gamma-Gamma Model of
Monetary Value", brucehardie.com note 025; first in Fader, Hardie & Lee 2005, J. Marketing Research 42).

The value of each of a customer's transactions is Gamma(p, ν) and ν ~ Gamma(q, γ) across customers; the
customer's observed average over x repeat purchases, m̄, then has a closed-form density. ``v`` here is the
note's γ (lifetimes' name). Only repeat buyers (x > 0) carry information: one-time buyers are left out of
the fit, exactly as the note fits its 946 repeat buyers out of CDNOW's 2357.

Money is in the caller's unit (Siyu: fen as floats). The fit rescales spend by its mean internally (so the
starting point suits yuan and fen alike), evaluates the log-gamma terms once per distinct x, one logarithm
per distinct (x, m̄) row, and gives L-BFGS-B the analytic gradient in (ln p, ln q, ln v).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from siyu.models._common import (
    Floats,
    ModelError,
    check_frequency,
    compress_weighted,
    dot,
    finite,
    maximise,
    per_unique,
    same_length,
    vector,
    weights_for,
)

NAMES = ("p", "q", "v")


@dataclass(frozen=True)
class GammaGammaFit:
    """A fitted Gamma-Gamma spend model (``v`` is in the unit of the spend it was fitted on)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    n_customers: float
    converged: bool
    n_rows: int = 0
    iterations: int = 0

    @property
    def mean_spend(self) -> float:
        """The population's mean spend per transaction, pγ/(q − 1); it exists only when q > 1."""
        if self.q <= 1:
            raise ModelError(f"Gamma-Gamma q = {self.q:.4g} ≤ 1: the population's mean spend is infinite")
        return self.p * self.v / (self.q - 1.0)

    def expected_spend(self, frequency: ArrayLike, monetary: ArrayLike) -> Floats:
        """Expected spend per future transaction given x repeat purchases averaging m̄ (note 025, eq. 5).

        A weighted mean of the population mean and the customer's own average, the customer's weight being
        px/(px + q − 1). For x = 0 it is the population mean (``monetary`` is ignored there). An average
        of 0 (purchases refunded in full) is allowed and pulls the estimate down; a negative one is refused.
        """
        x, m = vector("frequency", frequency), vector("monetary", monetary)
        same_length(frequency=x, monetary=m)
        check_frequency(x)
        if np.any(m[x > 0] < 0):
            raise ModelError("monetary must be ≥ 0 (negative average spend)")
        own = self.p * x / (self.p * x + self.q - 1.0)
        return finite("expected spend", (1.0 - own) * self.mean_spend + own * m)


def log_likelihood(p: float, q: float, v: float, frequency: Floats, monetary: Floats) -> Floats:
    """Each repeat buyer's log density of m̄ (note 025, eq. 1a), row by row: the uncompressed reference."""
    x, m = frequency, monetary
    density = (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1.0) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )
    return np.asarray(density, dtype=np.float64)


class _Likelihood:
    """Mean negative log-likelihood of compressed (x, m̄) rows and its gradient in (ln p, ln q, ln v)."""

    def __init__(self, x: Floats, m: Floats, weight: Floats) -> None:
        self.ux, ix = per_unique(x)
        self.n_x = np.bincount(ix, weights=weight, minlength=len(self.ux))
        self.log_ux = np.log(self.ux)
        self.x, self.xm, self.weight = x, x * m, weight
        self.wx = weight * x
        self.total = float(weight.sum())
        log_m = np.log(m)
        self.sum_w_log_m = dot(weight, log_m)
        self.sum_wx_log_m = dot(self.wx, log_m)

    def __call__(self, theta: Floats) -> tuple[float, Floats]:
        p, q, v = np.exp(theta)
        ux, n_x = self.ux, self.n_x
        px = p * ux
        per_x = gammaln(px + q) - gammaln(px) + px * self.log_ux
        psi_pxq = digamma(px + q)
        log_xmv = np.log(self.xm + v)
        inv_xmv = 1.0 / (self.xm + v)
        s_w_log = dot(self.weight, log_xmv)
        s_wx_log = dot(self.wx, log_xmv)
        s_w_inv = dot(self.weight, inv_xmv)
        s_wx_inv = dot(self.wx, inv_xmv)
        ll = (
            float(n_x @ per_x)
            - self.total * gammaln(q)
            + self.total * q * np.log(v)
            + p * self.sum_wx_log_m
            - self.sum_w_log_m
            - p * s_wx_log
            - q * s_w_log
        )
        g_p = float(n_x @ (ux * (psi_pxq - digamma(px) + self.log_ux))) + self.sum_wx_log_m - s_wx_log
        g_q = float(n_x @ psi_pxq) - self.total * digamma(q) + self.total * np.log(v) - s_w_log
        g_v = self.total * q / v - p * s_wx_inv - q * s_w_inv
        gradient = np.array([g_p * p, g_q * q, g_v * v])
        return -ll / self.total, -gradient / self.total


def fit_gamma_gamma(
    frequency: ArrayLike, monetary: ArrayLike, *, weights: ArrayLike | None = None
) -> GammaGammaFit:
    """Fit the Gamma-Gamma spend model by maximum likelihood; see the module docstring.

    ``monetary`` is each customer's average spend over their repeat purchases and must be > 0 where
    frequency > 0; rows with frequency 0 are ignored whatever their monetary value. ``weights`` counts
    the customers behind each row. :class:`ModelError` when there are no repeat buyers or the data do not
    identify the model (for example every repeat buyer spending exactly the same).
    """
    x, m = vector("frequency", frequency), vector("monetary", monetary)
    same_length(frequency=x, monetary=m)
    check_frequency(x)
    w = weights_for(weights, len(x))
    repeat = (x > 0) & (w > 0)
    if not np.any(repeat):
        raise ModelError("Gamma-Gamma needs repeat buyers: every customer has frequency 0")
    x, m, w = x[repeat], m[repeat], w[repeat]
    if np.any(m <= 0):
        raise ModelError(
            "monetary must be > 0 for every customer with frequency > 0 (zero or negative spend)"
        )
    scale = dot(w, m) / float(w.sum())
    (ux, um), counts = compress_weighted(x, m / scale, weights=w)
    optimum = maximise(
        _Likelihood(ux, um, counts), np.zeros(3), names=NAMES, model="Gamma-Gamma", customers=float(w.sum())
    )
    p, q, v = np.exp(optimum.log_params)
    v *= scale
    ll = dot(counts, log_likelihood(p, q, v, ux, um * scale))
    return GammaGammaFit(
        p=float(p),
        q=float(q),
        v=float(v),
        log_likelihood=ll,
        n_customers=float(w.sum()),
        converged=optimum.converged,
        n_rows=len(counts),
        iterations=optimum.iterations,
    )
