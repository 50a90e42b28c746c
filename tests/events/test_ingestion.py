"""Event ingestion: idempotent, validated per event with pointers, rollups order-independent."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.db import Database
from siyu.events.models import Event, MemberRollup
from siyu.events.schemas import BatchOut
from siyu.events.service import _ingest_listeners, on_ingest
from tests.conftest import Tenant

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def event(event_id: str, type_: str = "visit", *, minutes: int = 0, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "event_id": event_id,
        "type": type_,
        "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "identities": extra.pop("identities", {"phone": "13800138000"}),
    }
    body.update(extra)
    return body


def order(event_id: str, amount: int, *, minutes: int = 0, **extra: object) -> dict[str, object]:
    return event(
        event_id,
        "order_paid",
        minutes=minutes,
        properties={"order_id": f"o-{event_id}", "amount_fen": amount},
        **extra,
    )


def batch(client: TestClient, tenant: Tenant, events: list[dict[str, object]]) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/v1/events/batch", json={"events": events}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def rollup_of(db: Database, merchant_id: str) -> list[tuple[object, ...]]:
    with db.reading() as session:
        rows = session.query(MemberRollup).filter_by(merchant_id=merchant_id).all()
        return sorted(
            (
                r.first_seen_at,
                r.last_seen_at,
                r.first_order_at,
                r.last_order_at,
                r.order_count,
                r.total_spend_fen,
                r.refund_count,
                r.refund_fen,
                r.visit_count,
                r.last_channel,
                r.last_store_id,
                r.acquisition_channel,
            )
            for r in rows
        )


class TestIdempotency:
    def test_the_same_batch_twice_changes_nothing(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        events = [event("e1"), order("e2", 3000, minutes=5), event("e3", minutes=9)]
        first = batch(client, tenant, events)
        before = rollup_of(db, tenant.merchant_id)
        # when
        second = batch(client, tenant, events)
        # then
        assert (first["accepted"], first["duplicates"]) == (3, 0)
        assert (second["accepted"], second["duplicates"]) == (0, 3)
        assert rollup_of(db, tenant.merchant_id) == before
        with db.reading() as session:
            assert session.query(Event).filter_by(merchant_id=tenant.merchant_id).count() == 3

    def test_duplicates_inside_one_batch_count_once(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        result = batch(client, tenant, [order("e1", 100), order("e1", 100), event("e2"), order("e1", 100)])
        assert [r["status"] for r in result["results"]] == ["accepted", "duplicate", "accepted", "duplicate"]
        (row,) = rollup_of(db, tenant.merchant_id)
        assert row[4:6] == (1, 100)

    def test_single_event_endpoint(self, client: TestClient, tenant: Tenant) -> None:
        first = client.post("/api/v1/events", json=event("solo"), headers=tenant.headers)
        again = client.post("/api/v1/events", json=event("solo"), headers=tenant.headers)
        assert first.json()["status"] == "accepted"
        assert again.json()["status"] == "duplicate"
        assert first.json()["member_id"].startswith("mbr_")


class TestValidation:
    def test_a_batch_accepts_the_valid_and_rejects_each_invalid_with_its_pointer(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        events = [
            event("ok-1"),
            {**event("bad-type"), "type": "teleport"},
            {**order("bad-amount", 0), "properties": {"order_id": "o", "amount_fen": "lots"}},
            {**event("bad-time"), "occurred_at": future},
            {**event("bad-phone"), "identities": {"phone": "12"}},
            {**event("naive"), "occurred_at": "2026-11-01T10:00:00"},
            {**event("extra"), "colour": "red"},
            event("ok-2", "custom.tasting_booked"),
        ]
        # when
        result = batch(client, tenant, events)
        # then
        verdicts = [(r["status"], r["pointer"]) for r in result["results"]]
        assert verdicts == [
            ("accepted", None),
            ("rejected", "/events/1/type"),
            ("rejected", "/events/2/properties/amount_fen"),
            ("rejected", "/events/3/occurred_at"),
            ("rejected", "/events/4/identities/phone"),
            ("rejected", "/events/5/occurred_at"),
            ("rejected", "/events/6/colour"),
            ("accepted", None),
        ]
        assert "custom." in result["results"][1]["reason"]

    def test_single_invalid_event_is_422_with_pointer(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/api/v1/events", json={**event("x"), "type": "teleport"}, headers=tenant.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/type"

    def test_oversized_batch_is_refused(self, client: TestClient, tenant: Tenant) -> None:
        events = [{"event_id": str(i)} for i in range(5001)]
        response = client.post("/api/v1/events/batch", json={"events": events}, headers=tenant.headers)
        assert response.status_code in (413, 422)

    def test_needs_the_events_scope(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        reader = make_tenant("只读", scopes=["stores:read"])
        assert client.post("/api/v1/events", json=event("x"), headers=reader.headers).status_code == 403


class TestMembersAndRollups:
    def test_rollups(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        batch(
            client,
            tenant,
            [
                event("v1", minutes=0, channel="search_direct"),
                order("o1", 2500, minutes=10, store_id="str_a", channel="mini_program"),
                order("o2", 1500, minutes=20),
                event(
                    "r1", "order_refunded", minutes=30, properties={"order_id": "o-o2", "amount_fen": 1500}
                ),
                event("v2", minutes=40),
            ],
        )
        (
            (
                first,
                last,
                first_order,
                last_order,
                orders,
                spend,
                refunds,
                refund_fen,
                visits,
                ch,
                store,
                acq,
            ),
        ) = rollup_of(db, tenant.merchant_id)
        assert (first, last) == (T0, T0 + timedelta(minutes=40))
        assert (first_order, last_order, orders, spend) == (
            T0 + timedelta(minutes=10),
            T0 + timedelta(minutes=20),
            2,
            4000,
        )
        assert (refunds, refund_fen, visits) == (1, 1500, 2)
        assert (ch, store, acq) == ("mini_program", "str_a", "search_direct")

    def test_a_linking_event_merges_members_and_their_rollups(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        batch(client, tenant, [order("a", 1000, identities={"phone": "13800138000"})])
        batch(
            client, tenant, [order("b", 2000, minutes=5, identities={"alipay_user_id": "2088000000000001"})]
        )
        assert len(rollup_of(db, tenant.merchant_id)) == 2
        batch(
            client,
            tenant,
            [
                event(
                    "link",
                    minutes=9,
                    identities={"phone": "13800138000", "alipay_user_id": "2088000000000001"},
                )
            ],
        )
        ((*_, orders, spend, _r, _rf, _v, _c, _s, _a),) = [
            row[:12] for row in rollup_of(db, tenant.merchant_id)
        ]
        assert (orders, spend) == (2, 3000)

    def test_one_event_linking_three_members_folds_all_their_rollups(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: three members (PostgreSQL once refused this: two merged rollups in one upsert)
        ids = [{"phone": "13800138000"}, {"alipay_user_id": "2088000000000001"}, {"member_no": "M-3"}]
        for n, identities in enumerate(ids):
            batch(client, tenant, [order(f"o{n}", 100 * (n + 1), minutes=n, identities=identities)])
        # when
        linked = batch(
            client, tenant, [event("link", minutes=9, identities={k: v for i in ids for k, v in i.items()})]
        )
        # then
        assert linked["accepted"] == 1
        ((*_, orders, spend, _r, _rf, _v, _c, _s, _a),) = [
            row[:12] for row in rollup_of(db, tenant.merchant_id)
        ]
        assert (orders, spend) == (3, 600)


events_pool = st.lists(
    st.tuples(
        st.sampled_from(["visit", "order_paid", "order_refunded"]),
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=50_000),
        st.sampled_from([None, "search_direct", "scan", "guide"]),
    ),
    min_size=1,
    max_size=12,
)


class TestOrderIndependence:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(pool=events_pool, seed=st.integers(min_value=0, max_value=10**6), split=st.integers(1, 5))
    def test_late_and_out_of_order_events_give_the_same_rollups(
        self,
        client: TestClient,
        make_tenant,
        db: Database,
        pool: list[tuple[str, int, int, str | None]],
        seed: int,
        split: int,
    ) -> None:  # type: ignore[no-untyped-def]
        # given: the same events, once in time order in one batch, once shuffled over several batches
        def build(prefix: str) -> list[dict[str, object]]:
            out = []
            for n, (type_, minute, amount, channel) in enumerate(pool):
                props = {"order_id": f"o{n}", "amount_fen": amount} if type_ != "visit" else {}
                out.append(event(f"{prefix}{n}", type_, minutes=minute, properties=props, channel=channel))
            return out

        in_order, shuffled = make_tenant("有序"), make_tenant("乱序")
        ordered = sorted(build("e"), key=lambda e: (str(e["occurred_at"]), str(e["event_id"])))
        mixed = build("e")
        random.Random(seed).shuffle(mixed)
        # when
        batch(client, in_order, ordered)
        size = max(1, len(mixed) // split)
        for start in range(0, len(mixed), size):
            batch(client, shuffled, mixed[start : start + size])
        # then
        assert rollup_of(db, in_order.merchant_id) == rollup_of(db, shuffled.merchant_id)


@pytest.fixture
def other_tenant(make_tenant):  # type: ignore[no-untyped-def]
    return make_tenant("别家")


class TestIsolation:
    def test_event_ids_and_members_are_per_merchant(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant, db: Database
    ) -> None:
        a = batch(client, tenant, [event("shared-id")])
        b = batch(client, other_tenant, [event("shared-id")])
        assert a["accepted"] == b["accepted"] == 1
        assert a["results"][0]["member_id"] != b["results"][0]["member_id"]


class TestIngestListeners:
    def test_listeners_see_each_new_event_once_with_the_surviving_member(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        seen: list[tuple[str, str, str]] = []

        def listener(session, merchant_id, accepted, now):  # type: ignore[no-untyped-def]
            seen.extend((merchant_id, a.event_id, a.member_id) for a in accepted)

        on_ingest(listener)
        try:
            # when: the second event links the phone to a new member number (no merge needed),
            # the third merges two members; the batch is then sent again
            events = [
                event("l1", identities={"phone": "13800138000"}),
                event("l2", identities={"member_no": "M1"}),
                event("l3", identities={"phone": "13800138000", "member_no": "M1"}),
            ]
            first = batch(client, tenant, events)
            batch(client, tenant, events)
        finally:
            _ingest_listeners.remove(listener)
        # then: three events, once each, all reported under the survivor of the merge
        survivor = first["results"][2]["member_id"]
        assert seen == [(tenant.merchant_id, f"l{n}", survivor) for n in (1, 2, 3)]


class TestBatchResponse:
    def test_the_hand_serialised_answer_is_a_batch_out(self, client: TestClient, tenant: Tenant) -> None:
        # given: one accepted, one duplicate, one rejected
        body = batch(client, tenant, [event("r1"), event("r1"), event("r2", "nope")])
        # then: the documented model parses it unchanged
        assert BatchOut.model_validate(body).model_dump(mode="json") == body
        assert [r["status"] for r in body["results"]] == ["accepted", "duplicate", "rejected"]


class TestUnseenIds:
    """``ingest(unseen_ids=True)`` skips the look-up of known ids (the payment-success decision's
    page view): the insert alone must still tell a duplicate."""

    def test_a_known_id_is_still_a_duplicate_and_stored_once(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        from siyu.events.service import ingest

        vault = client.app.state.vault  # type: ignore[attr-defined]
        first = batch(client, tenant, [order("e1", 500)])
        assert first["accepted"] == 1
        # when
        with db.unit_of_work() as session:
            again = ingest(session, vault, tenant.merchant_id, [order("e1", 500)], now=T0, unseen_ids=True)
            fresh = ingest(session, vault, tenant.merchant_id, [order("e2", 700)], now=T0, unseen_ids=True)
        # then
        assert [v.status for v in again] == ["duplicate"]
        assert [(v.status, v.member_created) for v in fresh] == [("accepted", False)]
        with db.reading() as session:
            ids = session.query(Event.event_id).filter_by(merchant_id=tenant.merchant_id).all()
        assert sorted(i for (i,) in ids) == ["e1", "e2"]
        assert rollup_of(db, tenant.merchant_id)[0][4:6] == (2, 1200)  # e1 folded once
