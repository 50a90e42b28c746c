"""Lifecycle through its API and its listeners: rules, stage counts, flows, the member's stage,
time zones, late events, merges, the upkeep round, tenant isolation."""

from __future__ import annotations

import json
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu import housekeeping
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.lifecycle import repository as repo
from siyu.lifecycle import service
from siyu.lifecycle.models import MemberStage
from siyu.lifecycle.rules import StageRules
from siyu.tenancy import facade as tenancy
from tests.conftest import Tenant
from tests.lifecycle.helpers import at, event, ledger, make_merchant, send, stage_by_ledger


def post(client: TestClient, tenant: Tenant, *events: dict[str, object]) -> list[str]:
    response = client.post("/api/v1/events/batch", json={"events": list(events)}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [r["member_id"] for r in response.json()["results"]]


class TestApi:
    def test_rules_default_then_replaced_and_every_member_reclassified(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: one member with two orders (repeat under the defaults)
        now = utcnow()
        (member,) = post(
            client,
            tenant,
            event("a1", "m1", "order_paid", now - timedelta(hours=2), 100),
            event("a2", "m1", "order_paid", now - timedelta(hours=1), 100),
        )[:1]
        got = client.get("/api/v1/lifecycle/rules", headers=tenant.headers).json()
        assert got["customised"] is False
        assert got["rules"]["repeat_orders"] == 2
        assert (
            client.get(f"/api/v1/members/{member}/stage", headers=tenant.headers).json()["stage"] == "repeat"
        )
        # when: a repeat customer needs three orders
        rules = {**got["rules"], "repeat_orders": 3}
        put = client.put("/api/v1/lifecycle/rules", json=rules, headers=tenant.headers)
        # then
        assert put.status_code == 200, put.text
        assert put.json()["customised"] is True
        assert put.json()["rules"]["repeat_orders"] == 3
        assert put.json()["pending_members"] == 0
        view = client.get(f"/api/v1/members/{member}/stage", headers=tenant.headers).json()
        assert view["stage"] == "first_order"
        assert [(h["from_stage"], h["to_stage"], h["cause"]) for h in view["history"]] == [
            ("repeat", "first_order", "rules"),
            (None, "repeat", "event"),
        ]

    def test_inconsistent_or_unknown_rules_are_refused_with_a_pointer(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        bad = client.put(
            "/api/v1/lifecycle/rules",
            json={"dormant_after_days": 90, "lost_after_days": 30},
            headers=tenant.headers,
        )
        unknown = client.put("/api/v1/lifecycle/rules", json={"dormant_days": 9}, headers=tenant.headers)
        wrong = client.put("/api/v1/lifecycle/rules", json={"repeat_orders": "two"}, headers=tenant.headers)
        assert bad.status_code == 422
        assert "lost_after_days" in bad.text
        assert unknown.status_code == 422
        assert wrong.status_code == 422
        assert "/repeat_orders" in wrong.text
        assert client.get("/api/v1/lifecycle/rules", headers=tenant.headers).json()["customised"] is False

    def test_changing_rules_needs_merchant_write(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        reader = make_tenant("只读", scopes=["members:read"])
        assert client.get("/api/v1/lifecycle/rules", headers=reader.headers).status_code == 200
        assert client.put("/api/v1/lifecycle/rules", json={}, headers=reader.headers).status_code == 403

    def test_stage_counts_flows_member_view_and_list_filter(self, client: TestClient, tenant: Tenant) -> None:
        # given
        now = utcnow()
        buyer, visitor = (
            post(client, tenant, event("b1", "buyer", "order_paid", now, 500))[0],
            post(client, tenant, event("v1", "visitor", "visit", now))[0],
        )
        today = client.get("/api/v1/lifecycle/stages", headers=tenant.headers).json()["date"]
        # when
        stages = client.get(f"/api/v1/lifecycle/stages?date={today}", headers=tenant.headers).json()
        yesterday = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
        flows = client.get(f"/api/v1/lifecycle/flows?from={yesterday}&to={today}", headers=tenant.headers)
        member = client.get(f"/api/v1/members/{buyer}", headers=tenant.headers).json()
        listed = client.get("/api/v1/members?stage=first_order", headers=tenant.headers).json()
        # then
        assert stages["total"] == 2
        assert {s["stage"]: s["members"] for s in stages["stages"]} == {
            "stranger": 1,
            "high_potential": 0,
            "first_order": 1,
            "repeat": 0,
            "super": 0,
            "dormant": 0,
            "lost": 0,
        }
        assert flows.status_code == 200
        assert sorted((f["from_stage"], f["to_stage"], f["members"]) for f in flows.json()["flows"]) == [
            (None, "first_order", 1),
            (None, "stranger", 1),
        ]
        assert member["lifecycle"]["stage"] == "first_order"
        assert member["lifecycle"]["history"][0]["to_stage"] == "first_order"
        assert [m["id"] for m in listed["items"]] == [buyer]
        assert visitor != buyer
        assert client.get("/api/v1/members?stage=vip", headers=tenant.headers).status_code == 422

    def test_a_batch_sent_twice_writes_the_ledger_once(self, client: TestClient, tenant: Tenant) -> None:
        # given
        now = utcnow()
        batch = [event("d1", "m1", "order_paid", now, 100), event("d2", "m1", "order_paid", now, 100)]
        (member, _) = post(client, tenant, *batch)
        first = client.get(f"/api/v1/members/{member}/stage", headers=tenant.headers).json()
        # when
        post(client, tenant, *batch)
        # then
        assert client.get(f"/api/v1/members/{member}/stage", headers=tenant.headers).json() == first
        assert [h["to_stage"] for h in first["history"]] == ["repeat"]

    def test_flows_refuse_an_end_before_the_start(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get("/api/v1/lifecycle/flows?from=2026-05-02&to=2026-05-01", headers=tenant.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/to"

    def test_another_merchants_members_and_ledger_stay_apart(
        self, client: TestClient, tenant: Tenant, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        # given
        (member,) = post(client, tenant, event("i1", "m1", "order_paid", utcnow(), 100))
        other = make_tenant("乙商户")
        # then
        assert client.get(f"/api/v1/members/{member}/stage", headers=other.headers).status_code == 404
        assert client.get("/api/v1/lifecycle/stages", headers=other.headers).json()["total"] == 0
        assert client.get("/api/v1/members?stage=first_order", headers=other.headers).json()["items"] == []
        assert client.get("/api/v1/lifecycle/stages", headers=tenant.headers).json()["total"] == 1


class TestTimeZones:
    def test_dormancy_starts_on_the_merchants_local_day(self, db: Database, client: TestClient) -> None:
        # given: the same instant, 00:30 on 2 March in Shanghai, is 1 March in UTC
        vault = client.app.state.vault  # type: ignore[attr-defined]
        moment = at(date(2026, 3, 2), 0, "Asia/Shanghai", 30)
        shanghai, utc = make_merchant(db, "Asia/Shanghai"), make_merchant(db, "UTC")
        for merchant_id in (shanghai, utc):
            send(db, vault, merchant_id, [event("o1", "m1", "order_paid", moment, 100)], now=moment)
        # when: the daily sweep runs on each merchant's 30 April, then 1 May (60 days after 1/2 March)
        for local in (date(2026, 4, 30), date(2026, 5, 1)):
            for merchant_id, zone in ((shanghai, "Asia/Shanghai"), (utc, "UTC")):
                with db.unit_of_work() as session:
                    service.sweep(session, merchant_id, now=at(local, 0, zone, 5))
        # then: first order on the local day of the order, dormant 60 local days later
        for merchant_id, ordered_on, dormant_on in (
            (shanghai, date(2026, 3, 2), date(2026, 5, 1)),
            (utc, date(2026, 3, 1), date(2026, 4, 30)),
        ):
            (entries,) = ledger(db, merchant_id).values()
            assert [(e.to_stage, e.effective_on, e.cause) for e in entries] == [
                ("first_order", ordered_on, "event"),
                ("dormant", dormant_on, "daily"),
            ]


class TestTimeAndLateEvents:
    def test_a_sweep_run_late_dates_each_change_when_it_was_due(
        self, db: Database, client: TestClient
    ) -> None:
        # given: an order on 1 March; no sweep for months
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        first = at(date(2026, 3, 1), 12, "Asia/Shanghai")
        send(db, vault, merchant_id, [event("o1", "m1", "order_paid", first, 100)], now=first)
        # when: the first sweep runs on 1 October
        with db.unit_of_work() as session:
            result = service.sweep(session, merchant_id, now=at(date(2026, 10, 1), 1, "Asia/Shanghai"))
            again = service.sweep(session, merchant_id, now=at(date(2026, 10, 1), 2, "Asia/Shanghai"))
        # then: dormant from 30 April, lost from 28 August, and a second run finds nothing due
        (entries,) = ledger(db, merchant_id).values()
        assert [(e.to_stage, e.effective_on) for e in entries] == [
            ("first_order", date(2026, 3, 1)),
            ("dormant", date(2026, 4, 30)),
            ("lost", date(2026, 8, 28)),
        ]
        assert (result.members, result.transitions) == (1, 2)
        assert (again.members, again.transitions) == (0, 0)

    def test_a_late_event_moves_the_stage_on_the_day_it_arrives(
        self, db: Database, client: TestClient
    ) -> None:
        # given: a first order on 1 March
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        send(
            db,
            vault,
            merchant_id,
            [event("o1", "m1", "order_paid", at(date(2026, 3, 1), 9, "Asia/Shanghai"), 1)],
            now=at(date(2026, 3, 1), 10, "Asia/Shanghai"),
        )
        # when: a second order of 2 March arrives on 5 March
        send(
            db,
            vault,
            merchant_id,
            [event("o2", "m1", "order_paid", at(date(2026, 3, 2), 9, "Asia/Shanghai"), 1)],
            now=at(date(2026, 3, 5), 10, "Asia/Shanghai"),
        )
        # then: the past is not rewritten
        (entries,) = ledger(db, merchant_id).values()
        assert stage_by_ledger(entries, date(2026, 3, 4)) == "first_order"
        assert stage_by_ledger(entries, date(2026, 3, 5)) == "repeat"

    def test_a_sweep_in_slices_reaches_every_due_member_once(self, db: Database, client: TestClient) -> None:
        # given: three members due to turn dormant
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        first = at(date(2026, 3, 1), 12, "Asia/Shanghai")
        orders = [event(f"o{n}", f"m{n}", "order_paid", first, 100) for n in range(3)]
        send(db, vault, merchant_id, orders, now=first)
        later = at(date(2026, 5, 1), 1, "Asia/Shanghai")
        # when: slices of two members, each in its own transaction
        slices = []
        for _ in range(3):
            with db.unit_of_work() as session:
                slices.append(service.sweep(session, merchant_id, now=later, max_members=2).members)
        # then
        assert slices == [2, 1, 0]
        assert all(chain[-1].to_stage == "dormant" for chain in ledger(db, merchant_id).values())

    def test_a_rules_change_on_a_large_base_leaves_the_rest_to_the_sweep(
        self, db: Database, client: TestClient
    ) -> None:
        # given: three repeat customers
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        day = at(date(2026, 3, 1), 12, "Asia/Shanghai")
        orders = [event(f"o{n}{k}", f"m{n}", "order_paid", day, 100) for n in range(3) for k in range(2)]
        send(db, vault, merchant_id, orders, now=day)
        # when: repeat needs three orders; the request re-classifies one member itself
        with db.unit_of_work() as session:
            done = service.set_rules(
                session, merchant_id, StageRules(repeat_orders=3), actor="test", now=day, inline=1
            )
            waiting = service.pending(session, merchant_id, day)
        with db.unit_of_work() as session:
            rest = service.sweep(session, merchant_id, now=day)
        # then
        assert (done.members, waiting, rest.members) == (1, 2, 2)
        causes = sorted(chain[-1].cause for chain in ledger(db, merchant_id).values())
        assert causes == ["daily", "daily", "rules"]
        assert all(chain[-1].to_stage == "first_order" for chain in ledger(db, merchant_id).values())

    def test_the_upkeep_round_runs_every_merchants_sweep(self, db: Database, client: TestClient) -> None:
        # given: a member whose only order is 200 days old
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        long_ago = utcnow() - timedelta(days=200)
        send(db, vault, merchant_id, [event("o1", "m1", "order_paid", long_ago, 100)], now=long_ago)
        # when
        done = housekeeping.run_once(db)
        # then
        assert done["stage_transitions"] == 2
        (entries,) = ledger(db, merchant_id).values()
        assert [e.to_stage for e in entries] == ["first_order", "dormant", "lost"]


class TestMerges:
    def test_a_merged_member_leaves_the_base_and_the_survivor_holds_both_histories(
        self, db: Database, client: TestClient
    ) -> None:
        # given: two members with one order each
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        day1 = at(date(2026, 3, 1), 12, "Asia/Shanghai")
        ids = send(
            db,
            vault,
            merchant_id,
            [event("o1", "a", "order_paid", day1, 100), event("o2", "b", "order_paid", day1, 100)],
            now=day1,
        )
        # when: a visit on 3 March links the two
        day3 = at(date(2026, 3, 3), 12, "Asia/Shanghai")
        linking = event("v1", "a", "visit", day3)
        linking["identities"] = {"member_no": "a", "phone": "13800138000"}
        other = event("v2", "b", "visit", day3)
        other["identities"] = {"member_no": "b", "phone": "13800138000"}
        send(db, vault, merchant_id, [linking, other], now=day3)
        # then: one member left, repeat (two orders); the other's ledger closes on 3 March
        entries = ledger(db, merchant_id)
        stages = {m: stage_by_ledger(e, date(2026, 3, 3)) for m, e in entries.items()}
        assert sorted(stages.values(), key=str) == [None, "repeat"]
        assert {m: stage_by_ledger(e, date(2026, 3, 2)) for m, e in entries.items()} == {
            ids["a"]: "first_order",
            ids["b"]: "first_order",
        }
        with db.reading() as session:
            assert repo.stage_counts(session, merchant_id, date(2026, 3, 3)) == {"repeat": 1}
            assert session.execute(
                select(MemberStage.member_id).where(MemberStage.merchant_id == merchant_id)
            ).scalars().all() == [m for m, s in stages.items() if s == "repeat"]

    def test_a_merge_brings_the_merged_members_recent_orders_into_the_survivors_stage(
        self, db: Database, client: TestClient
    ) -> None:
        """The survivor's recent-events brief lacks the merged member's events: after a merge
        its events are read again (six orders and ¥600 in 180 days make a super customer)."""
        # given: two members with three ¥100 orders each, classified from their briefs
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        day1 = at(date(2026, 3, 1), 12, "Asia/Shanghai")
        orders = [event(f"{m}{k}", m, "order_paid", day1, 10_000) for m in "ab" for k in range(3)]
        send(db, vault, merchant_id, orders, now=day1)
        day2 = at(date(2026, 3, 2), 12, "Asia/Shanghai")
        visits = [event("va", "a", "visit", day2), event("vb", "b", "visit", day2)]
        send(db, vault, merchant_id, visits, now=day2)
        # when: a visit on 3 March links them
        day3 = at(date(2026, 3, 3), 12, "Asia/Shanghai")
        linking = event("v1", "b", "visit", day3)
        linking["identities"] = {"member_no": "b", "phone": "13800138000"}
        send(db, vault, merchant_id, [linking], now=day3)
        other = event("v2", "a", "visit", day3)
        other["identities"] = {"member_no": "a", "phone": "13800138000"}
        send(db, vault, merchant_id, [other], now=day3)
        # then
        with db.reading() as session:
            assert repo.stage_counts(session, merchant_id, date(2026, 3, 3)) == {"super": 1}


class TestRecentEvents:
    def test_rules_that_look_further_back_read_the_events_the_brief_let_go(
        self, db: Database, client: TestClient
    ) -> None:
        """With a 15-day look-back, the brief keeps ~17 days of events; rules that look 60 days
        back must still see the orders of 30 days ago."""
        # given: short rules; two orders on 1 and 2 March, then visits to 31 March
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        short = StageRules(
            high_potential_window_days=5,
            super_orders=2,
            super_net_spend_fen=100,
            super_window_days=10,
            dormant_after_days=7,
            lost_after_days=15,
        )
        start = at(date(2026, 3, 1), 12, "Asia/Shanghai")
        with db.unit_of_work() as session:
            service.set_rules(session, merchant_id, short, actor="test", now=start)
        for n in range(2):
            when = start + timedelta(days=n)
            send(db, vault, merchant_id, [event(f"o{n}", "m1", "order_paid", when, 100)], now=when)
        for n in range(2, 31):
            when = start + timedelta(days=n)
            send(db, vault, merchant_id, [event(f"v{n}", "m1", "visit", when)], now=when)
        end = start + timedelta(days=30)
        with db.reading() as session:
            assert repo.stage_counts(session, merchant_id, date(2026, 3, 31)) == {"repeat": 1}
        # when: the super window becomes 60 days
        with db.unit_of_work() as session:
            longer = short.model_copy(update={"super_window_days": 60})
            service.set_rules(session, merchant_id, longer, actor="test", now=end)
        # then: both orders count again
        with db.reading() as session:
            assert repo.stage_counts(session, merchant_id, date(2026, 3, 31)) == {"super": 1}
            (brief,) = session.execute(
                select(MemberStage.recent).where(MemberStage.merchant_id == merchant_id)
            ).scalars()
        assert brief is not None
        assert any(entry[0] == "order_paid" for entry in json.loads(brief))

    def test_the_brief_forgets_what_is_older_than_the_look_back(
        self, db: Database, client: TestClient
    ) -> None:
        # given: the default rules (180-day look-back); an order, then a visit 200 days later
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db)
        first = at(date(2026, 1, 1), 12, "Asia/Shanghai")
        send(db, vault, merchant_id, [event("o1", "m1", "order_paid", first, 100)], now=first)
        later = first + timedelta(days=200)
        # when
        send(db, vault, merchant_id, [event("v1", "m1", "visit", later)], now=later)
        # then: only the visit is in the brief, which is complete from 182 days before
        with db.reading() as session:
            brief, since = session.execute(
                select(MemberStage.recent, MemberStage.recent_since).where(
                    MemberStage.merchant_id == merchant_id
                )
            ).one()
        assert [entry[0] for entry in json.loads(brief)] == ["visit"]
        assert since == at(date(2026, 7, 20) - timedelta(days=181), 0, "Asia/Shanghai")


def test_merchant_ids_lists_every_merchant(db: Database) -> None:
    first, second = make_merchant(db, name="一"), make_merchant(db, name="二")
    with db.reading() as session:
        assert {first, second} <= set(tenancy.merchant_ids(session))
