"""High-potential score: the probability that a member without an order places a first one soon.

A logistic regression (scikit-learn) on the engagement features of :mod:`siyu.models.features`,
each as ``log(1 + value)`` and standardised. It is trained at a *cutoff*: features from the events
on or before the cutoff day, label = a first order in the ``horizon_days`` after it. A stratified
share of the members is held out: the fit reports their AUC (ranking), Brier score and expected
calibration error (how far predicted probabilities are from observed rates, over ten bins), so
the score can be read as a probability. Logistic regression fitted by maximum likelihood is
calibrated on its training distribution by construction (the score equations make the mean
prediction equal the observed rate); the held-out reliability table checks that it carries over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from siyu.models import ModelError
from siyu.models.features import ENGAGEMENT_FEATURES

Floats = NDArray[np.float64]

MIN_CLASS = 10
"""Fewest members of each class (converted, not converted) worth training on."""
VALIDATION_FRACTION = 0.3
BINS = 10


def design(values: Floats) -> Floats:
    """The model's inputs: ``log(1 + x)`` of each engagement feature (counts and days are skewed)."""
    return np.log1p(np.clip(np.asarray(values, dtype=np.float64), 0.0, None))


@dataclass(frozen=True)
class ReliabilityBin:
    """Held-out members whose prediction fell in ``[low, high)``: mean prediction vs observed rate."""

    low: float
    high: float
    members: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class HighPotentialFit:
    """A trained high-potential classifier and how well it did on the held-out members."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    """Per standardised ``log(1 + feature)``, in ``features`` order."""
    intercept: float
    auc: float
    brier: float
    calibration_error: float
    """Expected calibration error on the held-out members (member-weighted mean |predicted − observed|)."""
    n_train: int
    n_validation: int
    positives: int
    reliability: tuple[ReliabilityBin, ...]
    pipeline: Any = field(repr=False, compare=False)

    def predict(self, values: Floats) -> Floats:
        """Probability of a first order for rows of engagement features (``ENGAGEMENT_FEATURES``)."""
        if len(values) == 0:
            return np.zeros(0, dtype=np.float64)
        probabilities = self.pipeline.predict_proba(design(values))[:, 1]
        return np.asarray(probabilities, dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (for the fit record)."""
        return {
            "auc": self.auc,
            "brier": self.brier,
            "calibration_error": self.calibration_error,
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "positives": self.positives,
            "intercept": self.intercept,
            "coefficients": dict(zip(self.features, self.coefficients, strict=True)),
            "reliability": [
                [b.low, b.high, b.members, b.mean_predicted, b.observed_rate] for b in self.reliability
            ],
        }


def reliability(y: NDArray[np.bool_], p: Floats, bins: int = BINS) -> tuple[ReliabilityBin, ...]:
    """Equal-width probability bins with at least one member."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for i in range(bins):
        mask = which == i
        if mask.any():
            out.append(
                ReliabilityBin(
                    float(edges[i]),
                    float(edges[i + 1]),
                    int(mask.sum()),
                    float(p[mask].mean()),
                    float(y[mask].mean()),
                )
            )
    return tuple(out)


def split(
    converted: NDArray[np.bool_], *, seed: int = 0, validation_fraction: float = VALIDATION_FRACTION
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Row indices to fit on and to validate on: a stratified split (same seed, same split)."""
    from sklearn.model_selection import train_test_split  # imported here: see train()

    rows = np.arange(len(converted))
    fit_rows, validation_rows = train_test_split(
        rows, test_size=validation_fraction, stratify=converted, random_state=seed
    )
    return np.asarray(fit_rows, dtype=np.intp), np.asarray(validation_rows, dtype=np.intp)


def train(
    values: Floats,
    converted: NDArray[np.bool_] | Sequence[bool],
    *,
    seed: int = 0,
    validation_fraction: float = VALIDATION_FRACTION,
) -> HighPotentialFit:
    """Fit on a stratified share, validate on the rest; :class:`ModelError` when either class has
    fewer than :data:`MIN_CLASS` members (nothing to learn, or no way to check it)."""
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(converted, dtype=np.bool_)
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[1] != len(ENGAGEMENT_FEATURES):
        raise ModelError(f"expected {len(ENGAGEMENT_FEATURES)} engagement features per member")
    positives, negatives = int(y.sum()), int((~y).sum())
    if min(positives, negatives) < MIN_CLASS:
        raise ModelError(
            f"too few members to train the high-potential model: {positives} converted and {negatives} "
            f"not (at least {MIN_CLASS} of each are needed)"
        )
    fit_rows, validation_rows = split(y, seed=seed, validation_fraction=validation_fraction)
    x_fit, x_val, y_fit, y_val = (
        design(x[fit_rows]),
        design(x[validation_rows]),
        y[fit_rows],
        y[validation_rows],
    )
    # scikit-learn (and the pandas it imports) costs seconds to import: only a refit pays for it,
    # not every process that builds the app
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    pipeline.fit(x_fit, y_fit)
    p = np.asarray(pipeline.predict_proba(x_val)[:, 1], dtype=np.float64)
    bins = reliability(y_val, p)
    ece = sum(b.members * abs(b.mean_predicted - b.observed_rate) for b in bins) / len(p)
    model = pipeline[-1]
    return HighPotentialFit(
        features=ENGAGEMENT_FEATURES,
        coefficients=tuple(float(c) for c in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        auc=float(roc_auc_score(y_val, p)),
        brier=float(brier_score_loss(y_val, p)),
        calibration_error=float(ece),
        n_train=len(y_fit),
        n_validation=len(y_val),
        positives=positives,
        reliability=bins,
        pipeline=pipeline,
    )


__all__ = ["HighPotentialFit", "ReliabilityBin", "design", "reliability", "split", "train"]
