"""Features against hand-computed values on a small fixed set (Asia/Shanghai, UTC+8)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from siyu.db import Database
from siyu.models.features import engagement, purchase_history
from tests.conftest import Tenant
from tests.models.helpers import event, ingest, paid, refunded

SHANGHAI = ZoneInfo("Asia/Shanghai")
AS_OF = date(2026, 3, 31)
NOW = datetime(2026, 4, 10, tzinfo=UTC)


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def world(db: Database, make_tenant) -> tuple[Tenant, dict[str, str]]:  # type: ignore[no-untyped-def]
    tenant = make_tenant()
    raw = [
        # a: three purchase days; 15:30 UTC on 1 March is 23:30 local (1 March), 16:30 UTC is 2 March local
        paid("a1", "a", utc(3, 1, 15, 30), 1000),
        paid("a2", "a", utc(3, 1, 16, 30), 2000),
        paid("a3", "a", utc(3, 2, 2), 500),
        paid("a4", "a", utc(3, 10, 4), 3000),
        refunded("a4-r1", "a", utc(3, 12, 4), 1000, "a4"),  # partial: a4 nets 2000
        paid("a5", "a", utc(3, 20, 4), 4000),
        refunded("a5-r", "a", utc(3, 21, 4), 4000, "a5"),  # in full: a5 is no purchase
        paid("a6", "a", utc(4, 2, 4), 9999),  # after as_of
        refunded("a4-r2", "a", utc(4, 5, 4), 500, "a4"),  # after as_of: not netted yet
        # b: one order at 23:59 local on the as-of day (included)
        paid("b1", "b", utc(3, 31, 15, 59), 800),
        # c: engaged, first order at 00:00 local on 1 April (after as_of)
        event("c-v", "c", utc(3, 20, 4), "visit"),
        event("c-f", "c", utc(3, 21, 4), "favorite"),
        event("c-s1", "c", utc(3, 25, 4), "search_direct"),
        event("c-s2", "c", utc(3, 25, 5), "search_direct"),
        paid("c1", "c", utc(3, 31, 16), 1200),
        # d: visits only; 16:30 UTC on 30 March is 31 March local; the subscribe is 1 April local
        event("d-v1", "d", utc(3, 29, 4), "visit"),
        event("d-v2", "d", utc(3, 30, 16, 30), "visit"),
        event("d-sub", "d", utc(3, 31, 16, 30), "subscribe", channel="mini_program", template_id="t1"),
        # e: two days, and a refund of an order nobody knows (ignored)
        paid("e1", "e", utc(3, 5, 4), 1500),
        paid("e2", "e", utc(3, 6, 4), 1500),
        refunded("e-r", "e", utc(3, 7, 4), 700, "zzz"),
        # f: first seen after as_of
        event("f-v", "f", utc(4, 2, 4), "visit"),
    ]
    return tenant, ingest(db, tenant.merchant_id, raw, now=NOW)


class TestPurchaseHistory:
    def test_hand_computed_summary(self, db: Database, world: tuple[Tenant, dict[str, str]]) -> None:
        # given
        tenant, ids = world
        # when
        with db.reading() as session:
            history = purchase_history(session, tenant.merchant_id, SHANGHAI, AS_OF)
        # then
        rows = {
            m: (history.frequency[i], history.recency[i], history.T[i], history.monetary[i])
            for i, m in enumerate(history.member_ids)
        }
        assert rows == {
            ids["a"]: (2, 9, 30, (2500 + 2000) / 2),
            ids["b"]: (0, 0, 0, 0),
            ids["e"]: (1, 1, 26, 1500),
        }

    def test_a_later_as_of_counts_the_late_order_and_refund(
        self, db: Database, world: tuple[Tenant, dict[str, str]]
    ) -> None:
        # given
        tenant, ids = world
        # when
        with db.reading() as session:
            history = purchase_history(session, tenant.merchant_id, SHANGHAI, date(2026, 4, 5))
        # then: a has a fourth day (2 April, 9999) and a4 now nets 1500
        i = history.member_ids.index(ids["a"])
        assert (history.frequency[i], history.recency[i], history.T[i]) == (3, 32, 35)
        assert history.monetary[i] == (2500 + 1500 + 9999) / 3
        assert ids["c"] in history.member_ids

    def test_no_orders_no_rows(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        # given
        tenant = make_tenant()
        ingest(db, tenant.merchant_id, [event("v", "x", utc(3, 1, 4))], now=NOW)
        # when
        with db.reading() as session:
            history = purchase_history(session, tenant.merchant_id, SHANGHAI, AS_OF)
        # then
        assert len(history) == 0


class TestEngagement:
    def test_prospects_features_and_labels(self, db: Database, world: tuple[Tenant, dict[str, str]]) -> None:
        # given
        tenant, ids = world
        # when
        with db.reading() as session:
            found = engagement(session, tenant.merchant_id, SHANGHAI, AS_OF, label_days=5)
        # then: only c and d (no order by 31 March, seen by then)
        assert found.member_ids == tuple(sorted([ids["c"], ids["d"]]))
        assert found.converted is not None
        c, d = found.member_ids.index(ids["c"]), found.member_ids.index(ids["d"])
        expected = {
            c: {"visits": 1, "favourites": 1, "search_direct": 2, "subscriptions": 0, "active_days": 3,
                "days_since_first_seen": 11, "days_since_last_seen": 6},
            d: {"visits": 2, "favourites": 0, "search_direct": 0, "subscriptions": 0, "active_days": 2,
                "days_since_first_seen": 2, "days_since_last_seen": 0},
        }  # fmt: skip
        for row, values in expected.items():
            assert {name: found.column(name)[row] for name in values} == values
        assert bool(found.converted[c]) is True
        assert bool(found.converted[d]) is False

    def test_without_labels(self, db: Database, world: tuple[Tenant, dict[str, str]]) -> None:
        # given
        tenant, ids = world
        # when
        with db.reading() as session:
            found = engagement(session, tenant.merchant_id, SHANGHAI, date(2026, 4, 3))
        # then: c ordered on 1 April; f is now seen
        assert found.converted is None
        assert set(found.member_ids) == {ids["d"], ids["f"]}
        d = found.member_ids.index(ids["d"])
        assert found.column("subscriptions")[d] == 1

    def test_other_merchants_events_are_not_read(
        self,
        db: Database,
        world: tuple[Tenant, dict[str, str]],
        make_tenant,  # type: ignore[no-untyped-def]
    ) -> None:
        # given
        other = make_tenant("其他")
        # when
        with db.reading() as session:
            found = engagement(session, other.merchant_id, SHANGHAI, AS_OF)
            history = purchase_history(session, other.merchant_id, SHANGHAI, AS_OF)
        # then
        assert len(found) == 0
        assert len(history) == 0
