"""The columnar mirror: the state store's events, merges, member snapshots and stage ledger as
Parquet under one root, kept current by watermark (``siyu analytics sync``, and a loop inside
``siyu serve``) and read by DuckDB (:mod:`siyu.analytics.duck`). Layout: docs/analytics-layout.md.

One sync of a merchant reads the state store in one snapshot (``REPEATABLE READ`` on
PostgreSQL; SQLite's read transaction is one already), so the merge map, the events, the erased
members and the member snapshot it writes agree with each other. In order:

1. **merge map** — every merged id → its final survivor, rewritten when it changed;
2. **events** received after the watermark, and those received from :data:`OVERLAP` before
   the previous sync that the mirror lacks (a batch that committed late; compared by
   ``event_id``), one new part file per local date touched; events keep the member id they
   arrived with;
3. **erasure** — members erased since the previous snapshot: only the event files holding their
   events (or events of members merged into them) are rewritten, properties cleared;
4. **member snapshot** of the merchant's local day (rewritten while the day lasts);
5. **stage ledger** — entries from the last effective day on, de-duplicated by
   ``(member_id, seq)``; a count that disagrees with the state store (a lifecycle rebuild
   rewrote the ledger) rewrites the mirror's copy whole;
6. **compaction** of partitions left with more than :data:`MAX_PARTS` files,

then replaces the state file, which is what makes the new files visible at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.orm import Session

from siyu.analytics import mirror_store as store
from siyu.analytics.relations import local_date, member_snapshot
from siyu.db import Database
from siyu.events.models import Event
from siyu.lifecycle.models import StageTransition
from siyu.members.models import Member, MemberStatus
from siyu.tenancy import facade as tenancy

REBUILD_CAUSE = "rebuild"
"""``StageTransition.cause`` of the entries :func:`siyu.lifecycle.service.rebuild` writes."""

OVERLAP = timedelta(seconds=60)
"""How late a transaction may commit after it set its events' ``received_at`` and still be
mirrored (ingestion commits at the end of its request; an import at the end of each chunk).
A sync looks again at the ids received from this long before the previous sync; only those
the mirror lacks are read in full."""
MAX_PARTS = 8
"""A partition with more part files than this is compacted into one."""
FLUSH_ROWS = 200_000
"""Event rows buffered before they are written out (one file per local date)."""

Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)``: ``what`` names the merchant and phase."""


@dataclass(frozen=True)
class MerchantSync:
    """What one sync did for one merchant."""

    merchant_id: str
    events: int
    """Event rows newly mirrored."""
    erased: int
    """Members whose erasure was propagated to the event files."""
    merged: int
    """Merged ids in the merge map (``-1``: unchanged, not rewritten)."""
    members: int
    """Rows of the member snapshot written (``0``: not rewritten)."""
    transitions: int
    """Ledger entries newly mirrored (all of them when rewritten whole)."""
    files_written: int
    files_retired: int
    watermark: datetime | None


@dataclass(frozen=True)
class SyncReport:
    merchants: tuple[MerchantSync, ...]
    files_deleted: int
    """Retired files past their grace and orphans removed at the end."""
    skipped: bool = False
    """Another sync held the lock (only when not waiting for it)."""

    @property
    def events(self) -> int:
        return sum(m.events for m in self.merchants)


def sync(
    database: Database,
    root: Path,
    *,
    now: datetime,
    merchant_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
    snapshot_every: float = 0.0,
    wait: bool = True,
) -> SyncReport:
    """Bring the mirror under ``root`` up to date with the state store (all merchants, or some).

    ``now`` dates the member snapshot (the merchant's local day) and retirements.
    ``snapshot_every`` > 0 rewrites a day's member snapshot only that many seconds after the last
    one unless events, merges or erasures arrived (the serve loop; the CLI rewrites each time).
    With ``wait=False`` a sync already running makes this one return ``skipped`` at once.
    """
    with store.locked(root, wait=wait) as acquired:
        if not acquired:
            return SyncReport((), 0, skipped=True)
        state = store.load_state(root)
        ids = list(merchant_ids) if merchant_ids is not None else _merchant_ids(database)
        done = []
        for merchant_id in ids:
            done.append(_sync_merchant(database, root, state, merchant_id, now, progress, snapshot_every))
            store.save_state(root, state)
        deleted = store.collect_garbage(root, state, now)
        store.save_state(root, state)
        return SyncReport(tuple(done), deleted)


def rebuild(database: Database, root: Path, *, now: datetime, progress: Progress | None = None) -> SyncReport:
    """Mirror everything again from the state store into new files, then switch to them with one
    replacement of the state file (readers see the old mirror or the new one, never a mix); the
    old files are retired and deleted after their grace."""
    with store.locked(root):
        old = store.load_state(root)
        fresh = store.MirrorState(next_part=old.next_part, retired=dict(old.retired))
        done = [
            _sync_merchant(database, root, fresh, merchant_id, now, progress, 0.0)
            for merchant_id in _merchant_ids(database)
        ]
        store.retire(fresh, sorted(old.live_files() - fresh.live_files()), now)
        store.save_state(root, fresh)
        deleted = store.collect_garbage(root, fresh, now)
        store.save_state(root, fresh)
        return SyncReport(tuple(done), deleted)


def _merchant_ids(database: Database) -> list[str]:
    with database.reading() as session:
        return tenancy.merchant_ids(session)


# --- one merchant ------------------------------------------------------------------------------


@dataclass
class _Writer:
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

    def write(self, table_name: str, directory: str, table: pa.Table, **extra: Any) -> str:
        relpath = f"{directory}/{self.state.part_name()}"
        size = store.write_parquet(self.root, relpath, table)
        self.merchant.files[table_name][relpath] = {"rows": table.num_rows, "bytes": size, **extra}
        self.written += 1
        return relpath

    def retire(self, table_name: str, paths: Sequence[str]) -> None:
        for path in paths:
            del self.merchant.files[table_name][path]
        store.retire(self.state, list(paths), self.now)
        self.retired += len(paths)

    def directory(self, table_name: str, partition: str | None = None) -> str:
        base = f"{table_name}/merchant_id={self.merchant_id}"
        return f"{base}/{partition}" if partition else base


def _sync_merchant(
    database: Database,
    root: Path,
    state: store.MirrorState,
    merchant_id: str,
    now: datetime,
    progress: Progress | None,
    snapshot_every: float,
) -> MerchantSync:
    with database.reading() as session:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        zone = tenancy.merchant_zone(session, merchant_id)
        ms = state.merchants.setdefault(merchant_id, store.MerchantState(zone=zone.key))
        ms.zone = zone.key
        w = _Writer(root, state, ms, merchant_id, now)
        merge_map, merged = _sync_merge_map(session, w)
        events = _sync_events(session, w, zone, dialect, progress)
        known_erased, has_snapshot = _snapshot_erased(root, ms)
        erased_now = set(session.scalars(_erased_ids(merchant_id)))
        newly_erased = erased_now - known_erased if has_snapshot else set()
        if newly_erased:
            _erase(w, newly_erased, merge_map)
        members = 0
        if _snapshot_due(ms, now, snapshot_every, changed=bool(events or newly_erased or merged >= 0)):
            members = _write_snapshot(session, w, zone, dialect)
        transitions = _sync_transitions(session, w)
    _compact(w)
    ms.synced_at = now.isoformat()
    return MerchantSync(
        merchant_id=merchant_id,
        events=events,
        erased=len(newly_erased),
        merged=merged,
        members=members,
        transitions=transitions,
        files_written=w.written,
        files_retired=w.retired,
        watermark=datetime.fromisoformat(ms.events_watermark) if ms.events_watermark else None,
    )


def _sync_merge_map(session: Session, w: _Writer) -> tuple[dict[str, str], int]:
    """Every merged id → its final survivor (followed through chains); rewritten if changed.
    Returns the map and its size when rewritten (``-1`` when unchanged)."""
    parent: dict[str, str] = {}
    rows = session.execute(
        select(Member.id, Member.merged_into_id).where(
            Member.merchant_id == w.merchant_id, Member.merged_into_id.is_not(None)
        )
    )
    for merged_id, survivor_id in rows:
        if survivor_id is not None:
            parent[merged_id] = survivor_id
    resolved: dict[str, str] = {}
    for merged in parent:
        seen = {merged}
        survivor = parent[merged]
        while survivor in parent and survivor not in seen:
            seen.add(survivor)
            survivor = parent[survivor]
        resolved[merged] = survivor
    pairs = sorted(resolved.items())
    fingerprint = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()
    if fingerprint == w.merchant.merge_fingerprint:
        return resolved, -1
    old = list(w.merchant.files["merge_map"])
    if pairs:
        w.write("merge_map", w.directory("merge_map"), store.to_table(pairs, store.MERGE_MAP_SCHEMA))
    w.retire("merge_map", old)
    w.merchant.merge_fingerprint = fingerprint
    return resolved, len(pairs)


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


def _sync_events(
    session: Session, w: _Writer, zone: ZoneInfo, dialect: str, progress: Progress | None
) -> int:
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
    buffers: dict[date, list[tuple[Any, ...]]] = {}
    buffered = read = 0
    newest = watermark

    def flush() -> None:
        nonlocal buffered
        for day, rows in sorted(buffers.items()):
            directory = w.directory("events", f"local_date={day.isoformat()}")
            latest = max(r[5] for r in rows)
            table = store.to_table(rows, store.EVENTS_SCHEMA)
            w.write("events", directory, table, max_received_at=latest.isoformat())
            w.touched.add(directory)
        buffers.clear()
        buffered = 0

    for statement in statements:
        for row in session.execute(statement.execution_options(yield_per=FLUSH_ROWS)):
            read += 1
            if newest is None or row[5] > newest:
                newest = row[5]
            buffers.setdefault(row[4], []).append(tuple(row))
            buffered += 1
            if buffered >= FLUSH_ROWS:
                flush()
                if progress:
                    progress(f"{w.merchant_id} events", read, max(total, read))
    flush()
    if progress:
        progress(f"{w.merchant_id} events", read, max(total, read))
    if newest is not None:
        w.merchant.events_watermark = newest.isoformat()
    return read


def _late_commits(session: Session, w: _Writer, since: datetime, watermark: datetime) -> list[str]:
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


def _mirrored_event_ids(w: _Writer, since: datetime) -> set[str]:
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


def _erased_ids(merchant_id: str) -> Any:
    return select(Member.id).where(Member.merchant_id == merchant_id, Member.status == MemberStatus.ERASED)


def _latest_snapshot(ms: store.MerchantState) -> str | None:
    paths = sorted(ms.files["members"], key=lambda p: (p.split("snapshot_date=")[1].split("/")[0], p))
    return paths[-1] if paths else None


def _snapshot_erased(root: Path, ms: store.MerchantState) -> tuple[set[str], bool]:
    """The members erased as of the latest snapshot; ``False`` when there is none yet (then the
    events being mirrored now were read in the same snapshot as the erasures: nothing to redo)."""
    latest = _latest_snapshot(ms)
    if latest is None:
        return set(), False
    table = pq.read_table(root / latest, columns=["member_id", "status"], schema=store.MEMBERS_SCHEMA)
    erased = table.filter(pc.field("status") == MemberStatus.ERASED.value)
    return set(erased.column("member_id").to_pylist()), True


def _erase(w: _Writer, erased: set[str], merge_map: dict[str, str]) -> None:
    """Clear the properties of the erased members' events (as the state store's erase listener
    does), rewriting only the files that hold such events."""
    ids = erased | {merged for merged, survivor in merge_map.items() if survivor in erased}
    targets = pa.array(sorted(ids), type=pa.string())
    for path in sorted(w.merchant.files["events"]):
        table = pq.read_table(w.root / path, schema=store.EVENTS_SCHEMA)
        hit = pc.is_in(table.column("member_id"), value_set=targets)
        if not pc.any(hit).as_py():
            continue
        cleared = pc.if_else(hit, pa.scalar("{}"), table.column("properties"))
        table = table.set_column(table.schema.get_field_index("properties"), "properties", cleared)
        meta = w.merchant.files["events"][path]
        directory = path.rsplit("/", 1)[0]
        w.retire("events", [path])
        w.write("events", directory, table, max_received_at=meta["max_received_at"])


def _snapshot_due(ms: store.MerchantState, now: datetime, every: float, *, changed: bool) -> bool:
    if every <= 0 or changed or ms.snapshot_written_at is None:
        return True
    zone = ZoneInfo(ms.zone)
    last = datetime.fromisoformat(ms.snapshot_written_at)
    if last.astimezone(zone).date() != now.astimezone(zone).date():
        return True
    return (now - last).total_seconds() >= every


def _write_snapshot(session: Session, w: _Writer, zone: ZoneInfo, dialect: str) -> int:
    """The members of ``member_snapshot`` as the snapshot of the merchant's local day."""
    day = w.now.astimezone(zone).date()
    rows = [(*row, day) for row in session.execute(member_snapshot(w.merchant_id, zone, dialect))]
    directory = w.directory("members", f"snapshot_date={day.isoformat()}")
    same_day = [p for p in w.merchant.files["members"] if p.startswith(directory + "/")]
    w.write("members", directory, store.to_table(rows, store.MEMBERS_SCHEMA))
    w.retire("members", same_day)
    w.merchant.snapshot_written_at = w.now.isoformat()
    return len(rows)


def _transition_rows(merchant_id: str, since: date | None) -> Any:
    t = StageTransition.__table__
    statement = select(
        t.c.member_id, t.c.seq, t.c.from_stage, t.c.to_stage, t.c.effective_on, t.c.recorded_at, t.c.cause
    ).where(t.c.merchant_id == merchant_id)
    return statement if since is None else statement.where(t.c.effective_on >= since)


def _sync_transitions(session: Session, w: _Writer) -> int:
    """Append the ledger entries not mirrored yet; rewrite whole if the ledger was rewritten.

    First a probe — the ledger's size, and the size and newest ``recorded_at`` of the entries
    from the watermark day on — which, unchanged since the previous sync, means nothing to do
    (an idle sync then reads no entry)."""
    files = w.merchant.files["stage_transitions"]
    since = date.fromisoformat(w.merchant.transitions_watermark) if w.merchant.transitions_watermark else None
    t = StageTransition
    mine = t.merchant_id == w.merchant_id
    # the whole ledger's size and its ``rebuild`` entries (count, newest): a lifecycle rebuild may
    # rewrite entries before the watermark day and keep the size — only this says it happened
    count, rebuilt_n, rebuilt_at = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((t.cause == REBUILD_CAUSE, 1), else_=0)), 0),
            func.max(case((t.cause == REBUILD_CAUSE, t.recorded_at))),
        ).where(mine)
    ).one()
    rebuilt = [int(rebuilt_n), str(rebuilt_at) if rebuilt_at is not None else None]
    previous = w.merchant.transitions_probe
    ledger_rebuilt = previous is not None and previous[3:] != [rebuilt]
    if since is not None and not ledger_rebuilt:
        n, newest = session.execute(
            select(func.count(), func.max(t.recorded_at)).where(mine, t.effective_on >= since)
        ).one()
        if _probe(count, n, newest, rebuilt) == previous:
            return 0
    rows = [tuple(r) for r in session.execute(_transition_rows(w.merchant_id, since))]
    mirrored: dict[tuple[str, int], tuple[Any, ...]] = {}
    if since is not None:
        recent = [p for p, meta in files.items() if date.fromisoformat(meta["max_effective_on"]) >= since]
        for row in store.read_parquet(w.root, recent, store.TRANSITIONS_SCHEMA).to_pylist():
            values = tuple(row.values())
            mirrored[(values[0], values[1])] = values
    fresh = [r for r in rows if (r[0], r[1]) not in mirrored]
    conflict = ledger_rebuilt or any(mirrored.get((r[0], r[1]), r) != r for r in rows)
    if conflict or w.merchant.rows("stage_transitions") + len(fresh) != count:
        rows = fresh = [tuple(r) for r in session.execute(_transition_rows(w.merchant_id, None))]
        w.retire("stage_transitions", list(files))
    if fresh:
        latest = max(r[4] for r in fresh)
        table = store.to_table(fresh, store.TRANSITIONS_SCHEMA)
        w.write(
            "stage_transitions", w.directory("stage_transitions"), table, max_effective_on=latest.isoformat()
        )
    days = [meta["max_effective_on"] for meta in files.values()]
    w.merchant.transitions_watermark = max(days) if days else None
    window = [r for r in rows if days and r[4] >= date.fromisoformat(max(days))]
    w.merchant.transitions_probe = _probe(
        count, len(window), max((r[5] for r in window), default=None), rebuilt
    )
    return len(fresh)


def _probe(total: int, window: int, newest: datetime | None, rebuilt: list[Any]) -> list[Any]:
    return [int(total), int(window), newest.isoformat() if newest is not None else None, rebuilt]


def _compact(w: _Writer) -> None:
    """Merge the part files of partitions that have too many (late events add one per sync)."""
    events = w.merchant.files["events"]
    for directory in sorted(w.touched):
        parts = sorted(p for p in events if p.rsplit("/", 1)[0] == directory)
        if len(parts) > MAX_PARTS:
            newest = max(datetime.fromisoformat(events[p]["max_received_at"]) for p in parts)
            table = store.read_parquet(w.root, parts, store.EVENTS_SCHEMA)
            w.retire("events", parts)
            w.write("events", directory, table, max_received_at=newest.isoformat())
    ledger = w.merchant.files["stage_transitions"]
    if len(ledger) > MAX_PARTS:
        parts = sorted(ledger)
        latest = max(ledger[p]["max_effective_on"] for p in parts)
        table = store.read_parquet(w.root, parts, store.TRANSITIONS_SCHEMA)
        w.retire("stage_transitions", parts)
        w.write("stage_transitions", w.directory("stage_transitions"), table, max_effective_on=latest)
