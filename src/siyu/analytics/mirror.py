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
5. **stage ledger** — entries recorded since the newest mirrored one (less :data:`OVERLAP`, for
   late commits), de-duplicated by ``(member_id, seq)``; a lifecycle rebuild, or a count that
   disagrees with the state store, rewrites the mirror's copy whole;
6. **compaction** of partitions left with more than :data:`MAX_PARTS` files,

then replaces the state file, which is what makes the new files visible at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import func, select
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
from siyu.kit.clock import iso_or_none
from siyu.lifecycle.models import StageTransition
from siyu.members.models import Member, MemberStatus
from siyu.tenancy import facade as tenancy

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


def _transition_rows(merchant_id: str, since: datetime | None) -> Any:
    t = StageTransition.__table__
    statement = select(
        t.c.member_id, t.c.seq, t.c.from_stage, t.c.to_stage, t.c.effective_on, t.c.recorded_at, t.c.cause
    ).where(t.c.merchant_id == merchant_id)
    return statement if since is None else statement.where(t.c.recorded_at >= since)


def _sync_transitions(session: Session, w: Writer) -> int:
    """Append the ledger entries recorded since the previous sync; rewrite the mirror's copy
    whole if the ledger was rewritten.

    First a probe from the index ``(merchant_id, recorded_at)``: the ledger's size and its
    oldest and newest ``recorded_at``. Unchanged since the previous sync, and the newest entry
    older than :data:`OVERLAP`, there is nothing to do (an idle sync reads no entry). Otherwise
    the entries recorded from :data:`OVERLAP` before the newest mirrored one are read — a
    transaction may commit after a later one, and its entries carry its start — and compared by
    ``(member_id, seq)`` with the mirrored entries of that window: new ones are appended. A changed
    or vanished entry (``siyu lifecycle rebuild`` rewrites the ledger), or a size that does not
    add up (entries committed later than the overlap), rewrites the mirror's copy whole. So a
    round's work is what was recorded since the previous one, not the day's ledger."""
    files = w.merchant.files["stage_transitions"]
    t = StageTransition
    mine = t.merchant_id == w.merchant_id
    # three subqueries: SQLite answers min() and max() from the index only when each is alone
    count, oldest, newest = session.execute(
        select(
            select(func.count()).where(mine).scalar_subquery(),
            select(func.min(t.recorded_at)).where(mine).scalar_subquery(),
            select(func.max(t.recorded_at)).where(mine).scalar_subquery(),
        )
    ).one()
    probe = [int(count), _iso(oldest), _iso(newest)]
    newest_at = _aware(newest)
    recent = newest_at is not None and newest_at >= w.now - OVERLAP
    mark = _newest_mirrored(files)
    if probe == w.merchant.transitions_probe and not recent and mark is not None:
        return 0
    # no mark: nothing mirrored yet, or a mirror from before the ledger was watched by recorded_at
    whole = mark is None
    fresh = store.TRANSITIONS_SCHEMA.empty_table()
    if mark is not None:
        since = mark - OVERLAP
        table = bulk.read_table(session, _transition_rows(w.merchant_id, since), store.TRANSITIONS_SCHEMA)
        fresh, changed = _window_diff(table, _mirrored_since(w, since))
        whole = changed or w.merchant.rows("stage_transitions") + fresh.num_rows != count
    if whole:
        fresh = bulk.read_table(session, _transition_rows(w.merchant_id, None), store.TRANSITIONS_SCHEMA)
        w.retire("stage_transitions", list(files))
    if fresh.num_rows:
        w.write(
            "stage_transitions",
            w.directory("stage_transitions"),
            with_key(fresh.sort_by("recorded_at"), w.keys),
            max_recorded_at=pc.max(fresh.column("recorded_at")).as_py().isoformat(),
        )
    w.merchant.transitions_probe = probe
    return int(fresh.num_rows)


def _newest_mirrored(files: dict[str, dict[str, Any]]) -> datetime | None:
    """The newest ``recorded_at`` the mirror's ledger files hold (their ``max_recorded_at``);
    ``None`` when there are none, or when a file predates that field (copy the ledger whole)."""
    marks = [meta.get("max_recorded_at") for meta in files.values()]
    if not marks or any(m is None for m in marks):
        return None
    return max(datetime.fromisoformat(str(m)) for m in marks)


def _aware(value: datetime | str | None) -> datetime | None:
    """A ``recorded_at`` from an aggregate: an aware datetime (SQLite may hand back the text)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(value: datetime | str | None) -> str | None:
    return iso_or_none(_aware(value))


_KEY = ["member_id", "seq"]
_VALUES = [f.name for f in store.TRANSITIONS_SCHEMA if f.name not in _KEY]


def _window_diff(current: pa.Table, mirrored: pa.Table) -> tuple[pa.Table, bool]:
    """The entries of ``current`` (the state store's window) that ``mirrored`` (the mirror's
    window) lacks, and whether any mirrored entry differs or is gone — vectorised: a window holds
    a minute or more of a busy merchant's ledger."""
    current_keys, mirrored_keys = _keys(current), _keys(mirrored)
    fresh = current.filter(pc.invert(pc.is_in(current_keys, value_set=mirrored_keys)))
    if not pc.all(pc.is_in(mirrored_keys, value_set=current_keys), min_count=0).as_py():
        return fresh, True  # a mirrored entry no longer in the ledger
    both = current.join(mirrored, keys=_KEY, join_type="inner", right_suffix="__mirrored")
    for name in _VALUES:
        left, right = both.column(name), both.column(f"{name}__mirrored")
        same = pc.or_kleene(pc.equal(left, right), pc.and_(pc.is_null(left), pc.is_null(right)))
        if not pc.all(pc.fill_null(same, False), min_count=0).as_py():
            return fresh, True
    return fresh, False


def _mirrored_since(w: Writer, since: datetime) -> pa.Table:
    """The mirrored ledger entries recorded at or after ``since`` (files whose newest entry is
    older are not opened)."""
    ledger = w.merchant.files["stage_transitions"]
    recent = [p for p, meta in ledger.items() if datetime.fromisoformat(meta["max_recorded_at"]) >= since]
    moment = pa.scalar(since, type=store.TRANSITIONS_SCHEMA.field("recorded_at").type)
    # files are written sorted by recorded_at, so the row groups' statistics skip the older ones
    tables = [
        pq.read_table(w.root / p, schema=store.TRANSITIONS_SCHEMA, filters=pc.field("recorded_at") >= moment)
        for p in sorted(recent)
    ]
    return pa.concat_tables(tables) if tables else store.TRANSITIONS_SCHEMA.empty_table()


def _keys(table: pa.Table) -> pa.Array:
    """``member_id:seq`` per entry (one column to test membership on)."""
    seq = pc.cast(table.column("seq"), pa.string())
    return pc.binary_join_element_wise(table.column("member_id"), seq, ":").combine_chunks()


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
        latest = max(datetime.fromisoformat(ledger[p]["max_recorded_at"]) for p in parts)
        table = store.read_parquet(w.root, parts, store.TRANSITIONS_FILE_SCHEMA).sort_by("recorded_at")
        w.retire("stage_transitions", parts)
        w.write(
            "stage_transitions", w.directory("stage_transitions"), table, max_recorded_at=latest.isoformat()
        )
    keys = w.merchant.files["member_keys"]
    if len(keys) > MAX_PARTS:
        parts = sorted(keys)
        table = store.read_parquet(w.root, parts, store.KEYS_SCHEMA)
        w.retire("member_keys", parts)
        w.write("member_keys", w.directory("member_keys"), table)
