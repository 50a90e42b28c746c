"""The columnar mirror: incremental sync, late events, merges, erasure, rebuild, locking."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from siyu.analytics import mirror, mirror_bulk
from siyu.analytics import mirror_store as store
from siyu.analytics.duck import mirror_engine, mirror_member_days, mirror_relations
from siyu.analytics.relations import EVENT_COLUMNS, MEMBER_COLUMNS, TRANSITION_COLUMNS, Relations
from siyu.analytics.scope import Grain, Scope, bucket, scoped_events
from siyu.db import Database
from siyu.lifecycle import facade as lifecycle
from siyu.lifecycle.models import StageTransition
from tests.analytics.mirrorkit import T0, Shop, assert_same, make_shop, normalise


@pytest.fixture
def shop(db: Database, tmp_path: Path) -> Shop:
    return make_shop(db, tmp_path / "analytics")


def event_files(shop: Shop) -> dict[str, float]:
    """Live event files → modification time."""
    ms = store.load_state(shop.root).merchants[shop.merchant_id]
    return {p: (shop.root / p).stat().st_mtime_ns for p in ms.files["events"]}


class TestEmptyMirror:
    def test_a_missing_root_gives_empty_relations_with_the_columns(self, tmp_path: Path, shop: Shop) -> None:
        # given nothing mirrored
        rel = mirror_relations(tmp_path / "nothing", shop.merchant_id, shop.zone())
        engine = mirror_engine(tmp_path / "nothing")
        # when
        with engine.connect() as connection:
            results = {
                name: connection.execute(sa.select(getattr(rel, name))) for name in ("events", "members")
            }
            results["stage_transitions"] = connection.execute(sa.select(rel.stage_transitions))
            # then
            assert list(results["events"].keys()) == list(EVENT_COLUMNS)
            assert list(results["members"].keys()) == list(MEMBER_COLUMNS)
            assert list(results["stage_transitions"].keys()) == list(TRANSITION_COLUMNS)
            assert all(r.all() == [] for r in results.values())
        assert rel.engine == "duckdb"

    def test_a_merchant_without_events_syncs_to_empty_events(self, shop: Shop) -> None:
        # when
        report = mirror.sync(shop.db, shop.root, now=shop.now)
        # then
        assert report.events == 0
        assert shop.mirror("events") == []
        assert_same(shop)


class TestIncrementalSync:
    def test_a_second_sync_copies_only_the_new_events(self, shop: Shop) -> None:
        # given
        shop.event("p1")
        shop.event("p2", "order_paid", amount=1234)
        first = mirror.sync(shop.db, shop.root, now=shop.tick())
        shop.tick()
        shop.event("p1", "order_paid", amount=500)
        # when
        second = mirror.sync(shop.db, shop.root, now=shop.tick())
        again = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        assert (first.events, second.events, again.events) == (2, 1, 0)
        assert len(shop.mirror("events")) == 3
        assert_same(shop)

    def test_a_resync_without_changes_writes_no_event_file(self, shop: Shop) -> None:
        # given
        shop.event("p1")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        before = event_files(shop)
        # when
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        assert event_files(shop) == before

    def test_a_late_event_lands_in_its_old_day_as_a_new_part(self, shop: Shop) -> None:
        # given an event today, synced
        shop.event("p1")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        before = event_files(shop)
        # when an event that occurred ten days ago arrives
        shop.tick()
        late = shop.event("p1", "order_paid", occurred_at=T0 - timedelta(days=10), amount=900)
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        added = sorted(set(event_files(shop)) - set(before))
        old_day = (T0 - timedelta(days=10)).astimezone(shop.zone()).date().isoformat()
        assert len(added) == 1
        assert f"local_date={old_day}/part-" in added[0]
        assert set(before) <= set(event_files(shop))
        assert [r["local_date"].isoformat() for r in shop.mirror("events") if r["event_id"] == late] == [
            old_day
        ]
        assert_same(shop)

    def test_events_committed_out_of_received_order_are_not_lost(self, shop: Shop) -> None:
        # given a sync at T0+10min, then an event whose received_at is earlier (a batch that
        # committed late, within the overlap)
        shop.event("p1")
        shop.now = T0 + timedelta(minutes=10)
        shop.event("p2")
        mirror.sync(shop.db, shop.root, now=shop.now)
        shop.now = T0 + timedelta(minutes=10) - mirror.OVERLAP / 2
        straggler = shop.event("p3")
        # when
        report = mirror.sync(shop.db, shop.root, now=T0 + timedelta(minutes=10, seconds=5))
        # then
        assert report.events == 1
        assert straggler in {r["event_id"] for r in shop.mirror("events")}
        assert_same(shop)

    def test_many_late_parts_are_compacted(self, shop: Shop) -> None:
        # given a day that gets one late event per sync
        day = T0 - timedelta(days=3)
        for i in range(mirror.MAX_PARTS + 1):
            shop.tick()
            shop.event("p1", occurred_at=day + timedelta(minutes=i))
            mirror.sync(shop.db, shop.root, now=shop.tick())
        # then the day holds one file again, with every event
        files = [p for p in event_files(shop) if "local_date=" + day.date().isoformat() in p]
        assert len(files) < mirror.MAX_PARTS
        assert len(shop.mirror("events")) == mirror.MAX_PARTS + 1
        assert_same(shop)

    def test_the_state_file_records_watermark_and_layout(self, shop: Shop) -> None:
        # given
        shop.event("p1")
        # when
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        data = json.loads((shop.root / store.STATE_FILE).read_text())
        assert data["layout_version"] == store.LAYOUT_VERSION
        assert data["merchants"][shop.merchant_id]["events_watermark"] == T0.isoformat()


class TestMerges:
    def test_events_resolve_to_the_survivor_through_a_chain(self, shop: Shop) -> None:
        # given three members a, b, c with synced events
        ea, eb, ec = shop.event("a"), shop.event("b"), shop.event("c")
        shop.event("b", extra_identity="nb")
        shop.event("c", extra_identity="nc")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # when a merges into b, then b into c (events naming identities of both)
        shop.tick()
        shop.event("a", extra_identity="nb")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        shop.event("a", extra_identity="nc")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then every event of the person resolves to one member, the state store's
        owners = {r["member_id"] for r in shop.mirror("events")}
        assert len(owners) == 1
        assert {shop.member_of(e) for e in (ea, eb, ec)} == owners
        assert_same(shop)

    def test_mirrored_events_keep_the_member_they_arrived_with(self, shop: Shop) -> None:
        # given
        first = shop.event("a")
        original = shop.member_of(first)
        shop.event("b", extra_identity="nb")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # when a merges into b's member (or b into a's)
        shop.event("a", extra_identity="nb")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then the raw file still says the original member; the relation says the survivor
        ms = store.load_state(shop.root).merchants[shop.merchant_id]
        raw = store.read_parquet(shop.root, list(ms.files["events"]), store.EVENTS_SCHEMA).to_pylist()
        assert next(r["member_id"] for r in raw if r["event_id"] == first) == original
        assert_same(shop)


class TestErasure:
    def test_erasure_rewrites_only_the_files_of_the_erased_and_clears_properties(self, shop: Shop) -> None:
        # given two people's events on different days
        day2 = T0 - timedelta(days=2)
        gone = shop.event("gone", occurred_at=T0)
        shop.event("stay", occurred_at=day2)
        mirror.sync(shop.db, shop.root, now=shop.tick())
        before = event_files(shop)
        # when the first is erased
        shop.erase(shop.member_of(gone))
        report = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        after = event_files(shop)
        untouched = [p for p in before if "local_date=" + day2.date().isoformat() in p]
        assert report.merchants[0].erased == 1
        assert all(after.get(p) == before[p] for p in untouched)
        rewritten = set(after) - set(before)
        assert len(rewritten) == 1
        (path,) = rewritten
        rows = pq.read_table(shop.root / path).to_pylist()
        assert [r["properties"] for r in rows if r["event_id"] == gone] == ["{}"]
        assert_same(shop)

    def test_erasure_reaches_events_that_arrived_with_a_merged_id(self, shop: Shop) -> None:
        # given a's event synced, then a merged into b
        ea = shop.event("a")
        shop.event("b", extra_identity="nb")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        shop.event("a", extra_identity="nb")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # when the surviving person is erased
        shop.erase(shop.member_of(ea))
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then no mirrored event of the person keeps its properties
        ms = store.load_state(shop.root).merchants[shop.merchant_id]
        raw = store.read_parquet(shop.root, list(ms.files["events"]), store.EVENTS_SCHEMA).to_pylist()
        assert {r["properties"] for r in raw} == {"{}"}
        assert_same(shop)

    def test_replaced_files_are_deleted_after_their_grace(self, shop: Shop) -> None:
        # given an erasure that replaced a file
        gone = shop.event("gone")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        (old,) = event_files(shop)
        shop.erase(shop.member_of(gone))
        mirror.sync(shop.db, shop.root, now=shop.tick())
        assert (shop.root / old).exists()  # a query planned before may still read it
        # when a sync runs after the grace
        mirror.sync(shop.db, shop.root, now=shop.now + timedelta(seconds=store.RETIRE_GRACE_SECONDS + 1))
        # then
        assert not (shop.root / old).exists()


class TestLedger:
    def test_a_rewritten_ledger_is_rewritten_whole_in_the_mirror(self, shop: Shop) -> None:
        # given a mirrored ledger
        shop.event("a", "order_paid", occurred_at=T0 - timedelta(days=40), amount=500)
        shop.event("b")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        before = shop.mirror("stage_transitions")
        # when the state store's ledger is rebuilt from history
        with shop.db.unit_of_work() as session:
            lifecycle.rebuild(session, shop.merchant_id, now=shop.now)
        report = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        after = shop.mirror("stage_transitions")
        assert report.merchants[0].transitions == len(after)
        assert sorted(map(repr, after)) != sorted(map(repr, before))
        assert_same(shop)

    def test_new_entries_are_appended(self, shop: Shop) -> None:
        # given
        shop.event("a")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # when a new member arrives
        shop.event("b")
        report = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then only its entry is copied
        assert report.merchants[0].transitions == 1
        assert_same(shop)


def ledger_entry(shop: Shop, member: str, recorded_at: datetime, seq: int = 1) -> None:
    """A ledger entry written as a transaction that started at ``recorded_at`` would write it."""
    with shop.db.engine.begin() as connection:
        connection.execute(
            sa.insert(StageTransition.__table__).values(
                merchant_id=shop.merchant_id,
                member_id=member,
                seq=seq,
                from_stage=None,
                to_stage="stranger",
                effective_on=recorded_at.date(),
                recorded_at=recorded_at,
                cause="event",
            )
        )


class TestLedgerWindow:
    """The ledger step reads what was recorded since the previous sync, not the day's ledger."""

    def test_a_round_reads_only_the_entries_recorded_since_the_previous_one(
        self, shop: Shop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given a day's ledger of 40 entries, all dated today, recorded two minutes apart, mirrored
        for n in range(40):
            shop.event(f"early{n}")
            shop.tick(2)
        mirror.sync(shop.db, shop.root, now=shop.now)
        read = ledger_reads(monkeypatch)
        # when two more people arrive a minute later, and the mirror syncs
        shop.tick()
        shop.event("late1")
        shop.event("late2")
        report = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then the state store gave the two new entries and the newest mirrored one (the overlap)
        assert read == [3]
        assert report.merchants[0].transitions == 2
        assert_same(shop)

    def test_an_idle_sync_reads_no_entry_once_the_overlap_has_passed(
        self, shop: Shop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given a mirrored ledger whose newest entry is older than the overlap
        shop.event("a")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        read = ledger_reads(monkeypatch)
        # when a sync with nothing new
        report = mirror.sync(shop.db, shop.root, now=shop.now + mirror.OVERLAP + timedelta(seconds=1))
        # then no entry was read
        assert read == []
        assert report.merchants[0].transitions == 0

    def test_an_entry_committed_late_inside_the_overlap_is_copied(self, shop: Shop) -> None:
        # given a mirror synced after an entry recorded now
        shop.event("a")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # when a transaction that started 30 s before that entry commits its own entry afterwards
        ledger_entry(shop, "mbr_latecommit", shop.now - timedelta(minutes=1, seconds=30))
        report = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        assert report.merchants[0].transitions == 1
        assert_same(shop)

    def test_an_entry_committed_later_than_the_overlap_rewrites_the_copy_whole(self, shop: Shop) -> None:
        # given a mirrored ledger
        shop.event("a")
        shop.event("b")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # when an entry recorded an hour earlier is committed only now (a long transaction)
        ledger_entry(shop, "mbr_verylate", shop.now - timedelta(hours=1))
        report = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then the size did not add up: the whole ledger was copied again, and nothing is missing
        assert report.merchants[0].transitions == 3
        assert_same(shop)

    def test_a_mirror_written_before_the_window_is_copied_whole_once(self, shop: Shop) -> None:
        # given a mirror whose ledger files have no max_recorded_at (the layout before it)
        shop.event("a")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        state = store.load_state(shop.root)
        for meta in state.merchants[shop.merchant_id].files["stage_transitions"].values():
            del meta["max_recorded_at"]
        store.save_state(shop.root, state)
        # when
        first = mirror.sync(shop.db, shop.root, now=shop.tick())
        second = mirror.sync(shop.db, shop.root, now=shop.tick(5))
        # then the first sync copies the ledger again (its old file retired), the next one nothing
        assert first.merchants[0].transitions == 1
        assert second.merchants[0].transitions == 0
        assert store.load_state(shop.root).merchants[shop.merchant_id].rows("stage_transitions") == 1
        assert_same(shop)


def ledger_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the number of rows of each read of ledger entries from the state store."""
    read: list[int] = []
    real = mirror_bulk.read_table

    def counting(session: Any, statement: Any, schema: Any) -> Any:
        table = real(session, statement, schema)
        if schema is store.TRANSITIONS_SCHEMA:
            read.append(table.num_rows)
        return table

    monkeypatch.setattr(mirror_bulk, "read_table", counting)
    return read


class TestRebuild:
    def test_rebuild_gives_the_same_relations_as_incremental_sync(self, shop: Shop) -> None:
        # given an incrementally synced mirror with merges, late events and an erasure
        shop.event("a", "order_paid", amount=300)
        mirror.sync(shop.db, shop.root, now=shop.tick())
        shop.event("b", extra_identity="nb")
        shop.event("a", extra_identity="nb", occurred_at=T0 - timedelta(days=5))
        mirror.sync(shop.db, shop.root, now=shop.tick())
        gone = shop.event("c", "order_refunded", amount=100)
        shop.erase(shop.member_of(gone))
        mirror.sync(shop.db, shop.root, now=shop.tick())
        incremental = {n: shop.mirror(n) for n in ("events", "members", "stage_transitions")}
        # when
        report = mirror.rebuild(shop.db, shop.root, now=shop.now)
        # then
        assert report.events == 4
        for name, rows in incremental.items():
            assert sorted(map(repr, shop.mirror(name))) == sorted(map(repr, rows)), name
        assert_same(shop)

    def test_member_days_keep_one_snapshot_per_local_day(self, shop: Shop) -> None:
        # given syncs on two days
        shop.event("a")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        mirror.sync(shop.db, shop.root, now=shop.tick())
        shop.event("b")
        mirror.sync(shop.db, shop.root, now=shop.now + timedelta(days=1))
        # when
        days = mirror_member_days(shop.root, shop.merchant_id)
        with shop.engine.connect() as connection:
            day = days.c.snapshot_date
            rows = connection.execute(sa.select(day, sa.func.count()).group_by(day).order_by(day))
            counts = [(d.isoformat(), n) for d, n in rows]
        # then
        today = T0.astimezone(shop.zone()).date()
        assert counts == [(today.isoformat(), 1), ((today + timedelta(days=1)).isoformat(), 2)]


class TestConcurrency:
    def test_two_syncs_at_once_leave_a_consistent_mirror(self, shop: Shop) -> None:
        # given
        for i in range(20):
            shop.event(f"p{i % 7}", "order_paid" if i % 3 else "visit", amount=100 + i)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                mirror.sync(shop.db, shop.root, now=shop.now)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        # when
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # then one copied the events and the other found nothing new
        assert errors == []
        assert len(shop.mirror("events")) == 20
        assert_same(shop)

    def test_a_sync_that_would_wait_is_skipped(self, shop: Shop) -> None:
        # given another writer holds the lock
        with store.locked(shop.root):
            # when
            report = mirror.sync(shop.db, shop.root, now=shop.now, wait=False)
        # then
        assert report.skipped


class TestMetricQueries:
    def test_a_scoped_bucketed_query_answers_alike_on_the_mirror(self, shop: Shop) -> None:
        # given orders over three weeks, one merged person and one refund
        for days in (0, 3, 9, 17):
            shop.event("a", "order_paid", occurred_at=T0 - timedelta(days=days), amount=1000 + days)
        shop.event("b", "order_refunded", occurred_at=T0 - timedelta(days=2), amount=300)
        shop.event("b", extra_identity="nb")
        shop.event("a", extra_identity="nb")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        day = T0.astimezone(shop.zone()).date()
        scope = Scope(start=day - timedelta(days=20), end=day, store_id="S1")

        def weekly(rel: Relations) -> sa.Select[tuple[object, ...]]:
            events = scoped_events(rel, scope, "order_paid", "order_refunded").subquery()
            week = bucket(events.c.local_date, Grain.WEEK)
            return (
                sa.select(
                    week,
                    events.c.type,
                    sa.func.count(sa.distinct(events.c.member_id)),
                    sa.func.sum(events.c.amount_fen),
                )
                .group_by(week, events.c.type)
                .order_by(week, events.c.type)
            )

        # when
        with shop.db.reading() as session:
            state = [tuple(normalise(v) for v in r) for r in session.execute(weekly(shop.state_rel()))]
        with shop.engine.connect() as connection:
            duck = [tuple(normalise(v) for v in r) for r in connection.execute(weekly(shop.mirror_rel()))]
        # then
        assert duck == state
        assert len(state) == 4
