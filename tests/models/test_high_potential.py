"""The high-potential classifier on generated members (bench/high_potential.py's ground truth)."""

from __future__ import annotations

import numpy as np
import pytest
from bench.high_potential import evaluate, generate, seed

from siyu.db import Database
from siyu.models import ModelError
from siyu.models import high_potential as hp
from siyu.models.features import ENGAGEMENT_FEATURES


class TestOnGeneratedMembers:
    def test_auc_near_the_ground_truth_and_calibrated(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given: 2 000 prospects whose engagement drives first orders through a known logistic model
        tenant = make_tenant()
        world = generate(2000, seed=11)
        with db.unit_of_work() as session:
            seed(session, tenant.merchant_id, world)
        # when: features and labels come from the state store, the model trains at the cutoff
        with db.reading() as session:
            result = evaluate(session, tenant.merchant_id, world)
        # then
        fit = result.fit
        assert result.members == 2000
        assert result.converted == sum(m.first_order is not None for m in world)
        assert result.truth_auc > 0.75  # the generated signal is real
        assert fit.auc > 0.7  # clearly better than chance …
        assert abs(fit.auc - result.truth_auc) < 0.05  # … and close to the best any model can do
        assert sum(b.members for b in fit.reliability) == fit.n_validation
        predicted = sum(b.members * b.mean_predicted for b in fit.reliability) / fit.n_validation
        observed = sum(b.members * b.observed_rate for b in fit.reliability) / fit.n_validation
        assert abs(predicted - observed) < 0.03
        assert fit.calibration_error < 0.05
        assert fit.brier < observed * (1 - observed)  # better than predicting the base rate

    def test_learns_the_signs_of_the_truth(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        tenant = make_tenant()
        world = generate(2000, seed=12)
        with db.unit_of_work() as session:
            seed(session, tenant.merchant_id, world)
        # when
        with db.reading() as session:
            fit = evaluate(session, tenant.merchant_id, world).fit
        # then: the strongest true drivers come out positive, staleness negative
        weight = dict(zip(fit.features, fit.coefficients, strict=True))
        assert weight["favourites"] > 0
        assert weight["visits"] > 0
        assert weight["days_since_last_seen"] < 0


class TestTrain:
    def test_too_few_conversions_is_a_model_error(self) -> None:
        # given
        values = np.ones((200, len(ENGAGEMENT_FEATURES)))
        converted = np.zeros(200, dtype=bool)
        converted[:5] = True
        # when / then
        with pytest.raises(ModelError, match="too few members"):
            hp.train(values, converted)

    def test_wrong_shape_is_a_model_error(self) -> None:
        with pytest.raises(ModelError, match="engagement features"):
            hp.train(np.ones((50, 3)), np.zeros(50, dtype=bool))

    def test_the_split_is_stratified_and_reproducible(self) -> None:
        # given
        y = np.array([True] * 30 + [False] * 70)
        # when
        first, second = hp.split(y, seed=3), hp.split(y, seed=3)
        # then
        assert np.array_equal(first[1], second[1])
        assert len(first[1]) == 30
        assert int(y[first[1]].sum()) == 9
