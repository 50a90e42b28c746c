"""The refit job end to end: a fit recorded, scores written that segment rules then select."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from bench.high_potential import CUTOFF, generate, seed
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.cli.main import app as cli
from siyu.db import Database
from siyu.models import facade
from siyu.models.models import FitStatus
from siyu.models.scoring import ScoreName
from siyu.outbox import facade as outbox
from siyu.segments import facade as segments
from tests.cli.test_cli import cli_env  # noqa: F401  (fixture)
from tests.conftest import Tenant
from tests.models.helpers import event, ingest, paid

API = "/api/v1"
runner = CliRunner()
ZONE = ZoneInfo("Asia/Shanghai")
AS_OF = CUTOFF + timedelta(days=30)
REQUESTED = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 20, tzinfo=ZONE).astimezone(UTC)
"""20:00 local on the as-of day (12:00 UTC)."""


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=ZONE).astimezone(UTC)


def buyers(db: Database, tenant: Tenant, n: int, *, seed_: int = 3) -> dict[str, str]:
    """``n`` buyers as the BG/NBD has them (Poisson purchases, dropout after each with a
    per-buyer probability), first seen in the 180 days before AS_OF."""
    rng = np.random.default_rng(seed_)
    raw = []
    for i in range(n):
        first = AS_OF - timedelta(days=int(rng.integers(20, 180)))
        rate, dropout = rng.gamma(1.0, 1 / 15), rng.beta(0.8, 2.5)
        days = {first}
        t = 0.0
        while rng.random() > dropout:
            t += rng.exponential(1 / rate)
            if first + timedelta(days=int(t)) > AS_OF:
                break
            days.add(first + timedelta(days=int(t)))
        for j, day in enumerate(sorted(days)):
            raw.append(paid(f"b{i}-{j}", f"buyer-{i}", noon(day), int(rng.integers(1000, 9000))))
    return ingest(db, tenant.merchant_id, raw, now=REQUESTED)


def refit(db: Database, tenant: Tenant) -> facade.FitView:
    with db.unit_of_work() as session:
        queued = facade.request_refit(session, tenant.merchant_id, now=REQUESTED)
    assert queued.status is FitStatus.QUEUED
    assert outbox.run_once(db) >= 1
    with db.reading() as session:
        done = facade.fit(session, tenant.merchant_id, queued.id)
    assert done is not None
    return done


class TestRefit:
    def test_writes_scores_that_segments_select(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given: 300 buyers and 1 200 prospects (engagement drives first orders after the cutoff)
        tenant = make_tenant()
        buyer_ids = buyers(db, tenant, 300)
        world = generate(1200, seed=21)
        with db.unit_of_work() as session:
            seed(session, tenant.merchant_id, world)
        stale = next(iter(buyer_ids.values()))  # scored as a prospect by an earlier fit
        with db.unit_of_work() as session:
            segments.record_scores(
                session, tenant.merchant_id, "high_potential", {stale: 0.9}, now=REQUESTED - timedelta(days=7)
            )
        # when
        fit = refit(db, tenant)
        # then: the fit is recorded with its parameters and figures
        assert fit.status is FitStatus.SUCCEEDED, fit.error
        assert fit.as_of == AS_OF
        converted = sum(m.first_order is not None for m in world)
        assert fit.n_customers == 300 + converted
        assert fit.n_prospects == 1200 - converted
        assert set(fit.params["bgnbd"]) >= {"r", "alpha", "a", "b", "log_likelihood"}
        assert fit.log_likelihood == fit.params["bgnbd"]["log_likelihood"] < 0
        assert fit.auc is not None
        assert 0.6 < fit.auc <= 1
        assert fit.members_scored == 300 + 1200
        with db.reading() as session:
            one = facade.member_scores(session, tenant.merchant_id, stale)
            everyone = {
                m: facade.member_scores(session, tenant.merchant_id, m)
                for m in [*buyer_ids.values(), *(w.member_id for w in world)]
            }
        assert one is not None
        assert one.churn_band is not None
        assert set(one.scores) == {"clv", "p_alive", "expected_purchases_30d", "churn_risk"}  # stale one gone
        assert one.scores["clv"] == int(one.scores["clv"]) >= 0
        assert 0 <= one.scores["p_alive"] <= 1
        assert 0 <= one.scores["churn_risk"] <= 1
        # and a segment rule on a score selects exactly the members whose score passes
        for model, threshold in ((ScoreName.HIGH_POTENTIAL, 0.2), (ScoreName.CHURN_RISK, 0.5)):
            rule = {"score": {"model": model, "op": "gte", "value": threshold}}
            with db.reading() as session:
                selected = set(
                    session.execute(
                        segments.member_ids(session, tenant.merchant_id, rule, now=REQUESTED)
                    ).scalars()
                )
            expected = {
                m for m, v in everyone.items() if v is not None and v.scores.get(model, -1) >= threshold
            }
            assert selected == expected
            assert 0 < len(selected) < len(everyone)

    def test_too_few_repeat_buyers_is_a_failed_fit(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given: one-time buyers only, and a few visitors
        tenant = make_tenant()
        raw = [paid(f"o{i}", f"p{i}", noon(AS_OF - timedelta(days=i + 1)), 1000) for i in range(30)]
        raw += [event(f"v{i}", f"v{i}", noon(AS_OF - timedelta(days=3))) for i in range(5)]
        ids = ingest(db, tenant.merchant_id, raw, now=REQUESTED)
        # when
        fit = refit(db, tenant)
        # then
        assert fit.status is FitStatus.FAILED
        assert fit.error is not None
        assert "too few repeat buyers" in fit.error
        assert "high_potential" in fit.error
        assert fit.members_scored == 0
        assert fit.n_customers == 30
        assert fit.n_repeat == 0
        with db.reading() as session:
            assert all(not segments.scores_of(session, tenant.merchant_id, m) for m in ids.values())

    def test_a_finished_fit_is_not_run_again(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        tenant = make_tenant()
        fit = refit(db, tenant)
        # when
        from siyu.models.tasks import run_refit

        again = run_refit(db, tenant.merchant_id, fit.id)
        # then
        assert again is None


class TestApi:
    def test_refit_is_accepted_and_listed(self, client: TestClient, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        tenant, other = make_tenant(), make_tenant("其他")
        # when
        answer = client.post(f"{API}/models/refit", headers=tenant.headers)
        # then
        assert answer.status_code == 202, answer.text
        fit_id = answer.json()["id"]
        assert answer.json()["status"] == "queued"
        outbox.run_once(db)
        listed = client.get(f"{API}/models/fits", headers=tenant.headers).json()["items"]
        assert [f["id"] for f in listed] == [fit_id]
        assert listed[0]["status"] == "failed"
        assert "too few repeat buyers" in listed[0]["error"]
        # and another merchant sees nothing of it
        assert client.get(f"{API}/models/fits", headers=other.headers).json()["items"] == []
        assert client.get(f"{API}/models/fits/{fit_id}", headers=other.headers).status_code == 404
        assert client.get(f"{API}/models/fits/{fit_id}", headers=tenant.headers).status_code == 200

    def test_scopes_are_required(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        reader = make_tenant(scopes=["models:read"])
        nobody = make_tenant(scopes=["members:read"])
        # when / then
        assert client.post(f"{API}/models/refit", headers=reader.headers).status_code == 403
        assert client.get(f"{API}/models/fits", headers=reader.headers).status_code == 200
        assert client.get(f"{API}/models/fits", headers=nobody.headers).status_code == 403
        assert client.get(f"{API}/models/fits").status_code == 401

    def test_member_scores_of_own_members_only(self, client: TestClient, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given: a member with a score
        tenant, other = make_tenant(), make_tenant("其他")
        ids = ingest(db, tenant.merchant_id, [event("v", "m1", noon(AS_OF))], now=REQUESTED)
        member_id = ids["m1"]
        with db.unit_of_work() as session:
            segments.record_scores(session, tenant.merchant_id, "clv", {member_id: 12345.0}, now=REQUESTED)
            segments.record_scores(session, tenant.merchant_id, "churn_risk", {member_id: 0.7}, now=REQUESTED)
        # when
        mine = client.get(f"{API}/members/{member_id}/scores", headers=tenant.headers)
        theirs = client.get(f"{API}/members/{member_id}/scores", headers=other.headers)
        # then
        assert mine.status_code == 200, mine.text
        assert mine.json()["clv_fen"] == 12345
        assert mine.json()["scores"] == {"churn_risk": 0.7}
        assert mine.json()["churn_band"] == "high"
        assert theirs.status_code == 404


@pytest.mark.usefixtures("cli_env")
class TestCli:
    def test_refit_reports_a_failed_fit(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given: one-time buyers only
        tenant = make_tenant()
        raw = [paid(f"o{i}", f"p{i}", noon(AS_OF - timedelta(days=i + 1)), 1000) for i in range(12)]
        ingest(db, tenant.merchant_id, raw, now=REQUESTED)
        # when
        result = runner.invoke(cli, ["models", "refit", "-m", tenant.merchant_id, "--json"])
        # then
        assert result.exit_code == 2, result.output
        (fit,) = json.loads(result.stdout)
        assert fit["status"] == "failed"
        assert "too few repeat buyers" in fit["error"]
        listed = runner.invoke(cli, ["models", "fits", "-m", tenant.merchant_id, "--json"])
        assert listed.exit_code == 0, listed.output
        assert [f["id"] for f in json.loads(listed.stdout)] == [fit["id"]]

    def test_unknown_merchant(self) -> None:
        result = runner.invoke(cli, ["models", "refit", "-m", "mch_nope"])
        assert result.exit_code == 2
