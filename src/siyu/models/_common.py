"""Input checks, row compression and the optimiser call shared by the CLV models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

Floats = NDArray[np.float64]
Ints = NDArray[np.intp]

#: Log-parameters are boxed to ±LOG_BOUND: a fit that ends on the box is not identified by the data.
LOG_BOUND = 18.0
#: Largest standard error of a log-parameter that still counts as estimated (e^3 ≈ a factor of 20).
SE_LIMIT = 3.0


class ModelError(ValueError):
    """The data cannot support the model (or a prediction), with the reason in plain words."""


def dot(left: Floats, right: Floats) -> float:
    """Σ left·right without BLAS: a threaded BLAS dot on a busy 2-core machine was 50× slower than this."""
    return float(np.einsum("i,i->", left, right))


def vector(name: str, values: ArrayLike) -> Floats:
    """A 1-D float64 copy of ``values``, refusing NaN and infinities rather than propagating them."""
    array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if array.ndim != 1:
        raise ModelError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ModelError(f"{name} contains NaN or infinite values")
    return array + 0.0  # a copy, with -0.0 folded into 0.0 so equal rows compare equal


def same_length(**arrays: Floats) -> int:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ModelError(f"inputs differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ModelError("no customers: the inputs are empty")
    return n


def check_frequency(frequency: Floats) -> None:
    if np.any(frequency < 0) or np.any(frequency != np.floor(frequency)):
        raise ModelError("frequency must be a whole number of repeat purchases ≥ 0")


def check_history(frequency: Floats, recency: Floats, T: Floats) -> None:
    """The BG/NBD summary rules: 0 ≤ recency ≤ T, and recency is 0 for customers with no repeat purchase."""
    check_frequency(frequency)
    if np.any(recency < 0):
        raise ModelError("recency must be ≥ 0")
    if np.any(recency > T):
        raise ModelError("recency must not exceed T (the customer's age)")
    if np.any(recency[frequency == 0] != 0):
        raise ModelError("recency must be 0 for customers with frequency 0")


def weights_for(weights: ArrayLike | None, n: int) -> Floats:
    if weights is None:
        return np.ones(n)
    w = vector("weights", weights)
    if len(w) != n:
        raise ModelError(f"weights has {len(w)} entries for {n} customers")
    if np.any(w < 0):
        raise ModelError("weights must be ≥ 0")
    if not w.sum() > 0:
        raise ModelError("weights sum to zero: no customers to fit")
    return w


def compress(*columns: Floats) -> tuple[tuple[Floats, ...], Ints]:
    """Unique rows of ``columns`` (sorted) and, for each input row, the index of its unique row.

    The same rows as ``np.unique(axis=0)``, several times faster on a million rows: each row becomes one
    int64 (its values' ranks in their columns as digits), so one pass groups them — by counting when the
    key space is small (whole days, a few hundred distinct values per column), else one integer sort. A
    lexicographic sort of the columns is the fallback when the ranks do not fit in 62 bits.
    """
    ranked = [per_unique(column) for column in columns]
    radices = [len(unique) for unique, _ in ranked]
    if float(np.prod(np.array(radices, dtype=np.float64))) < 2.0**62:
        key = np.zeros(len(columns[0]), dtype=np.int64)
        for (_, rank), radix in zip(ranked, radices, strict=True):
            key *= radix
            key += rank
        keys, inverse = _unique_integers(key)
        digits = []
        for radix in reversed(radices):
            keys, digit = np.divmod(keys, radix)
            digits.append(digit)
        values = tuple(unique[digit] for (unique, _), digit in zip(ranked, reversed(digits), strict=True))
        return values, inverse
    return _compress_lexsorted(columns)


def _unique_integers(values: NDArray[np.int64]) -> tuple[NDArray[np.int64], Ints]:
    """Sorted distinct values of non-negative integers and the index of each value among them."""
    n = len(values)
    top = int(values.max()) + 1 if n else 0
    if 0 < top <= 32 * n + (1 << 22):  # a few bytes per possible value: tens of MB at a million rows
        present = np.zeros(top, dtype=bool)
        present[values] = True
        code = np.cumsum(present, dtype=np.int32)
        code -= 1
        return np.flatnonzero(present).astype(np.int64), code[values].astype(np.intp)
    unique, inverse = np.unique(values, return_inverse=True)
    return unique, inverse.astype(np.intp).ravel()


def _compress_lexsorted(columns: tuple[Floats, ...]) -> tuple[tuple[Floats, ...], Ints]:
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    n = len(order)
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = np.any(np.stack([np.diff(column) != 0 for column in ordered]), axis=0)
    group = np.cumsum(new) - 1
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = group
    return tuple(column[new] for column in ordered), inverse


def compress_weighted(*columns: Floats, weights: Floats) -> tuple[tuple[Floats, ...], Floats]:
    """Unique rows with the summed weight of the customers behind each (rows of weight 0 dropped)."""
    keep = weights > 0
    unique, inverse = compress(*(column[keep] for column in columns))
    counts = np.bincount(inverse, weights=weights[keep], minlength=len(unique[0])).astype(np.float64)
    return unique, counts


def per_unique(values: Floats) -> tuple[Floats, Ints]:
    """Sorted distinct values and the index of each value among them (``np.unique(return_inverse=True)``),
    by counting instead of sorting when the values are whole numbers in a modest range (days, counts)."""
    if len(values):
        low, high = float(values.min()), float(values.max())
        if high - low <= 8 * len(values) + (1 << 20) and np.all(values == np.floor(values)):
            offsets = (values - low).astype(np.int64)
            present, inverse = _unique_integers(offsets)
            return present.astype(np.float64) + low, inverse
    unique, inverse = np.unique(values, return_inverse=True)
    return unique, inverse.astype(np.intp).ravel()


@dataclass(frozen=True)
class Optimum:
    log_params: Floats
    objective: float
    converged: bool
    iterations: int


def maximise(
    objective: Callable[[Floats], tuple[float, Floats]],
    start: Floats,
    *,
    names: tuple[str, ...],
    model: str,
    customers: float,
) -> Optimum:
    """Minimise ``objective`` (value and gradient in log-parameters) by L-BFGS-B inside ±LOG_BOUND.

    Tolerances are far below the printed precision of published estimates; the optimiser's own "line
    search could not improve" stop at the floor of float rounding counts as converged when the gradient is
    negligible. A parameter on the box means the likelihood keeps rising towards 0 or ∞ — the data do not
    identify the model — which is an error, not a result.
    """
    result = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * len(start),
        options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20, "maxls": 10},
    )
    x = np.asarray(result.x, dtype=np.float64)
    value, gradient = objective(x)
    if not (np.isfinite(value) and np.all(np.isfinite(gradient)) and np.all(np.isfinite(x))):
        raise ModelError(f"{model}: the likelihood is not finite at the fitted parameters")
    on_box = [name for name, theta in zip(names, x, strict=True) if abs(theta) >= LOG_BOUND - 1e-6]
    if on_box:
        raise ModelError(
            f"{model}: the data do not identify the model ({', '.join(on_box)} ran to 0 or ∞); "
            "more customers with repeat purchases are needed, or a penalizer"
        )
    converged = bool(result.success) or float(np.max(np.abs(gradient))) < 1e-6
    _check_identified(objective, x, customers, names, model)
    return Optimum(x, float(value), converged, int(result.nit))


def _check_identified(
    objective: Callable[[Floats], tuple[float, Floats]],
    x: Floats,
    customers: float,
    names: tuple[str, ...],
    model: str,
) -> None:
    """Refuse a maximum the data do not pin down.

    When the likelihood keeps creeping up along a ridge towards 0 or ∞ (one customer; everybody spending
    the same; nobody dropping out) the optimiser stops where the slope falls below its tolerance, and the
    numbers it stops at mean nothing. The observed information (Hessian of the mean negative
    log-likelihood in log-parameters, by forward differences of the analytic gradient) is then near
    singular: a log-parameter's standard error above SE_LIMIT (a factor e^SE_LIMIT either way) says so.
    """
    step = 1e-5
    at = objective(x)[1]
    columns = []
    for j in range(len(x)):
        shift = np.zeros(len(x))
        shift[j] = step
        columns.append((objective(x + shift)[1] - at) / step)
    hessian = np.array(columns)
    hessian = (hessian + hessian.T) / 2
    eigenvalues, vectors = np.linalg.eigh(hessian)
    if np.all(np.isfinite(eigenvalues)) and eigenvalues[0] > 0:
        variance = (vectors**2) @ (1.0 / eigenvalues) / customers
        loose = [name for name, v in zip(names, variance, strict=True) if not np.sqrt(v) < SE_LIMIT]
    else:
        loose = list(names)
    if loose:
        raise ModelError(
            f"{model}: the data do not identify the model ({', '.join(loose)} drift towards 0 or ∞ with "
            "almost no change in likelihood); more customers with repeat purchases are needed, or a penalizer"
        )


def finite(name: str, values: Floats) -> Floats:
    """Guard on outputs: a prediction that came out NaN/inf is a bug or an unsupported corner, so say so."""
    if not np.all(np.isfinite(values)):
        raise ModelError(f"{name} is not finite for some customers (parameters outside the model's range?)")
    return values
