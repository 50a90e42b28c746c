"""Concurrent orders, purchases and links of one member (real threads, each its own
transaction, on PostgreSQL): the tier ends where the sums say, and the history is one unbroken
chain — no change recorded twice, none lost."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from siyu.db import Database
from siyu.tiers import membership
from tests.threads import run_threads
from tests.tiers.helpers import make_ladder, make_member, make_merchant, paid, record, tier_at

pytestmark = pytest.mark.postgres_only
NOW = datetime(2026, 6, 15, 2, 0, tzinfo=UTC)


def chain(db: Database, merchant: str, member: str) -> list[tuple[str | None, str | None]]:
    from siyu.tiers import facade

    with db.reading() as session:
        changes = facade.history_of(session, merchant, member, limit=1000)
    return [(c.from_tier_id, c.to_tier_id) for c in reversed(changes)]


class TestConcurrentProgress:
    def test_twelve_concurrent_orders_of_one_member_count_once_each(self, db: Database) -> None:
        # given: 普卡 0, 银卡 1 000, 金卡 5 000 growth
        merchant = make_merchant(db)
        tiers = make_ladder(db, merchant)
        member = make_member(db, merchant)

        # when: 12 orders of ¥500 arrive at once, each order sent twice
        def order(index: int) -> None:
            record(db, merchant, paid(member, f"o-{index % 12}", 50_000, NOW), now=NOW)

        run_threads(24, order)
        # then: 6 000 growth → 金卡, and the history is one chain from 普卡 up
        view = tier_at(db, merchant, member, NOW)
        assert view.value == 6_000
        assert view.tier is not None
        assert view.tier.name == "金卡"
        links = chain(db, merchant, member)
        assert links[0][0] == tiers["普卡"]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(links))
        assert links[-1][1] == tiers["金卡"]

    def test_a_link_and_orders_racing_end_at_the_best_of_both(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = make_ladder(db, merchant)
        with db.unit_of_work() as session:
            membership.put_mapping(session, merchant, "app", {"silver": tiers["银卡"]}, now=NOW)
        member = make_member(db, merchant)

        def work(index: int) -> None:
            if index == 0:
                with db.unit_of_work() as session:
                    membership.link(session, merchant, member, "app", "silver", valid_until=None, now=NOW)
            else:
                record(db, merchant, paid(member, f"o-{index}", 100_000, NOW), now=NOW)

        run_threads(6, work)
        view = tier_at(db, merchant, member, NOW)
        assert view.value == 5_000
        assert view.tier is not None
        assert view.tier.name == "金卡"
        links = chain(db, merchant, member)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(links))
