"""Trigger campaigns: an event, a delay and a condition; stage changes; birthdays. The holdout is
assigned but never treated; a member enters once unless the trigger repeats."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.campaigns import tasks
from siyu.campaigns.models import CampaignMember, CampaignTreatment, CampaignTriggerEntry
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.lifecycle.models import StageTransition
from siyu.members import facade as members
from tests.campaigns.helpers import API, campaign_body
from tests.campaigns.test_broadcast import POINTS, event, send
from tests.conftest import Tenant

NO_ORDER = {"attribute": {"field": "order_count", "op": "eq", "value": 0}}
THREE_DAYS = 3 * 86_400


def start(client: TestClient, tenant: Tenant, trigger: dict[str, Any], **fields: Any) -> str:
    body = campaign_body(kind="trigger", trigger=trigger, variants=POINTS, **fields)
    created = client.post(f"{API}/campaigns", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    started = client.post(f"{API}/campaigns/{created.json()['id']}/start", headers=tenant.headers)
    assert started.status_code == 200, started.text
    return str(created.json()["id"])


def entries(db: Database, campaign_id: str) -> list[CampaignTriggerEntry]:
    with db.reading() as session:
        statement = select(CampaignTriggerEntry).where(CampaignTriggerEntry.campaign_id == campaign_id)
        return list(session.execute(statement.order_by(CampaignTriggerEntry.member_id)).scalars())


def groups(db: Database, campaign_id: str) -> dict[str, str]:
    with db.reading() as session:
        statement = select(CampaignMember.member_id, CampaignMember.group).where(
            CampaignMember.campaign_id == campaign_id
        )
        return dict(session.execute(statement).all())


def treated(db: Database, campaign_id: str) -> list[str]:
    with db.reading() as session:
        statement = select(CampaignTreatment.member_id).where(CampaignTreatment.campaign_id == campaign_id)
        return sorted(session.execute(statement).scalars())


class TestEventDelayCondition:
    def test_first_visit_without_an_order_for_three_days(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: "visited, no order 3 days later" — 6 visitors, 2 of whom order the next day
        tenant = make_tenant()
        campaign_id = start(
            client,
            tenant,
            {"event": "visit", "delay_seconds": THREE_DAYS, "condition": NO_ORDER},
            holdout_bp=0,
        )
        visited = utcnow() + timedelta(minutes=1)
        visitors = send(client, tenant, [event(f"v{i}", f"n{i}", at=visited) for i in range(6)])
        order = {"order_id": "x", "amount_fen": 100}
        send(
            client,
            tenant,
            [
                event(
                    f"o{i}",
                    f"n{i}",
                    "order_paid",
                    at=visited + timedelta(hours=20),
                    properties=order | {"order_id": f"o{i}"},
                )
                for i in range(2)
            ],
        )
        # when: a round before the delay passes, then one after
        early = tasks.run_merchant(db, tenant.merchant_id, now=visited + timedelta(days=2))
        due = tasks.run_merchant(db, tenant.merchant_id, now=visited + timedelta(seconds=THREE_DAYS + 60))
        # then
        assert early.entries_fired == 0
        assert due.entries_fired == 4
        found = {e.member_id: (e.status, e.reason) for e in entries(db, campaign_id)}
        assert found == {
            **dict.fromkeys(visitors[:2], ("skipped", "condition")),
            **dict.fromkeys(visitors[2:], ("done", None)),
        }
        assert treated(db, campaign_id) == sorted(visitors[2:])
        assert set(groups(db, campaign_id)) == set(visitors[2:])  # assigned when they qualified

    def test_a_member_enters_once_unless_the_trigger_repeats(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: two campaigns on the same event, one repeating after 5 days
        tenant = make_tenant()
        once = start(client, tenant, {"event": "checkin"}, holdout_bp=0)
        repeating = start(client, tenant, {"event": "checkin", "repeat_after_days": 5}, holdout_bp=0)
        first = utcnow()
        # when: check-ins on day 0 (twice), then rounds each ingesting one more check-in later
        send(client, tenant, [event("c0", "n", "checkin", at=first), event("c1", "n", "checkin", at=first)])
        tasks.run_merchant(db, tenant.merchant_id)
        send(client, tenant, [event("c2", "n", "checkin", at=first + timedelta(hours=1))])
        tasks.run_merchant(db, tenant.merchant_id)
        # then: the entries were made at ingestion time (now), so the second ingestion is within 5 days
        assert len(entries(db, once)) == 1
        assert len(entries(db, repeating)) == 1
        assert len(treated(db, once)) == 1

    def test_the_holdout_is_assigned_but_never_treated(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: half held out, 60 members who visit
        tenant = make_tenant()
        campaign_id = start(client, tenant, {"event": "visit"}, holdout_bp=5000)
        visitors = send(client, tenant, [event(f"v{i}", f"n{i}", at=utcnow()) for i in range(60)])
        # when
        tasks.run_merchant(db, tenant.merchant_id)
        # then
        assigned = groups(db, campaign_id)
        held = {m for m, g in assigned.items() if g == "holdout"}
        assert set(assigned) == set(visitors)
        assert 10 < len(held) < 50
        assert held.isdisjoint(treated(db, campaign_id))
        assert set(treated(db, campaign_id)) == set(visitors) - held
        statuses = {e.member_id: e.status for e in entries(db, campaign_id)}
        assert {statuses[m] for m in held} == {"holdout"}

    def test_paused_entries_wait_and_cancelled_ones_are_skipped(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: an entry made, then the campaign paused
        tenant = make_tenant()
        campaign_id = start(client, tenant, {"event": "visit"}, holdout_bp=0)
        send(client, tenant, [event("v", "n", at=utcnow())])
        client.post(f"{API}/campaigns/{campaign_id}/pause", headers=tenant.headers)
        # when
        paused = tasks.run_merchant(db, tenant.merchant_id)
        client.post(f"{API}/campaigns/{campaign_id}/cancel", headers=tenant.headers)
        cancelled = tasks.run_merchant(db, tenant.merchant_id)
        # then
        assert (paused.entries_fired, cancelled.entries_fired) == (0, 0)
        assert [(e.status, e.reason) for e in entries(db, campaign_id)] == [("skipped", "campaign_cancelled")]
        assert treated(db, campaign_id) == []

    def test_events_that_happened_before_the_start_do_not_trigger(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: a running order_paid campaign; an import of last month's orders arrives
        tenant = make_tenant()
        campaign_id = start(client, tenant, {"event": "order_paid"}, holdout_bp=0)
        old = utcnow() - timedelta(days=30)
        order = {"order_id": "o1", "amount_fen": 100}
        # when
        send(client, tenant, [event("o1", "n", "order_paid", at=old, properties=order)])
        # then
        assert entries(db, campaign_id) == []

    def test_events_of_a_campaign_not_running_make_no_entries(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: a draft trigger campaign
        tenant = make_tenant()
        body = campaign_body(kind="trigger", trigger={"event": "visit"}, variants=POINTS)
        draft = client.post(f"{API}/campaigns", json=body, headers=tenant.headers).json()
        # when
        send(client, tenant, [event("v", "n", at=utcnow())])
        # then
        assert entries(db, draft["id"]) == []


class TestStageEntered:
    def test_members_who_became_dormant_after_the_start_are_triggered_once(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: three members; ledger entries into dormant before the start, after it, and into another stage
        tenant = make_tenant()
        ids = send(
            client, tenant, [event(f"v{i}", f"n{i}", at=utcnow() - timedelta(days=90)) for i in range(3)]
        )
        before = utcnow()
        campaign_id = start(client, tenant, {"event": "stage_entered", "stage": "dormant"}, holdout_bp=0)

        def ledger(member_id: str, to_stage: str, at: datetime) -> None:
            with db.unit_of_work() as session:
                seq = len(
                    session.execute(
                        select(StageTransition).where(StageTransition.member_id == member_id)
                    ).all()
                )
                session.add(
                    StageTransition(
                        merchant_id=tenant.merchant_id, member_id=member_id, seq=seq + 1, from_stage="repeat",
                        to_stage=to_stage, effective_on=at.date(), recorded_at=at, cause="daily",
                    )
                )  # fmt: skip

        ledger(ids[0], "dormant", before - timedelta(hours=1))
        ledger(ids[1], "dormant", utcnow() + timedelta(seconds=1))
        ledger(ids[2], "lost", utcnow() + timedelta(seconds=1))
        # when: two rounds
        later = utcnow() + timedelta(minutes=1)
        tasks.run_merchant(db, tenant.merchant_id, now=later)
        again = tasks.run_merchant(db, tenant.merchant_id, now=later + timedelta(minutes=1))
        # then
        assert [e.member_id for e in entries(db, campaign_id)] == [ids[1]]
        assert treated(db, campaign_id) == [ids[1]]
        assert again.entries_created == 0


class TestBirthday:
    def test_members_born_today_are_treated_once_this_year(
        self, db: Database, client: TestClient, make_tenant: Any
    ) -> None:
        # given: 10:00 on 1 December in Shanghai; two members born on 1 December, one on the 2nd
        tenant = make_tenant()
        ids = send(client, tenant, [event(f"v{i}", f"n{i}", at=utcnow()) for i in range(3)])
        with db.unit_of_work() as session:
            for member_id, day in zip(ids, ["12-01", "12-01", "12-02"], strict=True):
                members.set_birthday(session, tenant.merchant_id, member_id, day, now=utcnow())
        campaign_id = start(client, tenant, {"event": "birthday"}, holdout_bp=0)
        morning = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
        # when
        tasks.run_merchant(db, tenant.merchant_id, now=morning)
        tasks.run_merchant(db, tenant.merchant_id, now=morning + timedelta(hours=6))
        # then
        assert treated(db, campaign_id) == sorted(ids[:2])
        assert {e.occurrence for e in entries(db, campaign_id)} == {"birthday:2026"}

    def test_29_february_is_celebrated_on_the_28th_in_a_common_year(self) -> None:
        from siyu.campaigns.triggers import birthdays_of

        assert birthdays_of(date(2027, 2, 28)) == ["02-28", "02-29"]
        assert birthdays_of(date(2028, 2, 28)) == ["02-28"]


class TestStageWatermark:
    def test_entries_recorded_at_the_same_instant_are_all_read_across_pages(
        self, db: Database, client: TestClient, make_tenant: Any, monkeypatch: Any
    ) -> None:
        # given: 5 members who became dormant in one sweep (one recorded_at), pages of 2
        from siyu.campaigns import triggers

        monkeypatch.setattr(triggers, "STAGE_PAGE", 2)
        tenant = make_tenant()
        ids = send(
            client, tenant, [event(f"v{i}", f"n{i}", at=utcnow() - timedelta(days=90)) for i in range(5)]
        )
        campaign_id = start(client, tenant, {"event": "stage_entered", "stage": "dormant"}, holdout_bp=0)
        swept = utcnow() + timedelta(seconds=1)
        with db.unit_of_work() as session:
            for member_id in ids:
                session.add(
                    StageTransition(
                        merchant_id=tenant.merchant_id, member_id=member_id, seq=100, from_stage="repeat",
                        to_stage="dormant", effective_on=swept.date(), recorded_at=swept, cause="daily",
                    )
                )  # fmt: skip
        # when
        report = tasks.run_merchant(db, tenant.merchant_id, now=swept + timedelta(minutes=1))
        # then
        assert report.entries_created == 5
        assert sorted(treated(db, campaign_id)) == sorted(ids)
