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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from siyu.analytics import mirror_bulk as bulk
from siyu.analytics import mirror_facts
from siyu.analytics import mirror_store as store
from siyu.analytics.mirror_events import OVERLAP as OVERLAP
from siyu.analytics.mirror_events import Progress as Progress
from siyu.analytics.mirror_events import Writer, sync_events
from siyu.analytics.mirror_events import event_rows as event_rows
from siyu.analytics.mirror_keys import with_key
from siyu.analytics.relations import member_snapshot
from siyu.db import Database
from siyu.lifecycle.models import StageTransition
from siyu.members.models import Member, MemberStatus
from siyu.tenancy import facade as tenancy

REBUILD_CAUSE = "rebuild"
"""``StageTransition.cause`` of the entries :func:`siyu.lifecycle.service.rebuild` writes."""

MAX_PARTS = 8
"""A partition with more part files than this is compacted into one."""


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
    facts: int
    """``member_months`` rows (re)built (``0``: the facts were current, or the merchant has none)."""
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
    one unless merges or erasures arrived (the serve loop: a snapshot reads every member, too much
    for every round of a busy merchant; the CLI rewrites each time).
    With ``wait=False`` a sync already running makes this one return ``skipped`` at once.
    """
    with store.locked(root, wait=wait) as acquired:
        if not acquired:
            return SyncReport((), 0, skipped=True)
        try:
            state = store.load_state(root)
        except store.LayoutOutdated:
            return _rebuild(database, root, now, progress)
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
        return _rebuild(database, root, now, progress)


def _rebuild(database: Database, root: Path, now: datetime, progress: Progress | None) -> SyncReport:
    """:func:`rebuild` with the lock held (also what a sync does to a mirror of an older layout)."""
    old = store.load_state(root, any_layout=True)
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
        w = Writer(root, state, ms, merchant_id, now)
        try:
            merge_map, merged = _sync_merge_map(session, w)
            events = sync_events(session, w, zone, dialect, progress)
            known_erased, has_snapshot = _snapshot_erased(root, ms)
            erased_now = set(session.scalars(_erased_ids(merchant_id)))
            newly_erased = erased_now - known_erased if has_snapshot else set()
            if newly_erased:
                _erase(w, newly_erased, merge_map)
            members = 0
            if _snapshot_due(ms, now, snapshot_every, changed=bool(newly_erased or merged >= 0)):
                members = _write_snapshot(session, w, zone, dialect)
            transitions = _sync_transitions(session, w)
        finally:
            w.keys.close()
    _compact(w)
    facts = mirror_facts.build_due(w)
    ms.synced_at = now.isoformat()
    return MerchantSync(
        merchant_id=merchant_id,
        events=events,
        erased=len(newly_erased),
        merged=merged,
        members=members,
        transitions=transitions,
        facts=facts,
        files_written=w.written,
        files_retired=w.retired,
        watermark=datetime.fromisoformat(ms.events_watermark) if ms.events_watermark else None,
    )


def _sync_merge_map(session: Session, w: Writer) -> tuple[dict[str, str], int]:
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
        table = store.to_table(pairs, store.MERGE_MAP_SCHEMA)
        table = with_key(table, w.keys, "merged_id", "merged_key")
        table = with_key(table, w.keys, "survivor_id", "survivor_key")
        w.write("merge_map", w.directory("merge_map"), table)
    w.retire("merge_map", old)
    w.merchant.merge_fingerprint = fingerprint
    return resolved, len(pairs)


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


def _erase(w: Writer, erased: set[str], merge_map: dict[str, str]) -> None:
    """Clear the properties of the erased members' events (as the state store's erase listener
    does), rewriting only the files that hold such events."""
    ids = erased | {merged for merged, survivor in merge_map.items() if survivor in erased}
    targets = pa.array(sorted(ids), type=pa.string())
    for path in sorted(w.merchant.files["events"]):
        table = pq.read_table(w.root / path, schema=store.EVENTS_FILE_SCHEMA)
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


def _write_snapshot(session: Session, w: Writer, zone: ZoneInfo, dialect: str) -> int:
    """The members of ``member_snapshot`` as the snapshot of the merchant's local day."""
    day = w.now.astimezone(zone).date()
    columns = store.MEMBERS_SCHEMA.remove(store.MEMBERS_SCHEMA.get_field_index("snapshot_date"))
    table = bulk.read_table(session, member_snapshot(w.merchant_id, zone, dialect), columns)
    table = table.append_column(
        store.MEMBERS_SCHEMA.field("snapshot_date"), pa.array([day] * table.num_rows, type=pa.date32())
    )
    table = with_key(table, w.keys)
    directory = w.directory("members", f"snapshot_date={day.isoformat()}")
    same_day = [p for p in w.merchant.files["members"] if p.startswith(directory + "/")]
    w.write("members", directory, table)
    w.retire("members", same_day)
    w.merchant.snapshot_written_at = w.now.isoformat()
    return int(table.num_rows)


def _transition_rows(merchant_id: str, since: date | None) -> Any:
    t = StageTransition.__table__
    statement = select(
        t.c.member_id, t.c.seq, t.c.from_stage, t.c.to_stage, t.c.effective_on, t.c.recorded_at, t.c.cause
    ).where(t.c.merchant_id == merchant_id)
    return statement if since is None else statement.where(t.c.effective_on >= since)


def _sync_transitions(session: Session, w: Writer) -> int:
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
    table = bulk.read_table(session, _transition_rows(w.merchant_id, since), store.TRANSITIONS_SCHEMA)
    fresh = table
    conflict = ledger_rebuilt
    if since is not None:
        mirrored: dict[tuple[str, int], tuple[Any, ...]] = {}
        recent = [p for p, meta in files.items() if date.fromisoformat(meta["max_effective_on"]) >= since]
        for row in store.read_parquet(w.root, recent, store.TRANSITIONS_SCHEMA).to_pylist():
            values = tuple(row.values())
            mirrored[(values[0], values[1])] = values
        rows = [tuple(r.values()) for r in table.to_pylist()]
        new = [(r[0], r[1]) not in mirrored for r in rows]
        fresh = table.filter(pa.array(new, type=pa.bool_()))
        conflict = conflict or any(mirrored.get((r[0], r[1]), r) != r for r in rows)
    if conflict or w.merchant.rows("stage_transitions") + fresh.num_rows != count:
        whole = _transition_rows(w.merchant_id, None)
        table = fresh = bulk.read_table(session, whole, store.TRANSITIONS_SCHEMA)
        w.retire("stage_transitions", list(files))
    if fresh.num_rows:
        latest = pc.max(fresh.column("effective_on")).as_py()
        w.write(
            "stage_transitions",
            w.directory("stage_transitions"),
            with_key(fresh, w.keys),
            max_effective_on=latest.isoformat(),
        )
    days = [meta["max_effective_on"] for meta in files.values()]
    w.merchant.transitions_watermark = max(days) if days else None
    window = table.slice(0, 0)
    if days:
        window = table.filter(pc.greater_equal(table.column("effective_on"), date.fromisoformat(max(days))))
    last_recorded = pc.max(window.column("recorded_at")).as_py() if window.num_rows else None
    w.merchant.transitions_probe = _probe(count, window.num_rows, last_recorded, rebuilt)
    return int(fresh.num_rows)


def _probe(total: int, window: int, newest: datetime | None, rebuilt: list[Any]) -> list[Any]:
    return [int(total), int(window), newest.isoformat() if newest is not None else None, rebuilt]


def _compact(w: Writer) -> None:
    """Merge the part files of partitions that have too many (late events add one per sync)."""
    events = w.merchant.files["events"]
    for directory in sorted(w.touched):
        parts = sorted(p for p in events if p.rsplit("/", 1)[0] == directory)
        if len(parts) > MAX_PARTS:
            newest = max(datetime.fromisoformat(events[p]["max_received_at"]) for p in parts)
            table = store.read_parquet(w.root, parts, store.EVENTS_FILE_SCHEMA)
            w.retire("events", parts)
            w.write("events", directory, table, max_received_at=newest.isoformat())
    ledger = w.merchant.files["stage_transitions"]
    if len(ledger) > MAX_PARTS:
        parts = sorted(ledger)
        latest = max(ledger[p]["max_effective_on"] for p in parts)
        table = store.read_parquet(w.root, parts, store.TRANSITIONS_FILE_SCHEMA)
        w.retire("stage_transitions", parts)
        w.write("stage_transitions", w.directory("stage_transitions"), table, max_effective_on=latest)
    keys = w.merchant.files["member_keys"]
    if len(keys) > MAX_PARTS:
        parts = sorted(keys)
        table = store.read_parquet(w.root, parts, store.KEYS_SCHEMA)
        w.retire("member_keys", parts)
        w.write("member_keys", w.directory("member_keys"), table)
