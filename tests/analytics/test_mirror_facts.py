"""``member_months`` (siyu.analytics.mirror_facts): the period figures read from the facts and
the events they do not cover equal the same figures read from every event of the mirror, after
any sequence of ingests (late events, same-day repeat orders, message responses), merges,
erasures and syncs, whether the facts are current or lag behind the events; and the facts are
built, kept and rebuilt as documented."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.analytics import mirror, mirror_facts, service
from siyu.analytics import mirror_store as store
from siyu.analytics.metrics import period
from siyu.analytics.scope import Grain, Scope
from siyu.db import Database
from siyu.members.models import Member, MemberStatus
from tests.analytics.mirrorkit import Shop, db_work_settings, make_shop

PEOPLE = [f"p{i}" for i in range(3)]
LINKS = [f"n{i}" for i in range(2)]
TYPES = [
    "visit",
    "order_paid",
    "order_paid",
    "order_paid",
    "order_refunded",
    "message_opened",
    "message_clicked",
    "scan",
]

ingest = st.tuples(
    st.just("ingest"),
    st.sampled_from(PEOPLE),
    st.sampled_from(TYPES),
    # days before now it occurred (late events; last month): a few days often, so that one
    # member's events meet on a day (same-day repeat orders), and any day
    st.one_of(st.sampled_from([-33, -5, 0]), st.integers(min_value=-45, max_value=0)),
    st.one_of(st.none(), st.sampled_from(LINKS)),  # a shared identity: merges members
)
operation = st.one_of(
    ingest,
    ingest,
    ingest,
    # two paid orders of one member on one day (a repeat buyer within a single day)
    st.tuples(st.just("pair"), st.sampled_from(PEOPLE), st.sampled_from([-33, -5, 0])),
    st.tuples(st.just("sync")),
    st.tuples(st.just("erase"), st.integers(min_value=0, max_value=100)),
    st.tuples(st.just("tick"), st.integers(min_value=1, max_value=60 * 30)),
)


@contextmanager
def facts_settings(*, min_events: int, stale_share: float) -> Iterator[None]:
    saved = mirror_facts.MIN_EVENTS, mirror_facts.STALE_SHARE
    mirror_facts.MIN_EVENTS, mirror_facts.STALE_SHARE = min_events, stale_share
    try:
        yield
    finally:
        mirror_facts.MIN_EVENTS, mirror_facts.STALE_SHARE = saved


def later_event(shop: Shop) -> None:
    """Five minutes on, one more event: it moves the events watermark, so the facts cover what
    came before (they stop :data:`~siyu.analytics.mirror_events.OVERLAP` short of the watermark)."""
    shop.tick(5)
    shop.event("late", "scan")
    shop.tick(1)


def local_today(shop: Shop) -> date:
    return shop.now.astimezone(shop.zone()).date()


def _active(shop: Shop, member_id: str) -> bool:
    with shop.db.reading() as session:
        member = session.get(Member, (shop.merchant_id, member_id))
        return member is not None and member.status == MemberStatus.ACTIVE


def figures_both_ways(shop: Shop, scope: Scope, grain: Grain) -> tuple[Any, Any, bool]:
    """The period figures with the facts and from the events alone, on one state of the mirror."""
    with (
        shop.db.reading() as session,
        service.open_context(
            session, shop.root, shop.merchant_id, source=service.Source.MIRROR, now=shop.now
        ) as c,
    ):
        with_facts = period.compute(c.conn, c.rel, scope, grain, c.facts)
        from_events = period.compute(c.conn, c.rel, scope, grain, None)
        return with_facts, from_events, c.facts is not None


def assert_one_repeat_buyer_today(shop: Shop) -> None:
    """Today one member bought twice, read from the facts, and the events alone agree."""
    today = local_today(shop)
    with_facts, from_events, had_facts = figures_both_ways(shop, Scope(today, today), Grain.DAY)
    assert had_facts
    assert with_facts is not None
    assert (with_facts.buyers, with_facts.repeat_buyers) == (1, 1)
    assert with_facts == from_events


def scopes(today: date) -> list[tuple[Scope, Grain]]:
    return [
        (Scope(today - timedelta(days=29), today), Grain.DAY),
        (Scope(today - timedelta(days=40), today - timedelta(days=8)), Grain.WEEK),
        (Scope(today - timedelta(days=3), today), Grain.MONTH),
        (Scope(today - timedelta(days=29), today, tier="gold"), Grain.DAY),
    ]


class TestFactsEqualEvents:
    @db_work_settings(max_examples=15)
    @given(
        operations=st.lists(operation, min_size=1, max_size=20),
        stale_share=st.sampled_from([0.0, 0.5, 1e9]),  # rebuilt each sync, sometimes, once only
        final_sync=st.booleans(),
    )
    def test_after_random_changes(
        self,
        db: Database,
        tmp_path_factory: pytest.TempPathFactory,
        operations: list[tuple[Any, ...]],
        stale_share: float,
        final_sync: bool,
    ) -> None:
        # given a fresh merchant and mirror whose facts are built from the first event on
        shop = make_shop(db, tmp_path_factory.mktemp("facts-prop"))
        events: list[str] = []
        with facts_settings(min_events=1, stale_share=stale_share):
            # when
            for op in operations:
                if op[0] == "ingest":
                    _, person, type_, days, link = op
                    events.append(
                        shop.event(
                            str(person),
                            str(type_),
                            occurred_at=shop.now + timedelta(days=days),
                            amount=1234,
                            extra_identity=link,
                        )
                    )
                    shop.tick()
                elif op[0] == "pair":
                    _, person, days = op
                    for _ in range(2):
                        occurred = shop.now + timedelta(days=days)
                        events.append(shop.event(str(person), "order_paid", occurred_at=occurred, amount=999))
                        shop.tick()
                elif op[0] == "sync":
                    mirror.sync(db, shop.root, now=shop.now)
                elif op[0] == "erase" and events:
                    member = shop.survivor(shop.member_of(events[op[1] % len(events)]))
                    if _active(shop, member):
                        shop.erase(member)
                elif op[0] == "tick":
                    shop.tick(op[1])
            if final_sync or not shop.root.joinpath("_state.json").exists():
                mirror.sync(db, shop.root, now=shop.now)
        # then
        for scope, grain in scopes(local_today(shop)):
            with_facts, from_events, had_facts = figures_both_ways(shop, scope, grain)
            assert with_facts == from_events, (scope, grain)
        if events and final_sync:  # the mirror holds events, so the facts were built
            assert had_facts


class TestBuilding:
    def test_none_below_the_threshold_and_built_once_it_is_reached(self, db: Database, tmp_path: Any) -> None:
        shop = make_shop(db, tmp_path)
        shop.event("p0", "visit")
        with facts_settings(min_events=2, stale_share=0.05):
            mirror.sync(db, shop.root, now=shop.now)
            ms = store.load_state(shop.root).merchants[shop.merchant_id]
            assert ms.facts_through is None
            assert not ms.files[mirror_facts.TABLE]
            shop.tick(5)
            shop.event("p1", "order_paid", amount=100)
            later_event(shop)
            report = mirror.sync(db, shop.root, now=shop.now)
        ms = store.load_state(shop.root).merchants[shop.merchant_id]
        assert ms.facts_through is not None
        assert report.merchants[0].facts == 2  # two members, one month (the later event: not yet)

    def test_a_late_event_rebuilds_only_its_month(self, db: Database, tmp_path: Any) -> None:
        shop = make_shop(db, tmp_path)
        shop.event("p0", "visit", occurred_at=shop.now - timedelta(days=40))  # the month before
        shop.event("p0", "visit")
        later_event(shop)
        with facts_settings(min_events=1, stale_share=0.0):
            mirror.sync(db, shop.root, now=shop.now)
            before = dict(store.load_state(shop.root).merchants[shop.merchant_id].files[mirror_facts.TABLE])
            assert len(before) == 2
            shop.event("p1", "order_paid", amount=100)  # this month only
            later_event(shop)
            mirror.sync(db, shop.root, now=shop.now)
        after = store.load_state(shop.root).merchants[shop.merchant_id].files[mirror_facts.TABLE]
        kept = set(before) & set(after)
        assert len(kept) == 1  # the old month's file stayed
        assert "month=2026-09-01" in next(iter(kept))
        assert len(after) == 2

    def test_same_day_orders_split_between_facts_and_delta_make_a_repeat_buyer(
        self, db: Database, tmp_path: Any
    ) -> None:
        # given one paid order covered by the facts, and a second one that day received later
        shop = make_shop(db, tmp_path)
        shop.event("p0", "order_paid", amount=100)
        later_event(shop)
        with facts_settings(min_events=1, stale_share=1e9):  # built once, never again
            mirror.sync(db, shop.root, now=shop.now)  # the facts cover the first order
            shop.tick(120)
            shop.event("p0", "order_paid", amount=200, occurred_at=shop.now - timedelta(minutes=60))
            shop.tick(5)
            mirror.sync(db, shop.root, now=shop.now)
        # then the member is a repeat buyer both ways, and the facts were read
        assert_one_repeat_buyer_today(shop)

    def test_two_orders_on_one_day_inside_the_facts_make_a_repeat_buyer(
        self, db: Database, tmp_path: Any
    ) -> None:
        # given two paid orders of one member on one day, both covered by the facts
        shop = make_shop(db, tmp_path)
        shop.event("p0", "order_paid", amount=100)
        shop.tick(1)
        shop.event("p0", "order_paid", amount=200)
        later_event(shop)
        with facts_settings(min_events=1, stale_share=0.05):
            mirror.sync(db, shop.root, now=shop.now)
        # then one fact row says it (its multi-order bit): a repeat buyer both ways
        assert_one_repeat_buyer_today(shop)

    def test_a_rebuild_of_the_mirror_builds_the_facts(self, db: Database, tmp_path: Any) -> None:
        shop = make_shop(db, tmp_path)
        shop.event("p0", "visit")
        later_event(shop)
        with facts_settings(min_events=1, stale_share=0.05):
            mirror.rebuild(db, shop.root, now=shop.now)
        ms = store.load_state(shop.root).merchants[shop.merchant_id]
        assert ms.facts_through is not None
        assert ms.rows(mirror_facts.TABLE) == 1
