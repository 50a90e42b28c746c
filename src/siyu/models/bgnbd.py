"""BG/NBD: how many purchases a customer will make, and whether they are still a customer.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", Marketing Science 24(2). Each customer
buys as a Poisson process with rate λ ~ Gamma(r, α) while alive, and after each purchase drops out with
probability p ~ Beta(a, b). A customer is summarised by

* ``frequency`` x — repeat purchases (purchases after the first; whole number ≥ 0),
* ``recency`` t_x — time of the last purchase, measured from the first (0 when x = 0),
* ``T`` — the customer's age: time from the first purchase to the end of observation.

Times are in *periods*; Siyu uses days. ``alpha`` is in the same unit, ``r``, ``a``, ``b`` are unit-free.

The fit is maximum likelihood. Customers are compressed to unique (x, t_x, T) rows with counts; the terms
that depend on x alone (the log-gamma functions) are evaluated once per distinct x, and ln(α + T),
ln(α + t_x) once per distinct time. The two-term mixture is a log-sum-exp (``logaddexp``), and the gradient
with respect to the log-parameters is analytic, so L-BFGS-B needs one pass over the rows per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, expit, gammaln, hyp2f1

from siyu.models._common import (
    Floats,
    ModelError,
    compress,
    compress_weighted,
    dot,
    finite,
    maximise,
    per_unique,
    same_length,
    vector,
    weights_for,
)
from siyu.models._common import (
    check_history as _check_history,
)

NAMES = ("r", "alpha", "a", "b")


def _history(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[Floats, Floats, Floats]:
    x, tx, age = vector("frequency", frequency), vector("recency", recency), vector("T", T)
    same_length(frequency=x, recency=tx, T=age)
    _check_history(x, tx, age)
    return x, tx, age


@dataclass(frozen=True)
class BGNBDFit:
    """A fitted BG/NBD model (times in the periods the data were given in; Siyu uses days)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: float
    converged: bool
    penalizer: float = 0.0
    n_rows: int = 0
    iterations: int = 0

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> Floats:
        """Expected repeat purchases in the next ``t`` periods given the history (FHL 2005, eq. 10).

        Evaluated once per distinct (t, x, t_x, T) — the Gauss hypergeometric function is the costly
        part — and in logs: the bracket 1 − (…)^{r+x}·₂F₁ is ``-expm1`` of a log, and where ₂F₁ overflows
        the Euler transform ₂F₁(a, b; c; z) = (1 − z)^{c−a−b} ₂F₁(c − a, c − b; c; z) takes over.
        """
        x, tx, age = _history(frequency, recency, T)
        horizon = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if not np.all(np.isfinite(horizon)) or np.any(horizon < 0):
            raise ModelError("t must be finite and ≥ 0")
        try:
            columns = np.broadcast_arrays(horizon, x, tx, age)
        except ValueError as error:
            raise ModelError(f"t does not broadcast against the customers: {error}") from None
        shape = columns[0].shape
        (ut, ux, utx, uT), inverse = compress(*(np.ravel(c) for c in columns))
        values = self._expected(ut, ux, utx, uT)
        return finite("expected purchases", values[inverse].reshape(shape))

    def _expected(self, t: Floats, x: Floats, tx: Floats, T: Floats) -> Floats:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        h_a, h_b, h_c = r + x, b + x, a + b + x - 1.0
        z = t / (alpha + T + t)
        log_shrink = np.log((alpha + T) / (alpha + T + t))  # ln(1 − z)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            log_h = np.log(hyp2f1(h_a, h_b, h_c, z))
            bad = ~np.isfinite(log_h)
            if np.any(bad):
                euler = np.log(hyp2f1(h_c - h_a, h_c - h_b, h_c, z)) + (h_c - h_a - h_b) * log_shrink
                log_h = np.where(bad, euler, log_h)
        bracket = -np.expm1(log_h + (r + x) * log_shrink)
        expected: Floats = (a + b + x - 1.0) / (a - 1.0) * bracket * self._alive(x, tx, T)
        return expected

    def p_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Floats:
        """Probability the customer has not dropped out (Fader, Hardie & Lee 2008, note 021).

        1 / (1 + a/(b + x − 1)·((α + T)/(α + t_x))^{r+x}) for x > 0, and 1 for x = 0 (in the BG/NBD a
        customer can only drop out right after a purchase), computed as a logistic of the log-odds.
        """
        x, tx, age = _history(frequency, recency, T)
        return finite("P(alive)", self._alive(x, tx, age))

    def _alive(self, x: Floats, tx: Floats, T: Floats) -> Floats:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        repeat = x > 0
        log_odds = np.log(a / (b + np.maximum(x, 1.0) - 1.0)) + (r + x) * np.log((alpha + T) / (alpha + tx))
        return np.where(repeat, expit(-log_odds), 1.0)


def log_likelihood(
    r: float, alpha: float, a: float, b: float, frequency: Floats, recency: Floats, T: Floats
) -> Floats:
    """Each customer's BG/NBD log-likelihood (FHL 2005, eq. 6), row by row: the uncompressed reference."""
    x = frequency
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - (r + x) * np.log(alpha + recency)
    mixture = np.where(x > 0, np.logaddexp(a3, a4), a3)
    return np.asarray(a1 + a2 + mixture, dtype=np.float64)


class _Likelihood:
    """The mean negative log-likelihood of compressed rows and its gradient in (ln r, ln α, ln a, ln b).

    Only the mixture term of repeat buyers needs a pass over rows; everything else is summed per distinct
    x or per distinct T beforehand: Σ w(r + x)·ln(α + T) = Σ_T ln(α + T)·(r·W_T + X_T).
    """

    def __init__(
        self, x: Floats, tx: Floats, T: Floats, weight: Floats, penalizer: float, unit: float = 1.0
    ) -> None:
        """Rows in the data's own units; ``unit`` is the length (in those units) that becomes 1 inside."""
        self.total = float(weight.sum())
        self.penalizer = penalizer
        self.ux, ix = per_unique(x)
        self.n_x = np.bincount(ix, weights=weight, minlength=len(self.ux))
        self.uT, iT = per_unique(T)
        self.uT = self.uT / unit
        self.w_T = np.bincount(iT, weights=weight, minlength=len(self.uT))
        self.xw_T = np.bincount(iT, weights=weight * x, minlength=len(self.uT))
        rep = x > 0
        self.utx, self.itx = per_unique(tx[rep])
        self.utx = self.utx / unit
        self.ix_rep, self.iT_rep = ix[rep], iT[rep]
        self.x_rep, self.w_rep = x[rep], weight[rep]
        self.repeat_x = self.ux > 0

    def __call__(self, theta: Floats) -> tuple[float, Floats]:
        r, alpha, a, b = np.exp(theta)
        ux, n_x = self.ux, self.n_x
        # terms in x alone (A1 + A2 of FHL 2005 §7), weighted by the customers at each x
        per_x = (
            gammaln(r + ux)
            - gammaln(r)
            + r * np.log(alpha)
            + gammaln(a + b)
            + gammaln(b + ux)
            - gammaln(b)
            - gammaln(a + b + ux)
        )
        dr_x = digamma(r + ux) - digamma(r) + np.log(alpha)
        da_x = digamma(a + b) - digamma(a + b + ux)
        db_x = da_x + digamma(b + ux) - digamma(b)
        # A3 = −(r + x) ln(α + T), summed per distinct T
        log_T = np.log(alpha + self.uT)
        inv_T = 1.0 / (alpha + self.uT)
        rx_T = r * self.w_T + self.xw_T
        ll = float(n_x @ per_x) - float(rx_T @ log_T)
        g_r = float(n_x @ dr_x) - float(self.w_T @ log_T)
        g_alpha = self.total * r / alpha - float(rx_T @ inv_T)
        g_a = float(n_x @ da_x)
        g_b = float(n_x @ db_x)
        # repeat buyers add exp(A4): L = A3 + softplus(d), d = A4 − A3, whose weight on A4 is expit(d)
        if len(self.x_rep):
            b_x = np.where(self.repeat_x, b + ux - 1.0, 1.0)  # b + x − 1, needed for x ≥ 1 only
            w = self.w_rep
            log_gap = np.log(alpha + self.utx)[self.itx]
            log_gap -= log_T[self.iT_rep]
            rxr = r + self.x_rep
            d = (np.log(a) - np.log(b_x))[self.ix_rep]
            d -= rxr * log_gap
            # softplus(d) = max(d, 0) + ln(1 + e^−|d|), which cannot overflow
            tail = np.abs(d)
            np.negative(tail, out=tail)
            np.exp(tail, out=tail)  # e^−|d|
            share = np.where(d >= 0, w, w * tail)  # w·expit(d) = w·(1 or e^−|d|) / (1 + e^−|d|)
            tail += 1.0
            share /= tail
            softplus = np.log(tail)
            softplus += np.maximum(d, 0.0)
            ll += dot(w, softplus)
            g_r -= dot(share, log_gap)
            inv_gap = (1.0 / (alpha + self.utx))[self.itx]
            inv_gap -= inv_T[self.iT_rep]
            share_rx = share * rxr
            g_alpha -= dot(share_rx, inv_gap)
            g_a += float(share.sum()) / a
            per_x_share = np.bincount(self.ix_rep, weights=share, minlength=len(ux))
            g_b -= float(per_x_share @ (1.0 / b_x))
        params = np.array([r, alpha, a, b])
        gradient = np.array([g_r, g_alpha, g_a, g_b]) * params  # chain rule into log-parameters
        value = -ll / self.total + self.penalizer * float(params @ params)
        return value, -gradient / self.total + 2.0 * self.penalizer * params * params


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
) -> BGNBDFit:
    """Fit BG/NBD by maximum likelihood on customers' (frequency, recency, T); see the module docstring.

    ``weights`` counts the customers behind each row (for data already compressed). ``penalizer`` adds
    ``penalizer·(r² + α² + a² + b²)`` to the mean negative log-likelihood with α measured in units of the
    oldest customer's age — the same scaling and penalty as ``lifetimes.BetaGeoFitter(penalizer_coef)``.
    The fit is an error (:class:`ModelError`) when nobody bought twice or the parameters run off to 0 or ∞.
    """
    if not (np.isfinite(penalizer) and penalizer >= 0):
        raise ModelError("penalizer must be finite and ≥ 0")
    x, tx, age = _history(frequency, recency, T)
    w = weights_for(weights, len(x))
    if not np.any((x > 0) & (w > 0)):
        raise ModelError("BG/NBD needs repeat purchases: every customer has frequency 0")
    oldest = float(age[w > 0].max())
    if oldest <= 0:
        raise ModelError("every customer has age T = 0: there is no time to observe purchases in")
    (ux, utx, uT), counts = compress_weighted(x, tx, age, weights=w)
    likelihood = _Likelihood(ux, utx, uT, counts, penalizer, unit=oldest)
    optimum = maximise(likelihood, np.zeros(4), names=NAMES, model="BG/NBD", customers=float(w.sum()))
    r, alpha, a, b = np.exp(optimum.log_params)
    alpha *= oldest
    ll = dot(counts, log_likelihood(r, alpha, a, b, ux, utx, uT))
    return BGNBDFit(
        r=float(r),
        alpha=float(alpha),
        a=float(a),
        b=float(b),
        log_likelihood=ll,
        n_customers=float(w.sum()),
        converged=optimum.converged,
        penalizer=float(penalizer),
        n_rows=len(counts),
        iterations=optimum.iterations,
    )
