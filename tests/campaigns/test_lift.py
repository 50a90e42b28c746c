"""The statistics of campaign results: known values, edge cases, and coverage on generated
populations with a known true effect (deterministic seeds)."""

from __future__ import annotations

import math
import random

import pytest

from siyu.campaigns.lift import (
    GroupSums,
    conversion_lift,
    mean_lift,
    student_t_quantile,
    wilson_interval,
)

SEEDS = range(200)


class TestStudentTQuantile:
    @pytest.mark.parametrize(
        ("df", "expected"),
        [(1, 12.7062047362), (2, 4.3026527297), (10, 2.2281388520), (30, 2.0422724563), (1000, 1.9623390808)],
    )
    def test_matches_tabulated_975_quantiles(self, df: float, expected: float) -> None:
        # given / when
        value = student_t_quantile(0.975, df)
        # then
        assert value == pytest.approx(expected, abs=1e-7)

    def test_is_symmetric_and_tends_to_the_normal(self) -> None:
        # given / when / then
        assert student_t_quantile(0.025, 7.5) == pytest.approx(-student_t_quantile(0.975, 7.5))
        assert student_t_quantile(0.975, 1e9) == pytest.approx(1.959963985, abs=1e-8)

    def test_rejects_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="p must"):
            student_t_quantile(1.0, 5)
        with pytest.raises(ValueError, match="df must"):
            student_t_quantile(0.9, 0)


class TestWilsonInterval:
    def test_zero_successes_still_has_width(self) -> None:
        # given / when
        interval = wilson_interval(0, 20)
        # then: Wald would give [0, 0]
        assert interval.low == pytest.approx(0.0, abs=1e-12)
        assert interval.high == pytest.approx(0.1611, abs=1e-4)


class TestConversionLift:
    @pytest.mark.parametrize(
        ("t", "tn", "h", "hn", "low", "high"),
        # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10
        [(56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090)],
    )
    def test_matches_newcombes_published_intervals(
        self, t: int, tn: int, h: int, hn: int, low: float, high: float
    ) -> None:
        # given / when
        result = conversion_lift(tn, t, hn, h)
        # then
        assert result.lift == pytest.approx(t / tn - h / hn)
        assert result.interval is not None
        assert result.interval.low == pytest.approx(low, abs=1e-4)
        assert result.interval.high == pytest.approx(high, abs=1e-4)
        assert result.method == "newcombe_hybrid_score"

    def test_empty_holdout_gives_no_interval_and_says_why(self) -> None:
        # given / when
        result = conversion_lift(100, 12, 0, 0)
        # then
        assert result.treatment_rate == pytest.approx(0.12)
        assert result.holdout_rate is None
        assert result.lift is None
        assert result.interval is None
        assert result.reason is not None
        assert "holdout" in result.reason
        assert not result.significant

    def test_tiny_groups_get_a_wide_interval_and_a_caveat(self) -> None:
        # given / when
        result = conversion_lift(3, 3, 2, 0)
        # then
        assert result.lift == 1.0
        assert result.interval is not None
        assert result.interval.low < 0.5
        assert result.reason is not None
        assert "rough" in result.reason

    def test_no_conversions_anywhere_gives_an_interval_around_zero(self) -> None:
        # given / when
        result = conversion_lift(500, 0, 500, 0)
        # then
        assert result.lift == 0.0
        assert result.interval is not None
        assert result.interval.low < 0 < result.interval.high
        assert not result.significant

    def test_rejects_more_conversions_than_members(self) -> None:
        with pytest.raises(ValueError, match="within"):
            conversion_lift(10, 11, 10, 1)

    def test_covers_a_known_true_lift_in_about_95_percent_of_seeds(self) -> None:
        # given: base conversion 10 %, true lift +3 pp
        base, true_lift = 0.10, 0.03
        covered = 0
        for seed in SEEDS:
            rng = random.Random(seed)
            tn, hn = 2000, 1000
            t = sum(rng.random() < base + true_lift for _ in range(tn))
            h = sum(rng.random() < base for _ in range(hn))
            # when
            result = conversion_lift(tn, t, hn, h)
            # then
            assert result.interval is not None
            covered += result.interval.contains(true_lift)
        assert covered / len(SEEDS) >= 0.90

    def test_a_null_effect_is_significant_in_at_most_10_percent_of_seeds(self) -> None:
        # given
        significant = 0
        for seed in SEEDS:
            rng = random.Random(10_000 + seed)
            t = sum(rng.random() < 0.10 for _ in range(2000))
            h = sum(rng.random() < 0.10 for _ in range(1000))
            # when
            significant += conversion_lift(2000, t, 1000, h).significant
        # then
        assert significant / len(SEEDS) <= 0.10


def _gmv(rng: random.Random, n: int, rate: float, mu: float, sigma: float, shift: int) -> list[int]:
    """Per-member GMV in fen: a buyer (probability ``rate``) spends lognormal + ``shift``; the
    others spend 0."""
    return [round(rng.lognormvariate(mu, sigma)) + shift if rng.random() < rate else 0 for _ in range(n)]


class TestMeanLift:
    def test_matches_a_hand_computed_welch_interval(self) -> None:
        # given
        treatment, holdout = [10, 20, 30, 40], [5, 5, 10]
        # when
        result = mean_lift(GroupSums.of(treatment), GroupSums.of(holdout), scale_n=4)
        # then: means 25 and 6.667, variances 166.667 and 8.333
        se2 = 166.6666667 / 4 + 8.3333333 / 3
        df = se2**2 / ((166.6666667 / 4) ** 2 / 3 + (8.3333333 / 3) ** 2 / 2)
        half = student_t_quantile(0.975, df) * math.sqrt(se2)
        assert result.lift == pytest.approx(25 - 20 / 3)
        assert result.lift is not None
        assert result.degrees_of_freedom == pytest.approx(df, rel=1e-6)
        assert result.interval is not None
        assert result.interval.low == pytest.approx(result.lift - half)
        assert result.interval.high == pytest.approx(result.lift + half)
        assert result.total_lift == pytest.approx(4 * (25 - 20 / 3))
        assert result.total_interval is not None
        assert result.total_interval.low == pytest.approx(4 * (result.lift - half))

    def test_empty_holdout_gives_no_interval(self) -> None:
        # given / when
        result = mean_lift(GroupSums.of([100, 0, 300]), GroupSums(0, 0.0, 0.0))
        # then
        assert result.treatment_mean == pytest.approx(400 / 3)
        assert result.lift is None
        assert result.interval is None
        assert result.total_lift is None
        assert result.reason is not None
        assert "holdout" in result.reason

    def test_a_single_member_group_gives_a_lift_but_no_interval(self) -> None:
        # given / when
        result = mean_lift(GroupSums.of([100, 200]), GroupSums.of([50]))
        # then
        assert result.lift == pytest.approx(100)
        assert result.interval is None
        assert result.reason is not None
        assert "single member" in result.reason

    def test_zero_variance_in_both_groups_gives_no_interval(self) -> None:
        # given / when
        result = mean_lift(GroupSums.of([0] * 50), GroupSums.of([0] * 40))
        # then
        assert result.lift == 0.0
        assert result.interval is None
        assert result.reason is not None
        assert "no variance" in result.reason

    def test_zero_variance_in_one_group_still_gives_an_interval(self) -> None:
        # given / when
        result = mean_lift(GroupSums.of([0, 100, 0, 300] * 10), GroupSums.of([0] * 40))
        # then
        assert result.interval is not None
        assert result.degrees_of_freedom == pytest.approx(39)

    def test_covers_a_known_additive_gmv_effect_in_about_95_percent_of_seeds(self) -> None:
        # given: 20 % buy in both groups; a buyer spends lognormal(mu=8, sigma=0.8) fen, plus
        # 3,000 fen in the treatment group: the true lift per member is 0.2 × 3,000 = 600 fen
        true_lift = 0.2 * 3000
        covered = total_covered = 0
        for seed in SEEDS:
            rng = random.Random(seed)
            treatment = _gmv(rng, 2000, 0.2, 8.0, 0.8, 3000)
            holdout = _gmv(rng, 1000, 0.2, 8.0, 0.8, 0)
            # when
            result = mean_lift(GroupSums.of(treatment), GroupSums.of(holdout))
            # then
            assert result.interval is not None
            assert result.total_interval is not None
            covered += result.interval.contains(true_lift)
            total_covered += result.total_interval.contains(true_lift * 2000)
        assert covered / len(SEEDS) >= 0.90
        assert total_covered == covered

    def test_covers_a_known_conversion_driven_gmv_effect(self) -> None:
        # given: conversion 10 % → 13 %, the same spend distribution: the true lift is
        # 0.03 × E[lognormal] = 0.03 × exp(mu + sigma²/2)
        mu, sigma = 9.0, 0.6
        true_lift = 0.03 * math.exp(mu + sigma**2 / 2)
        covered = 0
        for seed in SEEDS:
            rng = random.Random(50_000 + seed)
            treatment = _gmv(rng, 3000, 0.13, mu, sigma, 0)
            holdout = _gmv(rng, 1500, 0.10, mu, sigma, 0)
            # when
            result = mean_lift(GroupSums.of(treatment), GroupSums.of(holdout))
            # then
            assert result.interval is not None
            covered += result.interval.contains(true_lift)
        assert covered / len(SEEDS) >= 0.90

    def test_a_null_gmv_effect_is_significant_in_at_most_10_percent_of_seeds(self) -> None:
        # given
        significant = 0
        for seed in SEEDS:
            rng = random.Random(90_000 + seed)
            treatment = _gmv(rng, 2000, 0.2, 8.0, 0.8, 0)
            holdout = _gmv(rng, 1000, 0.2, 8.0, 0.8, 0)
            # when
            significant += mean_lift(GroupSums.of(treatment), GroupSums.of(holdout)).significant
        # then
        assert significant / len(SEEDS) <= 0.10
