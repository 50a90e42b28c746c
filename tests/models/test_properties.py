"""Properties of the hand-written likelihoods: the compressed, per-distinct-value evaluation equals the plain
row-by-row formula, and the analytic gradient equals finite differences of the value."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.models import _common, bgnbd, fit_bgnbd, fit_gamma_gamma, gammagamma
from siyu.models._common import compress, compress_weighted
from siyu.models.simulate import simulate_customers

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def histories(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small integer-day histories with many repeated rows (as real daily data have)."""
    n = draw(st.integers(1, 40))
    T = np.array(draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)), dtype=np.float64)
    x = np.array(draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)), dtype=np.float64)
    share = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    x[T == 0] = 0
    tx = np.where(x > 0, np.maximum(1.0, np.floor(share * T)), 0.0)
    return x, tx, T


log_params = st.lists(st.floats(-2.5, 2.5), min_size=4, max_size=4).map(np.array)


def central_difference(f: object, theta: np.ndarray, step: float = 1e-6) -> np.ndarray:
    out = np.empty(len(theta))
    for j in range(len(theta)):
        e = np.zeros(len(theta))
        e[j] = step
        out[j] = (f(theta + e)[0] - f(theta - e)[0]) / (2 * step)  # type: ignore[operator]
    return out


class TestBGNBDLikelihood:
    @SETTINGS
    @given(history=histories(), theta=log_params, penalizer=st.sampled_from([0.0, 0.3]))
    def test_compressed_equals_row_by_row(
        self, history: tuple[np.ndarray, np.ndarray, np.ndarray], theta: np.ndarray, penalizer: float
    ) -> None:
        # given
        x, tx, T = history
        (ux, utx, uT), counts = compress_weighted(x, tx, T, weights=np.ones(len(x)))
        # when
        value, _ = bgnbd._Likelihood(ux, utx, uT, counts, penalizer)(theta)
        # then
        params = np.exp(theta)
        rows = bgnbd.log_likelihood(*params, x, tx, T)
        assert np.all(np.isfinite(rows))
        expected = -rows.sum() / len(x) + penalizer * float(params @ params)
        assert abs(value - expected) <= 1e-12 * max(1.0, abs(expected))

    @SETTINGS
    @given(history=histories(), theta=log_params, penalizer=st.sampled_from([0.0, 0.3]))
    def test_gradient_equals_finite_differences(
        self, history: tuple[np.ndarray, np.ndarray, np.ndarray], theta: np.ndarray, penalizer: float
    ) -> None:
        # given
        x, tx, T = history
        (ux, utx, uT), counts = compress_weighted(x, tx, T, weights=np.ones(len(x)))
        likelihood = bgnbd._Likelihood(ux, utx, uT, counts, penalizer)
        # when
        _, gradient = likelihood(theta)
        # then
        numeric = central_difference(likelihood, theta)
        assert np.allclose(gradient, numeric, rtol=1e-5, atol=1e-6)

    def test_weights_equal_repeated_customers(self) -> None:
        # given: the same customers once with counts and once listed out
        data = simulate_customers(300, r=0.5, alpha=20, a=0.8, b=2.5, p=6, q=4, v=1500, seed=3)
        x, tx, T = data.frequency, data.recency, data.T
        counts = np.random.default_rng(7).integers(1, 5, 300)
        # when
        weighted = fit_bgnbd(x, tx, T, weights=counts)
        listed = fit_bgnbd(np.repeat(x, counts), np.repeat(tx, counts), np.repeat(T, counts))
        # then
        for name in ("r", "alpha", "a", "b", "log_likelihood", "n_customers"):
            assert abs(getattr(weighted, name) / getattr(listed, name) - 1) < 1e-7, name


class TestGammaGammaLikelihood:
    @SETTINGS
    @given(
        rows=st.lists(
            st.tuples(st.integers(1, 12), st.sampled_from([0.5, 3.0, 10.0, 10.0, 25.25, 300.0])),
            min_size=1,
            max_size=40,
        ),
        theta=st.lists(st.floats(-2.5, 2.5), min_size=3, max_size=3).map(np.array),
    )
    def test_compressed_equals_row_by_row_and_gradient_equals_finite_differences(
        self, rows: list[tuple[int, float]], theta: np.ndarray
    ) -> None:
        # given
        x = np.array([r[0] for r in rows], dtype=np.float64)
        m = np.array([r[1] for r in rows], dtype=np.float64)
        (ux, um), counts = compress_weighted(x, m, weights=np.ones(len(x)))
        likelihood = gammagamma._Likelihood(ux, um, counts)
        # when
        value, gradient = likelihood(theta)
        # then
        expected = -gammagamma.log_likelihood(*np.exp(theta), x, m).sum() / len(x)
        assert abs(value - expected) <= 1e-11 * max(1.0, abs(expected))
        assert np.allclose(gradient, central_difference(likelihood, theta), rtol=1e-5, atol=1e-6)

    def test_weights_equal_repeated_customers(self) -> None:
        rng = np.random.default_rng(11)
        x = rng.integers(1, 8, 400).astype(float)
        m = np.round(rng.gamma(4.0, 10.0, 400), 2)
        counts = rng.integers(1, 4, 400)
        weighted = fit_gamma_gamma(x, m, weights=counts)
        listed = fit_gamma_gamma(np.repeat(x, counts), np.repeat(m, counts))
        for name in ("p", "q", "v", "log_likelihood", "n_customers"):
            assert abs(getattr(weighted, name) / getattr(listed, name) - 1) < 1e-7, name


class TestCompress:
    @SETTINGS
    @given(
        rows=st.lists(
            st.tuples(st.integers(0, 3), st.sampled_from([0.0, -0.0, 1.5, 2.0, 1e300])), max_size=30
        ),
        by_rank=st.booleans(),
    )
    def test_equals_numpy_unique_on_rows(self, rows: list[tuple[int, float]], by_rank: bool) -> None:
        # given: the integer-key path, or the lexicographic fallback used when keys overflow 62 bits
        table = np.array(rows, dtype=np.float64).reshape(-1, 2) + 0.0
        if not len(table):
            return
        # when
        columns = (table[:, 0].copy(), table[:, 1].copy())
        unique, inverse = compress(*columns) if by_rank else _common._compress_lexsorted(columns)
        # then
        expected, expected_inverse = np.unique(table, axis=0, return_inverse=True)
        assert np.array_equal(np.column_stack(unique), expected)
        assert np.array_equal(inverse, expected_inverse.ravel())


class TestSimulation:
    def test_fits_recover_the_generating_parameters(self) -> None:
        """Draws from the generative process give back its parameters (within sampling error and the
        flooring of recency to whole days) — the generator and both fits agree on what the models are."""
        # given
        true = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 4.0, "v": 1500.0}
        data = simulate_customers(100_000, seed=5, **true)
        # when
        bg = fit_bgnbd(data.frequency, data.recency, data.T)
        gg = fit_gamma_gamma(data.frequency, data.monetary)
        # then
        fitted = {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v}
        for name, value in true.items():
            assert abs(fitted[name] / value - 1) < 0.1, (name, fitted[name])


class TestPerUnique:
    @SETTINGS
    @given(
        values=st.lists(
            st.one_of(st.integers(-5, 400).map(float), st.sampled_from([0.5, 1e9, -0.0])),
            min_size=1,
            max_size=50,
        )
    )
    def test_equals_numpy_unique(self, values: list[float]) -> None:
        # given: whole numbers (counted) and anything else (sorted)
        array = np.array(values) + 0.0
        # when
        unique, inverse = _common.per_unique(array)
        # then
        expected, expected_inverse = np.unique(array, return_inverse=True)
        assert np.array_equal(unique, expected)
        assert np.array_equal(inverse, expected_inverse)
