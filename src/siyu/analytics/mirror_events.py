"""The events part of a mirror sync: which events to copy (watermark, late commits) and how they
reach the Parquet partitions — read in bulk as Arrow batches (:mod:`siyu.analytics.mirror_bulk`),
split by local day, and streamed into one open spill file per day, so a rebuild of tens of
millions of events holds only :data:`FLUSH_ROWS` of them in memory and writes one file per day
instead of one per day and chunk.

Row groups: the state store hands events over in insertion order, not by day, so one flush of
:data:`FLUSH_ROWS` rows spread over half a year gives each day a few thousand rows. Written
straight to Parquet that made ~2.7 k-row groups at 30 M events, and DuckDB reads many small
groups slowly. A day's flushes are therefore appended to an Arrow IPC file (lz4: a memcpy and a
fast codec, no Parquet encoding), and when the day is finished that file is streamed back into
the day's Parquet file in groups of :data:`siyu.analytics.mirror_store.ROW_GROUP_ROWS` (at most
one group and one flush in memory).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from siyu.analytics import mirror_bulk as bulk
from siyu.analytics import mirror_store as store
from siyu.analytics.mirror_keys import MemberKeys, with_key
from siyu.analytics.relations import local_date
from siyu.events.models import Event

OVERLAP = timedelta(seconds=60)
"""How late a transaction may commit after it set its events' ``received_at`` and still be
mirrored (ingestion commits at the end of its request; an import at the end of each chunk).
A sync looks again at the ids received from this long before the previous sync; only those
the mirror lacks are read in full."""
FLUSH_ROWS = 1_000_000
"""Event rows buffered before they are appended (as row groups) to their day's open file."""
MAX_OPEN_FILES = 512
"""Day files kept open at once; the least recently used is finished (a later row of its day
starts a new part file) beyond this."""

Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)``: ``what`` names the merchant and phase."""


@dataclass
class Writer:
    """Writes the files of one merchant's sync and records them in the state."""

    root: Path
    state: store.MirrorState
    merchant: store.MerchantState
    merchant_id: str
    now: datetime
    written: int = 0
    retired: int = 0
    touched: set[str] = field(default_factory=set)
    """Event partition directories that got a new file in this sync."""
    keys: MemberKeys = field(init=False)
    """The merchant's member keys (new ids get theirs as the sync meets them)."""

    def __post_init__(self) -> None:
        self.keys = MemberKeys(self)

    def write(self, table_name: str, directory: str, table: pa.Table, **extra: Any) -> str:
        relpath = f"{directory}/{self.state.part_name()}"
        size = store.write_parquet(self.root, relpath, table)
        self.record(table_name, relpath, table.num_rows, size, **extra)
        return relpath

    def record(self, table_name: str, relpath: str, rows: int, size: int, **extra: Any) -> None:
        self.merchant.files[table_name][relpath] = {"rows": rows, "bytes": size, **extra}
        self.written += 1

    def retire(self, table_name: str, paths: Sequence[str]) -> None:
        for path in paths:
            del self.merchant.files[table_name][path]
        store.retire(self.state, list(paths), self.now)
        self.retired += len(paths)

    def directory(self, table_name: str, partition: str | None = None) -> str:
        base = f"{table_name}/merchant_id={self.merchant_id}"
        return f"{base}/{partition}" if partition else base


def event_rows(merchant_id: str, zone: ZoneInfo, dialect: str, *, since: datetime | None) -> Any:
    """The state store's events as the mirror stores them (columns of ``EVENTS_SCHEMA``), with
    ``local_date`` computed by the one definition :func:`siyu.analytics.relations.local_date`."""
    e = Event.__table__
    statement = select(
        e.c.event_id,
        e.c.member_id,
        e.c.type,
        e.c.occurred_at,
        local_date(e.c.occurred_at, zone, dialect).label("local_date"),
        e.c.received_at,
        e.c.channel,
        e.c.store_id,
        e.c.amount_fen,
        cast(e.c.properties, Text).label("properties"),
    ).where(e.c.merchant_id == merchant_id)
    if since is not None:
        statement = statement.where(e.c.received_at >= since)
    return statement


SPILL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
"""How a day's flushes are spilled until the day's Parquet file is written (see the module doc)."""


@dataclass
class _DayFile:
    tmp: Path
    writer: pa.ipc.RecordBatchFileWriter
    rows: int = 0
    newest: datetime | None = None


class EventSink:
    """Event batches in, one part file per local day out (streamed; see the module doc)."""

    def __init__(self, w: Writer) -> None:
        self.w = w
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.files: OrderedDict[date, _DayFile] = OrderedDict()
        self.newest: datetime | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Key the buffered rows (one dictionary look-up per flush) and append each day's rows
        to its open file."""
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending, schema=store.EVENTS_SCHEMA)
        table = with_key(table, self.w.keys)
        self.pending.clear()
        self.pending_rows = 0
        order = pc.sort_indices(table.column("local_date"))  # stable: a day keeps the read order
        ordered = table.take(order)
        counts = pc.value_counts(ordered.column("local_date"))
        offset = 0
        values, sizes = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
        for day, n in sorted(zip(values, sizes, strict=True)):
            self._append(day, ordered.slice(offset, n))
            offset += n

    def _append(self, day: date, table: pa.Table) -> None:
        part = self._file(day)
        part.writer.write_table(table)
        part.rows += table.num_rows
        newest = pc.max(table.column("received_at")).as_py().astimezone(UTC)
        part.newest = newest if part.newest is None else max(part.newest, newest)
        self.newest = part.newest if self.newest is None else max(self.newest, part.newest)

    def close(self) -> None:
        self.flush()
        for day in sorted(self.files):
            self._finish(day)

    def _file(self, day: date) -> _DayFile:
        if day in self.files:
            self.files.move_to_end(day)
            return self.files[day]
        if len(self.files) >= MAX_OPEN_FILES:
            self._finish(next(iter(self.files)))
        tmp = store.temp_path(self.w.root, ".arrow")
        writer = pa.ipc.new_file(tmp, store.EVENTS_FILE_SCHEMA, options=SPILL_OPTIONS)
        self.files[day] = _DayFile(tmp, writer)
        return self.files[day]

    def _finish(self, day: date) -> None:
        part = self.files.pop(day)
        part.writer.close()
        assert part.newest is not None
        directory = self.w.directory("events", f"local_date={day.isoformat()}")
        relpath = f"{directory}/{self.w.state.part_name()}"
        tmp, writer = store.open_parquet(self.w.root, store.EVENTS_FILE_SCHEMA)
        group: list[pa.RecordBatch] = []
        grouped = 0
        with pa.OSFile(str(part.tmp)) as source, writer:
            spill = pa.ipc.open_file(source)
            # at most one row group (plus one flush) in memory, however big the day
            for index in range(spill.num_record_batches):
                batch = spill.get_batch(index)
                group.append(batch)
                grouped += batch.num_rows
                while grouped >= store.ROW_GROUP_ROWS:
                    table = pa.Table.from_batches(group, schema=store.EVENTS_FILE_SCHEMA)
                    writer.write_table(
                        table.slice(0, store.ROW_GROUP_ROWS), row_group_size=store.ROW_GROUP_ROWS
                    )
                    group = table.slice(store.ROW_GROUP_ROWS).to_batches()
                    grouped -= store.ROW_GROUP_ROWS
            if grouped:
                writer.write_table(pa.Table.from_batches(group, schema=store.EVENTS_FILE_SCHEMA))
        part.tmp.unlink()
        size = store.place(self.w.root, tmp, relpath)
        self.w.record("events", relpath, part.rows, size, max_received_at=part.newest.isoformat())
        self.w.touched.add(directory)


def sync_events(session: Session, w: Writer, zone: ZoneInfo, dialect: str, progress: Progress | None) -> int:
    """Mirror the events received after the watermark, and those received in the overlap before
    it that a previous sync could not see yet (committed late); one file per local date touched."""
    watermark = datetime.fromisoformat(w.merchant.events_watermark) if w.merchant.events_watermark else None
    statements = [event_rows(w.merchant_id, zone, dialect, since=None)]
    if watermark is not None:
        statements = [
            event_rows(w.merchant_id, zone, dialect, since=None).where(Event.received_at > watermark)
        ]
        last = datetime.fromisoformat(w.merchant.synced_at) if w.merchant.synced_at else watermark
        missing = _late_commits(session, w, last - OVERLAP, watermark)
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            statements.append(
                event_rows(w.merchant_id, zone, dialect, since=None).where(Event.event_id.in_(chunk))
            )
    total = 0
    if progress:
        total = sum(
            session.execute(select(func.count()).select_from(s.subquery())).scalar_one() for s in statements
        )
        progress(f"{w.merchant_id} events", 0, total)
    sink = EventSink(w)
    read = 0
    for statement in statements:
        for batch in bulk.record_batches(session, statement, store.EVENTS_SCHEMA):
            sink.add(batch)
            read += batch.num_rows
            if progress:
                progress(f"{w.merchant_id} events", read, max(total, read))
    sink.close()
    if sink.newest is not None and (watermark is None or sink.newest > watermark):
        w.merchant.events_watermark = sink.newest.isoformat()
    return read


def _late_commits(session: Session, w: Writer, since: datetime, watermark: datetime) -> list[str]:
    """Ids of events received in ``[since, watermark]`` that the mirror lacks: a transaction
    that committed after the previous sync read past their ``received_at``. Reads only ids."""
    if since > watermark:
        return []
    window = session.scalars(
        select(Event.event_id).where(
            Event.merchant_id == w.merchant_id, Event.received_at >= since, Event.received_at <= watermark
        )
    ).all()
    if not window:
        return []
    mirrored = _mirrored_event_ids(w, since)
    return sorted(set(window) - mirrored)


def _mirrored_event_ids(w: Writer, since: datetime) -> set[str]:
    """Ids of mirrored events received at or after ``since`` (files whose newest row is older
    are not opened)."""
    ids: set[str] = set()
    for path, meta in w.merchant.files["events"].items():
        if datetime.fromisoformat(meta["max_received_at"]) < since:
            continue
        table = pq.read_table(
            w.root / path, columns=["event_id", "received_at"], schema=store.EVENTS_SCHEMA
        ).filter(
            pc.field("received_at") >= pa.scalar(since, type=store.EVENTS_SCHEMA.field("received_at").type)
        )
        ids.update(table.column("event_id").to_pylist())
    return ids
