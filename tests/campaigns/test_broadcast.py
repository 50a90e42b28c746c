"""Broadcast runs end to end: audience → snapshot → assignments → treatments (outbox items,
messages), resumed after an interruption without double treatment; recurring occurrences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.campaigns import tasks
from siyu.campaigns.models import CampaignMember, CampaignRun, CampaignTreatment
from siyu.campaigns.treatments import OUTBOX_KIND
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.outbox.models import OutboxItem
from tests.campaigns.helpers import API, campaign_body
from tests.conftest import Tenant
from tests.coupons.helpers import make_members

POINTS = [{"key": "main", "weight_bp": 10_000, "treatments": [{"action": "points", "points": 10}]}]


def start(client: TestClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    created = client.post(f"{API}/campaigns", json=campaign_body(**fields), headers=tenant.headers)
    assert created.status_code == 201, created.text
    started = client.post(f"{API}/campaigns/{created.json()['id']}/start", headers=tenant.headers)
    assert started.status_code == 200, started.text
    return dict(started.json())


def members_of(db: Database, merchant_id: str, campaign_id: str) -> dict[str, str]:
    with db.reading() as session:
        statement = select(CampaignMember.member_id, CampaignMember.group).where(
            CampaignMember.merchant_id == merchant_id, CampaignMember.campaign_id == campaign_id
        )
        return dict(session.execute(statement).all())


def treatments_of(db: Database, merchant_id: str, campaign_id: str) -> list[CampaignTreatment]:
    with db.reading() as session:
        statement = select(CampaignTreatment).where(
            CampaignTreatment.merchant_id == merchant_id, CampaignTreatment.campaign_id == campaign_id
        )
        return list(session.execute(statement).scalars())


def outbox_count(db: Database, merchant_id: str) -> int:
    with db.reading() as session:
        statement = (
            select(func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.merchant_id == merchant_id, OutboxItem.kind == OUTBOX_KIND)
        )
        return int(session.execute(statement).scalar_one())


def runs_of(db: Database, merchant_id: str, campaign_id: str) -> list[CampaignRun]:
    with db.reading() as session:
        statement = select(CampaignRun).where(
            CampaignRun.merchant_id == merchant_id, CampaignRun.campaign_id == campaign_id
        )
        return list(session.execute(statement.order_by(CampaignRun.occurrence)).scalars())


class TestOnceToEveryActiveMember:
    def test_assigns_everyone_treats_only_the_treatment_group(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: 300 members, a 20 % holdout, points for the treated
        tenant = make_tenant()
        everyone = make_members(db, tenant.merchant_id, 300)
        campaign = start(client, tenant, holdout_bp=2000, variants=POINTS)
        # when
        report = tasks.run_merchant(db, tenant.merchant_id, slice_size=64)
        # then
        groups = members_of(db, tenant.merchant_id, campaign["id"])
        treated = {t.member_id for t in treatments_of(db, tenant.merchant_id, campaign["id"])}
        held = {m for m, g in groups.items() if g == "holdout"}
        assert set(groups) == set(everyone)
        assert 20 < len(held) < 100
        assert treated == set(groups) - held
        assert held.isdisjoint(treated)
        assert outbox_count(db, tenant.merchant_id) == len(treated)
        assert report.members_assigned == 300
        assert report.members_treated == len(treated)
        run = runs_of(db, tenant.merchant_id, campaign["id"])
        assert [(r.occurrence, r.status, r.members, r.treated) for r in run] == [
            ("once", "done", 300, len(treated))
        ]

    def test_a_second_round_does_nothing(self, db: Database, client: TestClient, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 50)
        campaign = start(client, tenant, variants=POINTS)
        tasks.run_merchant(db, tenant.merchant_id)
        before = len(treatments_of(db, tenant.merchant_id, campaign["id"]))
        # when
        report = tasks.run_merchant(db, tenant.merchant_id, now=utcnow() + timedelta(hours=1))
        # then
        assert report.members_assigned == report.members_treated == 0
        assert len(treatments_of(db, tenant.merchant_id, campaign["id"])) == before


class TestResume:
    def test_an_interrupted_run_resumes_where_it_stopped_and_treats_nobody_twice(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: a run stopped after 3 slices of 40 (materialise + 2 slices)…
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 200)
        campaign = start(client, tenant, holdout_bp=1000, variants=POINTS)
        tasks.run_merchant(db, tenant.merchant_id, slice_size=40, max_slices=3)
        partial = runs_of(db, tenant.merchant_id, campaign["id"])[0]
        assert (partial.status, partial.members) == ("active", 80)

        # …and a slice that crashed after its writes, before its commit
        def crash() -> None:
            with db.unit_of_work() as session:
                tasks.advance_run(
                    session, tenant.merchant_id, campaign["id"], "once", now=utcnow(), slice_size=40
                )
                raise RuntimeError("worker killed")

        with pytest.raises(RuntimeError):
            crash()
        # …and the same slice replayed by hand from an old cursor (a duplicate delivery)
        with db.unit_of_work() as session:
            run = session.get(CampaignRun, (tenant.merchant_id, campaign["id"], "once"))
            assert run is not None
            run.cursor = None
        # when
        tasks.run_merchant(db, tenant.merchant_id, slice_size=40)
        # then: every member once, every treatment-group member treated exactly once
        groups = members_of(db, tenant.merchant_id, campaign["id"])
        given = treatments_of(db, tenant.merchant_id, campaign["id"])
        assert len(groups) == 200
        assert sorted(t.member_id for t in given) == sorted(m for m, g in groups.items() if g == "treatment")
        assert outbox_count(db, tenant.merchant_id) == len(given)
        assert runs_of(db, tenant.merchant_id, campaign["id"])[0].status == "done"

    def test_a_paused_campaign_waits_and_resumes(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: a run half done, then paused
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 100)
        campaign = start(client, tenant, variants=POINTS)
        tasks.run_merchant(db, tenant.merchant_id, slice_size=25, max_slices=2)
        client.post(f"{API}/campaigns/{campaign['id']}/pause", headers=tenant.headers)
        # when
        paused = tasks.run_merchant(db, tenant.merchant_id, slice_size=25)
        client.post(f"{API}/campaigns/{campaign['id']}/resume", headers=tenant.headers)
        resumed = tasks.run_merchant(db, tenant.merchant_id, slice_size=25)
        # then
        assert paused.members_assigned == 0
        assert resumed.members_assigned == 75
        assert len(members_of(db, tenant.merchant_id, campaign["id"])) == 100


class TestBudgetExhausted:
    def test_the_run_stops_when_the_budget_runs_out(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: 200 members, points for 30 of them
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 200)
        campaign = start(client, tenant, holdout_bp=0, variants=POINTS, budget_points=300)
        # when
        tasks.run_merchant(db, tenant.merchant_id, slice_size=50)
        # then
        run = runs_of(db, tenant.merchant_id, campaign["id"])[0]
        given = treatments_of(db, tenant.merchant_id, campaign["id"])
        assert run.status == "budget_exhausted"
        assert run.members == 50
        assert sum(t.status == "queued" for t in given) == 30
        assert sum(t.status == "over_budget" for t in given) == 20
        answer = client.get(f"{API}/campaigns/{campaign['id']}", headers=tenant.headers).json()
        assert answer["spent_points"] == 300


class TestRecurring:
    def test_a_daily_campaign_runs_once_per_local_day(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: daily at 10:00 Shanghai (02:00 UTC) from 28 November
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 30)
        schedule = {"start_at": "2026-11-28T09:00:00+08:00", "recurrence": "daily", "local_time": "10:00"}
        campaign = start(client, tenant, holdout_bp=0, variants=POINTS, schedule=schedule)
        day1 = datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
        # when: rounds before the time, at it, later the same day, and the next day
        early = tasks.run_merchant(db, tenant.merchant_id, now=datetime(2026, 11, 28, 1, 59, tzinfo=UTC))
        tasks.run_merchant(db, tenant.merchant_id, now=day1)
        tasks.run_merchant(db, tenant.merchant_id, now=day1 + timedelta(hours=8))
        tasks.run_merchant(db, tenant.merchant_id, now=day1 + timedelta(days=1))
        tasks.run_merchant(db, tenant.merchant_id, now=day1 + timedelta(days=1, hours=3))
        # then
        assert early.members_treated == 0
        runs = runs_of(db, tenant.merchant_id, campaign["id"])
        assert [(r.occurrence, r.treated) for r in runs] == [("2026-11-28", 30), ("2026-11-29", 30)]
        given = treatments_of(db, tenant.merchant_id, campaign["id"])
        assert len(given) == 60
        assert len({t.key for t in given}) == 60

    def test_a_campaign_completes_when_end_at_passes(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        tenant = make_tenant()
        schedule = {
            "start_at": "2026-11-28T09:00:00+08:00",
            "end_at": "2026-11-30T09:00:00+08:00",
            "recurrence": "daily",
            "local_time": "10:00",
        }
        campaign = start(client, tenant, variants=POINTS, schedule=schedule)
        # when
        report = tasks.run_merchant(db, tenant.merchant_id, now=datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
        # then
        assert report.completed == 1
        answer = client.get(f"{API}/campaigns/{campaign['id']}", headers=tenant.headers).json()
        assert answer["status"] == "completed"

    def test_a_scheduled_campaign_starts_by_itself(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 10)
        body = campaign_body(variants=POINTS, schedule={"start_at": "2026-11-28T12:00:00+08:00"})
        created = client.post(f"{API}/campaigns", json=body, headers=tenant.headers).json()
        client.post(f"{API}/campaigns/{created['id']}/schedule", headers=tenant.headers)
        # when
        before = tasks.run_merchant(db, tenant.merchant_id, now=datetime(2026, 11, 28, 3, 59, tzinfo=UTC))
        after = tasks.run_merchant(db, tenant.merchant_id, now=datetime(2026, 11, 28, 4, 0, tzinfo=UTC))
        # then
        assert (before.started, after.started) == (0, 1)
        assert after.members_assigned == 10


def event(
    event_id: str, member_no: str, type_: str = "visit", *, at: datetime, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": type_,
        "occurred_at": at.isoformat(),
        "identities": {"member_no": member_no},
    }
    body.update(extra)
    return body


def send(client: TestClient, tenant: Tenant, events: list[dict[str, Any]]) -> list[str]:
    answer = client.post(f"{API}/events/batch", json={"events": events}, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return [str(v["member_id"]) for v in answer.json()["results"]]


class TestSegmentAudience:
    def test_the_segment_is_snapshotted_and_only_its_members_are_in_the_campaign(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: 12 members who ordered, 8 who only visited; a segment of those who ordered
        tenant = make_tenant()
        at = utcnow() - timedelta(days=1)
        buyers = send(
            client,
            tenant,
            [
                event(
                    f"o{i}", f"b{i}", "order_paid", at=at, properties={"order_id": f"o{i}", "amount_fen": 990}
                )
                for i in range(12)
            ],
        )
        send(client, tenant, [event(f"v{i}", f"v{i}", at=at) for i in range(8)])
        rule = {"attribute": {"field": "order_count", "op": "gte", "value": 1}}
        segment = client.post(
            f"{API}/segments", json={"name": "下过单", "rule": rule}, headers=tenant.headers
        )
        assert segment.status_code == 201, segment.text
        campaign = start(
            client, tenant, audience_segment_id=segment.json()["id"], holdout_bp=0, variants=POINTS
        )
        # when
        tasks.run_merchant(db, tenant.merchant_id, slice_size=5)
        # then
        assert campaign["audience_rule"] == rule  # frozen at start
        assert set(members_of(db, tenant.merchant_id, campaign["id"])) == set(buyers)
        run = runs_of(db, tenant.merchant_id, campaign["id"])[0]
        assert run.snapshot_id is not None
        frozen = client.get(
            f"{API}/segments/snapshots/{run.snapshot_id}/members",
            params={"limit": 100},
            headers=tenant.headers,
        )
        assert frozen.status_code == 200, frozen.text
        assert len(frozen.json()["items"]) == 12
        assert {t.member_id for t in treatments_of(db, tenant.merchant_id, campaign["id"])} == set(buyers)


class TestMemberEndpoint:
    def test_a_members_group_and_treatments(self, db: Database, client: TestClient, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        everyone = make_members(db, tenant.merchant_id, 30)
        campaign = start(client, tenant, holdout_bp=3000, variants=POINTS)
        tasks.run_merchant(db, tenant.merchant_id)
        groups = members_of(db, tenant.merchant_id, campaign["id"])
        held = next(m for m, g in groups.items() if g == "holdout")
        treated = next(m for m, g in groups.items() if g == "treatment")
        url = f"{API}/campaigns/{campaign['id']}/members"
        # when
        h = client.get(f"{url}/{held}", headers=tenant.headers).json()
        t = client.get(f"{url}/{treated}", headers=tenant.headers).json()
        other = make_members(db, tenant.merchant_id, 1)[0]
        missing = client.get(f"{url}/{other}", headers=tenant.headers)
        # then
        assert (h["group"], h["variant"], h["treated_at"], h["treatments"]) == ("holdout", None, None, [])
        assert (t["group"], t["variant"]) == ("treatment", "main")
        assert t["treated_at"] is not None
        assert [(x["action"], x["status"], x["key"]) for x in t["treatments"]] == [
            ("points", "queued", f"{campaign['id']}:{treated}:run:once:0")
        ]
        assert missing.status_code == 404
        assert len(everyone) == 30


class TestRunAll:
    def test_the_upkeep_round_does_the_work_of_every_merchant_with_campaigns(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: two merchants with a running broadcast, one without campaigns
        first, second, idle = make_tenant("a"), make_tenant("b"), make_tenant("c")
        for tenant in (first, second, idle):
            make_members(db, tenant.merchant_id, 10)
        start(client, first, holdout_bp=0, variants=POINTS)
        start(client, second, holdout_bp=0, variants=POINTS)
        with db.reading() as session:
            from siyu.campaigns import repository

            visited = repository.merchants_with_campaigns(session, tasks.ACTIVE)
        # when
        report = tasks.run_all(db)
        # then
        assert visited == sorted([first.merchant_id, second.merchant_id])
        assert report.members_assigned == report.members_treated == 20
