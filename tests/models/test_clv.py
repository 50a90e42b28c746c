"""CLV models against the published CDNOW results and against ``lifetimes`` (a test-only dependency)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter

from siyu.models import BGNBDFit, GammaGammaFit, ModelError, clv, fit_bgnbd, fit_gamma_gamma
from tests.models.cdnow import raw_summary, shipped_summary


def lifetimes_bg(fit: BGNBDFit) -> BetaGeoFitter:
    """A lifetimes BG/NBD holding exactly our parameters, so predictions compare formula against formula."""
    model = BetaGeoFitter()
    model.params_ = pd.Series({"r": fit.r, "alpha": fit.alpha, "a": fit.a, "b": fit.b})
    model.predict = model.conditional_expected_number_of_purchases_up_to_time
    return model


def lifetimes_gg(fit: GammaGammaFit) -> GammaGammaFitter:
    model = GammaGammaFitter()
    model.params_ = pd.Series({"p": fit.p, "q": fit.q, "v": fit.v})
    return model


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)))


class TestPublishedCDNOW:
    def test_bgnbd_reproduces_fader_hardie_lee_2005(self) -> None:
        """FHL (2005) §5: r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4 on 2357 customers."""
        for data in (shipped_summary(), raw_summary()):
            # when
            fit = fit_bgnbd(data.frequency, data.recency, data.T)
            # then
            assert fit.converged
            assert fit.n_customers == 2357
            assert (round(fit.r, 3), round(fit.alpha, 3), round(fit.a, 3), round(fit.b, 3)) == (
                0.243,
                4.414,
                0.793,
                2.426,
            )
            assert round(fit.log_likelihood, 1) == -9582.4

    def test_gamma_gamma_reproduces_fader_hardie_2013(self) -> None:
        """Note 025 (946 repeat buyers): p = 6.25, q = 3.74, γ = 15.44.

        Reproduced exactly from the transactions in ``CDNOW_sample.txt`` with each customer's average
        repeat spend at full precision. The shipped ``cdnow_customers_summary_with_transactions.csv``
        stores that average rounded to cents with halves rounded *up* (73 customers sit on a half cent;
        rounding ``raw_summary`` that way reproduces the CSV exactly), and those half cents alone move γ
        to 15.4477, which prints as 15.45 — the figure lifetimes' own documentation shows. Both are
        asserted, so neither silently changes.
        """
        # given
        raw, shipped = raw_summary(), shipped_summary()
        # when
        exact = fit_gamma_gamma(raw.frequency, raw.monetary)
        rounded = fit_gamma_gamma(shipped.frequency, shipped.monetary)
        # then
        assert exact.n_customers == 946
        assert exact.converged
        assert (round(exact.p, 2), round(exact.q, 2), round(exact.v, 2)) == (6.25, 3.74, 15.44)
        assert (round(rounded.p, 2), round(rounded.q, 2), round(rounded.v, 2)) == (6.25, 3.74, 15.45)
        half_up = np.floor(raw.monetary * 100 + 0.5 + 1e-9) / 100
        assert np.array_equal(np.round(half_up, 2), shipped.monetary)


class TestFitsAgainstLifetimes:
    def test_bgnbd_fit_equals_lifetimes_fit(self) -> None:
        # given
        data = raw_summary()
        # when
        ours = fit_bgnbd(data.frequency, data.recency, data.T)
        theirs = BetaGeoFitter().fit(data.frequency, data.recency, data.T).params_
        # then
        ours_v = np.array([ours.r, ours.alpha, ours.a, ours.b])
        assert relative(ours_v, theirs[["r", "alpha", "a", "b"]].to_numpy()) < 1e-4

    def test_bgnbd_penalized_fit_equals_lifetimes(self) -> None:
        # given
        data = shipped_summary()
        # when
        ours = fit_bgnbd(data.frequency, data.recency, data.T, penalizer=0.01)
        theirs = BetaGeoFitter(penalizer_coef=0.01).fit(data.frequency, data.recency, data.T).params_
        # then
        ours_v = np.array([ours.r, ours.alpha, ours.a, ours.b])
        assert relative(ours_v, theirs[["r", "alpha", "a", "b"]].to_numpy()) < 1e-4
        assert ours.r != pytest.approx(0.2426, rel=1e-3)  # the penalty does act

    def test_gamma_gamma_fit_equals_lifetimes_fit(self) -> None:
        # given
        data = raw_summary()
        repeat = data.frequency > 0
        # when
        ours = fit_gamma_gamma(data.frequency, data.monetary)
        theirs = GammaGammaFitter().fit(data.frequency[repeat], data.monetary[repeat]).params_
        # then
        assert relative(np.array([ours.p, ours.q, ours.v]), theirs[["p", "q", "v"]].to_numpy()) < 1e-4


@pytest.fixture(scope="module")
def fits() -> tuple[BGNBDFit, GammaGammaFit]:
    data = raw_summary()
    return fit_bgnbd(data.frequency, data.recency, data.T), fit_gamma_gamma(data.frequency, data.monetary)


class TestPredictionsAgainstLifetimes:
    @pytest.mark.parametrize("t", [0.5, 1.0, 10.0, 39.0, 78.0, 520.0])
    def test_expected_purchases(self, fits: tuple[BGNBDFit, GammaGammaFit], t: float) -> None:
        # given
        bg, _ = fits
        d = raw_summary()
        # when
        ours = bg.expected_purchases(t, d.frequency, d.recency, d.T)
        theirs = lifetimes_bg(bg).conditional_expected_number_of_purchases_up_to_time(
            t, d.frequency, d.recency, d.T
        )
        # then
        assert ours.shape == (2357,)
        assert relative(ours, np.asarray(theirs)) < 1e-6

    def test_expected_purchases_for_heavy_buyers_uses_the_euler_transform(
        self, fits: tuple[BGNBDFit, GammaGammaFit]
    ) -> None:
        """At hundreds of purchases ₂F₁ overflows; both sides switch to the transformed series."""
        # given
        bg, _ = fits
        x = np.array([150.0, 300.0, 600.0, 1000.0])
        tx, T = np.array([30.0, 35.0, 38.0, 38.5]), np.full(4, 39.0)
        # when
        ours = bg.expected_purchases(39.0, x, tx, T)
        theirs = lifetimes_bg(bg).conditional_expected_number_of_purchases_up_to_time(39.0, x, tx, T)
        # then
        assert np.all(np.isfinite(ours))
        assert np.all(ours > 0)
        assert relative(ours, np.asarray(theirs)) < 1e-6

    def test_expected_purchases_broadcasts_a_vector_of_horizons(
        self, fits: tuple[BGNBDFit, GammaGammaFit]
    ) -> None:
        # given
        bg, _ = fits
        t = np.array([1.0, 5.0, 20.0])
        # when
        together = bg.expected_purchases(t, 2.0, 30.0, 38.0)
        # then
        apart = [bg.expected_purchases(float(h), [2.0], [30.0], [38.0])[0] for h in t]
        assert together.tolist() == pytest.approx(apart, rel=1e-15)
        assert np.all(np.diff(together) > 0)

    def test_p_alive(self, fits: tuple[BGNBDFit, GammaGammaFit]) -> None:
        # given
        bg, _ = fits
        d = raw_summary()
        # when
        ours = bg.p_alive(d.frequency, d.recency, d.T)
        theirs = lifetimes_bg(bg).conditional_probability_alive(d.frequency, d.recency, d.T)
        # then
        assert relative(ours, np.asarray(theirs)) < 1e-6
        assert np.all(ours[d.frequency == 0] == 1.0)
        assert np.all((ours > 0) & (ours <= 1))

    def test_expected_spend(self, fits: tuple[BGNBDFit, GammaGammaFit]) -> None:
        # given
        _, gg = fits
        d = raw_summary()
        # when
        ours = gg.expected_spend(d.frequency, d.monetary)
        theirs = lifetimes_gg(gg).conditional_expected_average_profit(d.frequency, d.monetary)
        # then
        assert relative(ours, np.asarray(theirs)) < 1e-6
        assert ours[d.frequency == 0] == pytest.approx(gg.p * gg.v / (gg.q - 1), rel=1e-12)

    @pytest.mark.parametrize(
        ("freq", "freq_days", "periods_per_week"),
        [("D", 1.0, 7.0), ("H", 1 / 24, 168.0), ("M", 30.0, 7 / 30)],
    )
    @pytest.mark.parametrize(("months", "discount_rate"), [(12, 0.01), (36, 0.0), (6, 0.05)])
    def test_clv(
        self,
        fits: tuple[BGNBDFit, GammaGammaFit],
        freq: str,
        freq_days: float,
        periods_per_week: float,
        months: int,
        discount_rate: float,
    ) -> None:
        # given: the same model and customers in days, hours or months
        bg_weeks, gg = fits
        bg = dataclasses.replace(bg_weeks, alpha=bg_weeks.alpha * periods_per_week)
        d = raw_summary()
        recency, T = d.recency * periods_per_week, d.T * periods_per_week
        # when
        ours = clv(
            bg,
            gg,
            d.frequency,
            recency,
            T,
            d.monetary,
            months=months,
            discount_rate=discount_rate,
            freq_days=freq_days,
        )
        theirs = lifetimes_gg(gg).customer_lifetime_value(
            lifetimes_bg(bg),
            pd.Series(d.frequency),
            pd.Series(recency),
            pd.Series(T),
            pd.Series(d.monetary),
            time=months,
            discount_rate=discount_rate,
            freq=freq,
        )
        # then
        assert relative(ours, theirs.to_numpy()) < 1e-6
        assert np.all(ours > 0)

    def test_clv_of_zero_months_is_zero(self, fits: tuple[BGNBDFit, GammaGammaFit]) -> None:
        bg, gg = fits
        assert clv(bg, gg, [2.0], [20.0], [30.0], [15.0], months=0).tolist() == [0.0]


class TestDegenerateInputs:
    def test_all_one_time_buyers(self) -> None:
        with pytest.raises(ModelError, match="every customer has frequency 0"):
            fit_bgnbd(np.zeros(50), np.zeros(50), np.full(50, 30.0))
        with pytest.raises(ModelError, match="every customer has frequency 0"):
            fit_gamma_gamma(np.zeros(50), np.full(50, 10.0))

    @pytest.mark.parametrize(
        ("frequency", "recency", "T"),
        [
            ([2.0], [5.0], [10.0]),
            ([2.0] * 40, [5.0] * 40, [10.0] * 40),
            ([1.0, 2.0, 3.0], [5, 6, 7], [10] * 3),
        ],
    )
    def test_too_little_data_to_identify_bgnbd(
        self, frequency: list[float], recency: list[float], T: list[float]
    ) -> None:
        with pytest.raises(ModelError, match="do not identify"):
            fit_bgnbd(frequency, recency, T)

    def test_one_customer_for_gamma_gamma_or_everyone_spending_the_same(self) -> None:
        with pytest.raises(ModelError, match="do not identify"):
            fit_gamma_gamma([2.0], [5.0])
        with pytest.raises(ModelError, match="do not identify"):
            fit_gamma_gamma([2.0, 3.0, 4.0, 1.0], [5.0, 5.0, 5.0, 5.0])

    @pytest.mark.parametrize("spend", [0.0, -3.0])
    def test_zero_or_negative_spend(self, spend: float) -> None:
        d = raw_summary()
        monetary = d.monetary.copy()
        monetary[np.flatnonzero(d.frequency > 0)[0]] = spend
        with pytest.raises(ModelError, match="monetary must be > 0"):
            fit_gamma_gamma(d.frequency, monetary)

    def test_predicted_spend_refuses_negative_and_shrinks_zero(self) -> None:
        d = shipped_summary()
        gg = fit_gamma_gamma(d.frequency, d.monetary)
        with pytest.raises(ModelError, match="negative average spend"):
            gg.expected_spend([2.0], [-1.0])
        zero, typical = gg.expected_spend([2.0, 2.0], [0.0, gg.mean_spend])
        assert 0 < zero < typical == pytest.approx(gg.mean_spend)

    def test_zero_spend_of_one_time_buyers_is_fine(self) -> None:
        d = raw_summary()
        assert np.all(d.monetary[d.frequency == 0] == 0)
        assert fit_gamma_gamma(d.frequency, d.monetary).n_customers == 946

    def test_empty_input(self) -> None:
        with pytest.raises(ModelError, match="empty"):
            fit_bgnbd([], [], [])
        with pytest.raises(ModelError, match="empty"):
            fit_gamma_gamma([], [])

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_nan_and_infinity(self, bad: float) -> None:
        d = shipped_summary()
        T = d.T.copy()
        T[7] = bad
        with pytest.raises(ModelError, match="T contains NaN or infinite"):
            fit_bgnbd(d.frequency, d.recency, T)
        bg = fit_bgnbd(d.frequency, d.recency, d.T)
        with pytest.raises(ModelError, match="T contains NaN or infinite"):
            bg.p_alive(d.frequency, d.recency, T)
        with pytest.raises(ModelError, match="t must be finite"):
            bg.expected_purchases(bad, d.frequency, d.recency, d.T)
        with pytest.raises(ModelError, match="monetary contains NaN"):
            fit_gamma_gamma(d.frequency, np.where(np.arange(len(T)) == 3, bad, d.monetary))

    @pytest.mark.parametrize(
        ("frequency", "recency", "T", "message"),
        [
            ([1.0, 2.0], [3.0], [4.0, 5.0], "differ in length"),
            ([1.5], [3.0], [4.0], "whole number"),
            ([-1.0], [0.0], [4.0], "whole number"),
            ([1.0], [5.0], [4.0], "must not exceed T"),
            ([0.0], [2.0], [4.0], "must be 0 for customers with frequency 0"),
            ([1.0], [-1.0], [4.0], "recency must be ≥ 0"),
            ([[1.0]], [[1.0]], [[4.0]], "one-dimensional"),
        ],
    )
    def test_inconsistent_histories(
        self, frequency: list[float], recency: list[float], T: list[float], message: str
    ) -> None:
        with pytest.raises(ModelError, match=message):
            fit_bgnbd(frequency, recency, T)

    def test_everyone_of_age_zero(self) -> None:
        with pytest.raises(ModelError, match="age T = 0"):
            fit_bgnbd([1.0, 0.0], [0.0, 0.0], [0.0, 0.0])

    def test_spend_without_a_finite_mean(self) -> None:
        """q ≤ 1: the population mean spend pγ/(q − 1) does not exist; no NaN or negative CLV comes out."""
        gg = GammaGammaFit(p=2.0, q=0.8, v=10.0, log_likelihood=0.0, n_customers=10, converged=True)
        with pytest.raises(ModelError, match="mean spend is infinite"):
            gg.expected_spend([1.0, 0.0], [5.0, 0.0])

    def test_predictions_for_new_customers_are_finite(self) -> None:
        """Customers of age 0 (first purchase today) and one-time buyers get finite, sensible scores."""
        d = shipped_summary()
        bg = fit_bgnbd(d.frequency, d.recency, d.T)
        gg = fit_gamma_gamma(d.frequency, d.monetary)
        x, tx, T = np.array([0.0, 0.0, 3.0]), np.array([0.0, 0.0, 0.0]), np.array([0.0, 39.0, 0.0])
        assert bg.p_alive(x, tx, T).tolist() == [1.0, 1.0, pytest.approx(1 / (1 + bg.a / (bg.b + 2)))]
        expected = bg.expected_purchases(10.0, x, tx, T)
        assert np.all(np.isfinite(expected))
        assert expected[0] > expected[1] > 0
        value = clv(bg, gg, x, tx, T, np.array([0.0, 0.0, 20.0]), freq_days=7.0)
        assert np.all(np.isfinite(value))
        assert np.all(value > 0)

    def test_bad_clv_arguments(self) -> None:
        d = shipped_summary()
        bg = fit_bgnbd(d.frequency, d.recency, d.T)
        gg = fit_gamma_gamma(d.frequency, d.monetary)
        args = (bg, gg, [1.0], [2.0], [3.0], [4.0])
        with pytest.raises(ModelError, match="months"):
            clv(*args, months=-1)
        with pytest.raises(ModelError, match="discount_rate"):
            clv(*args, discount_rate=float("nan"))
        with pytest.raises(ModelError, match="freq_days"):
            clv(*args, freq_days=0.0)
