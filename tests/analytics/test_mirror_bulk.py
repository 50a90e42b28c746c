"""The mirror's bulk reads (Arrow columns from the raw cursor / COPY) give exactly the tables that
SQLAlchemy's row processing gives for the same statements, and a rebuild streamed in tiny chunks
gives the same mirror as the state store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from siyu.analytics import mirror, mirror_bulk, mirror_events
from siyu.analytics import mirror_store as store
from siyu.analytics.relations import member_snapshot
from siyu.db import Database
from siyu.events.models import Event
from siyu.lifecycle.models import StageTransition
from siyu.tenancy import facade as tenancy
from tests.analytics.mirrorkit import Shop, assert_same


def _shop(db: Database, root: Path, zone: str) -> Shop:
    with db.unit_of_work() as session:
        merchant = tenancy.create_merchant(session, name=f"店 {zone}", timezone=zone)
    return Shop(db, root, merchant.id)


def _utc(
    year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def _tricky(shop: Shop) -> None:
    """Events the bulk conversion could get wrong: NULLs, unicode and quotes in properties,
    microseconds or none, the local day boundary and a DST change (America/New_York)."""
    shop.event("p1", "order_paid", amount=1999, properties={"名": "咖啡 ☕", "q": 'a "b", c\nd'})
    shop.event("p2", store_id=None)
    members = sorted({r["member_id"] for r in shop.state("events")})
    moments = [
        _utc(2026, 3, 8, 4, 59, 59, 999999),  # New York: 23:59:59 on the 7th (EST)
        _utc(2026, 3, 8, 5, 0, 0),  # New York: midnight of the 8th
        _utc(2026, 3, 8, 7, 0, 0, 1),  # the DST change (02:00 EST → 03:00 EDT)
        _utc(2026, 11, 1, 5, 59, 59),  # New York: fall back is at 06:00 UTC
        _utc(2026, 11, 1, 6, 30, 0, 500000),
        _utc(2026, 6, 30, 15, 59, 59),  # Shanghai: 23:59:59 on the 30th
        _utc(2026, 6, 30, 16, 0, 0),  # Shanghai: midnight of July 1st
    ]
    rows: list[dict[str, Any]] = [
        {
            "merchant_id": shop.merchant_id,
            "event_id": f"bulk-{i:02d}",
            "member_id": members[i % len(members)],
            "type": ("visit", "order_paid", "order_refunded", "custom:扫码")[i % 4],
            "occurred_at": moment,
            "received_at": _utc(2026, 11, 28, 4, 0, 0, i),
            "channel": None if i % 2 else "小程序",
            "store_id": None if i % 3 else "S'1",
            "amount_fen": None if i % 4 == 0 else -5 if i == 6 else i * 1000,
            "properties": {} if i % 2 else {"emoji": "🎉", "nested": {"k": [1, None, "é"]}, "empty": ""},
        }
        for i, moment in enumerate(moments)
    ]
    with shop.db.unit_of_work() as session:
        session.execute(sa.insert(Event), rows)
        # text as another writer may have stored it: no fraction, and (SQLite) a ``T`` and an offset
        sqlite = session.get_bind().dialect.name == "sqlite"
        raw = [
            ("raw-1", "2026-03-08 06:59:59" if sqlite else "2026-03-08 06:59:59+00:00"),
            ("raw-2", "2026-03-08T07:00:00.5+00:00"),
        ]
        for event_id, moment in raw:
            session.execute(
                sa.text(
                    "INSERT INTO events (merchant_id, event_id, member_id, type, occurred_at, received_at,"
                    " channel, store_id, amount_fen, properties)"
                    " VALUES (:m, :e, :member, 'visit', :at, :at, '', NULL, NULL, '{\"a\": \"\"}')"
                ),
                {"m": shop.merchant_id, "e": event_id, "member": members[0], "at": moment},
            )


def _row_path(session: Any, statement: Any, schema: pa.Schema) -> pa.Table:
    """The reference: SQLAlchemy's typed rows of the same statement."""
    return store.to_table([tuple(r) for r in session.execute(statement)], schema)


ZONES = ["America/New_York", "Asia/Shanghai"]


class TestBulkReads:
    @pytest.mark.parametrize("zone", ZONES)
    def test_events_read_in_bulk_equal_the_row_path(self, db: Database, tmp_path: Path, zone: str) -> None:
        # given
        shop = _shop(db, tmp_path / "analytics", zone)
        _tricky(shop)
        statement = mirror.event_rows(shop.merchant_id, shop.zone(), db.engine.dialect.name, since=None)
        with db.reading() as session:
            # when
            bulk = mirror_bulk.read_table(session, statement, store.EVENTS_SCHEMA)
            rows = _row_path(session, statement, store.EVENTS_SCHEMA)
        # then
        assert bulk.num_rows == 11
        assert bulk.schema == store.EVENTS_SCHEMA
        assert bulk.sort_by("event_id").equals(rows.sort_by("event_id"))

    @pytest.mark.parametrize("zone", ZONES)
    def test_member_snapshot_and_ledger_read_in_bulk_equal_the_row_path(
        self, db: Database, tmp_path: Path, zone: str
    ) -> None:
        # given
        shop = _shop(db, tmp_path / "analytics", zone)
        _tricky(shop)
        members_schema = store.MEMBERS_SCHEMA.remove(store.MEMBERS_SCHEMA.get_field_index("snapshot_date"))
        snapshot = member_snapshot(shop.merchant_id, shop.zone(), db.engine.dialect.name)
        t = StageTransition
        ledger = sa.select(
            t.member_id, t.seq, t.from_stage, t.to_stage, t.effective_on, t.recorded_at, t.cause
        ).where(t.merchant_id == shop.merchant_id)
        with db.reading() as session:
            # when
            members = mirror_bulk.read_table(session, snapshot, members_schema)
            transitions = mirror_bulk.read_table(session, ledger, store.TRANSITIONS_SCHEMA)
            # then
            assert members.num_rows == 2
            assert members.sort_by("member_id").equals(
                _row_path(session, snapshot, members_schema).sort_by("member_id")
            )
            assert transitions.num_rows > 0
            assert transitions.sort_by("member_id").equals(
                _row_path(session, ledger, store.TRANSITIONS_SCHEMA).sort_by("member_id")
            )

    def test_a_statement_without_rows_gives_an_empty_table(self, db: Database, tmp_path: Path) -> None:
        # given
        shop = _shop(db, tmp_path / "analytics", "Asia/Shanghai")
        statement = mirror.event_rows(shop.merchant_id, shop.zone(), db.engine.dialect.name, since=None)
        # when
        with db.reading() as session:
            table = mirror_bulk.read_table(session, statement, store.EVENTS_SCHEMA)
        # then
        assert table.num_rows == 0
        assert table.schema == store.EVENTS_SCHEMA


class TestStreamedRebuild:
    @pytest.mark.parametrize("zone", ZONES)
    def test_a_rebuild_in_tiny_chunks_equals_the_state_store(
        self, db: Database, tmp_path: Path, zone: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given chunks of 2 rows, flushes every 3 rows and at most 2 day files open at once
        shop = _shop(db, tmp_path / "analytics", zone)
        _tricky(shop)
        monkeypatch.setattr(mirror_bulk, "CHUNK_ROWS", 2)
        monkeypatch.setattr(mirror_bulk, "CSV_BLOCK_BYTES", 1024)
        monkeypatch.setattr(mirror_events, "FLUSH_ROWS", 3)
        monkeypatch.setattr(mirror_events, "MAX_OPEN_FILES", 2)
        # when
        report = mirror.rebuild(db, shop.root, now=_utc(2026, 11, 28, 5))
        # then
        assert report.events == 11
        assert_same(shop)
        ms = store.load_state(shop.root).merchants[shop.merchant_id]
        assert ms.events_watermark == _utc(2026, 11, 28, 4, 0, 0, 6).isoformat()
        for path, meta in ms.files["events"].items():
            day = path.split("local_date=")[1].split("/")[0]
            table = store.read_parquet(shop.root, [path], store.EVENTS_SCHEMA)
            assert {d.isoformat() for d in table.column("local_date").to_pylist()} == {day}
            assert meta["rows"] == table.num_rows
            # a day's file is one row group however many flushes fed it (DuckDB reads many
            # small groups slowly)
            assert pq.ParquetFile(shop.root / path).metadata.num_row_groups == 1

    @pytest.mark.parametrize("chunk", [2, 100])
    def test_a_day_file_is_cut_into_row_groups_of_the_configured_size(
        self, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
    ) -> None:
        # given row groups of 3 rows fed by batches smaller than a group (chunks of 2) or holding
        # several groups (one chunk of all rows), flushed every 2 rows
        shop = _shop(db, tmp_path / "analytics", "Asia/Shanghai")
        _tricky(shop)
        for i in range(8):  # eight more events of the shop's day
            shop.event(f"q{i % 3}", occurred_at=shop.now - timedelta(minutes=10 + i))
        monkeypatch.setattr(mirror_bulk, "CHUNK_ROWS", chunk)
        monkeypatch.setattr(mirror_events, "FLUSH_ROWS", 2)
        monkeypatch.setattr(store, "ROW_GROUP_ROWS", 3)
        # when
        mirror.rebuild(db, shop.root, now=_utc(2026, 11, 28, 5))
        # then every row group but a file's last is full
        assert_same(shop)
        ms = store.load_state(shop.root).merchants[shop.merchant_id]
        assert any(meta["rows"] > 3 for meta in ms.files["events"].values())
        for path, meta in ms.files["events"].items():
            groups = pq.ParquetFile(shop.root / path).metadata
            sizes = [groups.row_group(i).num_rows for i in range(groups.num_row_groups)]
            assert sum(sizes) == meta["rows"]
            assert all(size == 3 for size in sizes[:-1])
            assert 0 < sizes[-1] <= 3
