"""Incremental lift of a campaign against its randomised holdout (增量效果), with 95 % intervals.

Pure functions, no database: :mod:`siyu.campaigns.results` counts in SQL and hands the counts
and sums here.

* :func:`conversion_lift` — treatment conversion rate − holdout conversion rate, with
  **Newcombe's hybrid score interval** (Newcombe 1998, method 10: two Wilson score intervals
  combined). Chosen over the Wald interval because it keeps close to its nominal coverage with
  small groups and rates near 0 or 1 (where Wald collapses to a zero-width interval when a
  group has no conversions), and it never needs a continuity correction.
* :func:`mean_lift` — difference of the mean GMV per assigned member (zeros included) between
  the groups, with **Welch's t interval** (unequal variances, Welch–Satterthwaite degrees of
  freedom), and the total incremental GMV = per-member lift × treated members with its interval
  scaled the same way.

Both say honestly when there is no interval: an empty group, a group of one (no variance can be
estimated), or no variance at all (every member has the same value in both groups); ``reason``
says which. The Student t quantile is computed here (regularised incomplete beta + bisection)
so that the module needs no SciPy; tests check it against tabulated values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "ConversionLift",
    "GroupSums",
    "Interval",
    "MeanLift",
    "conversion_lift",
    "mean_lift",
    "student_t_quantile",
    "wilson_interval",
]

SMALL_GROUP = 30
"""Below this many members in a group the result carries a note that the interval is rough."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class ConversionLift:
    """Rates are fractions (0.13 = 13 %); ``lift`` is in absolute rate points (0.03 = +3 pp)."""

    treatment_n: int
    treatment_converted: int
    treatment_rate: float | None
    holdout_n: int
    holdout_converted: int
    holdout_rate: float | None
    lift: float | None
    interval: Interval | None
    confidence: float
    method: str
    reason: str | None
    """Why there is no lift or no interval, or a caveat (small groups); ``None`` when all is well."""

    @property
    def significant(self) -> bool:
        return self.interval is not None and self.interval.excludes_zero


@dataclass(frozen=True)
class GroupSums:
    """What SQL hands over for one group: members, Σx and Σx² of the per-member value."""

    n: int
    total: float
    sum_squares: float

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The sample variance (n − 1), never negative (rounding of Σx² is clipped)."""
        if self.n < 2:
            return None
        return max(0.0, (self.sum_squares - self.total * self.total / self.n) / (self.n - 1))

    @classmethod
    def of(cls, values: list[float] | list[int]) -> GroupSums:
        return cls(len(values), float(sum(values)), float(sum(v * v for v in values)))


@dataclass(frozen=True)
class MeanLift:
    treatment_n: int
    treatment_mean: float | None
    holdout_n: int
    holdout_mean: float | None
    lift: float | None
    """Difference of the means (per member)."""
    interval: Interval | None
    degrees_of_freedom: float | None
    total_lift: float | None
    """``lift × scale_n`` (the treated members): the campaign's total increment."""
    total_interval: Interval | None
    confidence: float
    method: str
    reason: str | None

    @property
    def significant(self) -> bool:
        return self.interval is not None and self.interval.excludes_zero


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """Wilson's score interval of a proportion (n ≥ 1)."""
    if n <= 0:
        raise ValueError("n must be positive")
    z = _z(confidence)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def conversion_lift(
    treatment_n: int,
    treatment_converted: int,
    holdout_n: int,
    holdout_converted: int,
    *,
    confidence: float = 0.95,
) -> ConversionLift:
    """Treatment rate − holdout rate with Newcombe's hybrid score interval."""
    for name, conv, n in (
        ("treatment", treatment_converted, treatment_n),
        ("holdout", holdout_converted, holdout_n),
    ):
        if n < 0 or conv < 0 or conv > n:
            raise ValueError(f"{name}: converted must be within 0..n")
    t_rate = treatment_converted / treatment_n if treatment_n else None
    h_rate = holdout_converted / holdout_n if holdout_n else None

    def result(lift: float | None, interval: Interval | None, reason: str | None) -> ConversionLift:
        return ConversionLift(
            treatment_n,
            treatment_converted,
            t_rate,
            holdout_n,
            holdout_converted,
            h_rate,
            lift,
            interval,
            confidence,
            "newcombe_hybrid_score",
            reason,
        )

    if t_rate is None or h_rate is None:
        empty = "holdout" if h_rate is None else "treatment"
        return result(None, None, f"the {empty} group is empty: no comparison, no interval")
    lift = t_rate - h_rate
    t_low, t_high = _as_pair(wilson_interval(treatment_converted, treatment_n, confidence=confidence))
    h_low, h_high = _as_pair(wilson_interval(holdout_converted, holdout_n, confidence=confidence))
    low = lift - math.sqrt((t_rate - t_low) ** 2 + (h_high - h_rate) ** 2)
    high = lift + math.sqrt((t_high - t_rate) ** 2 + (h_rate - h_low) ** 2)
    reason = None
    if min(treatment_n, holdout_n) < SMALL_GROUP:
        reason = f"a group has fewer than {SMALL_GROUP} members: the interval is rough"
    return result(lift, Interval(max(-1.0, low), min(1.0, high)), reason)


def _as_pair(interval: Interval) -> tuple[float, float]:
    return interval.low, interval.high


def mean_lift(
    treatment: GroupSums, holdout: GroupSums, *, scale_n: int | None = None, confidence: float = 0.95
) -> MeanLift:
    """Difference of means with Welch's t interval; ``scale_n`` (default: the treatment size)
    turns the per-member lift into a total."""
    scale = treatment.n if scale_n is None else scale_n
    t_mean, h_mean = treatment.mean, holdout.mean

    def result(
        lift: float | None, interval: Interval | None, df: float | None, reason: str | None
    ) -> MeanLift:
        return MeanLift(
            treatment.n,
            t_mean,
            holdout.n,
            h_mean,
            lift,
            interval,
            df,
            None if lift is None else lift * scale,
            None if interval is None else Interval(interval.low * scale, interval.high * scale),
            confidence,
            "welch_t",
            reason,
        )

    if t_mean is None or h_mean is None:
        empty = "holdout" if h_mean is None else "treatment"
        return result(None, None, None, f"the {empty} group is empty: no comparison, no interval")
    lift = t_mean - h_mean
    t_var, h_var = treatment.variance, holdout.variance
    if t_var is None or h_var is None:
        return result(lift, None, None, "a group has a single member: its variance is unknown, no interval")
    a, b = t_var / treatment.n, h_var / holdout.n
    se2 = a + b
    if se2 <= 0:
        return result(lift, None, None, "no variance in either group: no interval")
    df = se2 * se2 / (a * a / (treatment.n - 1) + b * b / (holdout.n - 1))
    half = student_t_quantile(0.5 + confidence / 2, df) * math.sqrt(se2)
    reason = None
    if min(treatment.n, holdout.n) < SMALL_GROUP:
        reason = f"a group has fewer than {SMALL_GROUP} members: the interval is rough"
    return result(lift, Interval(lift - half, lift + half), df, reason)


# -- Student t quantile (no SciPy) ---------------------------------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's continued fraction of the incomplete beta function (Numerical Recipes betacf)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _regularised_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def _student_t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _regularised_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` (> 0, not necessarily whole) degrees of
    freedom, to about 1e-10."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be within (0, 1)")
    if df <= 0:
        raise ValueError("df must be positive")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    if df > 1e7:
        return NormalDist().inv_cdf(p)
    low, high = 0.0, 1.0
    while _student_t_cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if _student_t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0
