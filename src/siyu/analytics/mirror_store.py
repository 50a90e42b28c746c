"""The files of the columnar mirror: Parquet schemas, the state file (manifest), the lock, and
atomic writes. :mod:`siyu.analytics.mirror` decides *what* to write; this module only *how*.

The state file ``ROOT/_state.json`` lists every live file per merchant and table, with its rows
and bytes, next to the watermarks. A reader takes its file list from there, never from a
directory listing: a file is written under a fresh name (temp file + rename), becomes visible
only when the state file naming it replaces the previous one (``os.replace``: atomic), and a
file the state file no longer names ("retired") is deleted only :data:`RETIRE_GRACE_SECONDS`
later, so a query planned on the previous state can still read it. See docs/analytics-layout.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

LAYOUT_VERSION = 2
"""2: every row naming a member carries its integer ``member_key`` (:mod:`siyu.analytics.mirror_keys`).
A state file of another version is rebuilt by the next sync (:class:`LayoutOutdated`)."""
STATE_FILE = "_state.json"
LOCK_FILE = ".lock"
TMP_DIR = ".tmp"
RETIRE_GRACE_SECONDS = 120.0
"""How long a retired file stays on disk for queries planned before it was retired."""
TABLES = ("events", "merge_map", "members", "stage_transitions", "member_keys", "member_months")

_UTC_TS = pa.timestamp("us", tz="UTC")
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("member_id", pa.string()),
        ("type", pa.string()),
        ("occurred_at", _UTC_TS),
        ("local_date", pa.date32()),
        ("received_at", _UTC_TS),
        ("channel", pa.string()),
        ("store_id", pa.string()),
        ("amount_fen", pa.int64()),
        ("properties", pa.string()),
    ]
)
MERGE_MAP_SCHEMA = pa.schema([("merged_id", pa.string()), ("survivor_id", pa.string())])
"""``EVENTS_SCHEMA``, ``MERGE_MAP_SCHEMA``, ``MEMBERS_SCHEMA`` and ``TRANSITIONS_SCHEMA`` are the
columns read from the state store; the files hold them plus the member keys
(``*_FILE_SCHEMA``)."""
MEMBERS_SCHEMA = pa.schema(
    [
        ("member_id", pa.string()),
        ("status", pa.string()),
        ("created_at", _UTC_TS),
        ("created_on", pa.date32()),
        ("acquisition_channel", pa.string()),
        ("acquisition_store_id", pa.string()),
        ("acquisition_campaign", pa.string()),
        ("acquisition_referrer", pa.string()),
        ("first_order_at", _UTC_TS),
        ("first_order_on", pa.date32()),
        ("order_count", pa.int64()),
        ("total_spend_fen", pa.int64()),
        ("refund_fen", pa.int64()),
        ("stage", pa.string()),
        ("tier", pa.string()),
        ("operable", pa.bool_()),
        ("points_balance", pa.int64()),
        ("snapshot_date", pa.date32()),
    ]
)
TRANSITIONS_SCHEMA = pa.schema(
    [
        ("member_id", pa.string()),
        ("seq", pa.int32()),
        ("from_stage", pa.string()),
        ("to_stage", pa.string()),
        ("effective_on", pa.date32()),
        ("recorded_at", _UTC_TS),
        ("cause", pa.string()),
    ]
)

KEYS_SCHEMA = pa.schema([("member_id", pa.string()), ("member_key", pa.int32())])
_KEY = pa.int32()
EVENTS_FILE_SCHEMA = EVENTS_SCHEMA.append(pa.field("member_key", _KEY))
MERGE_MAP_FILE_SCHEMA = MERGE_MAP_SCHEMA.append(pa.field("merged_key", _KEY)).append(
    pa.field("survivor_key", _KEY)
)
MEMBERS_FILE_SCHEMA = MEMBERS_SCHEMA.append(pa.field("member_key", _KEY))
TRANSITIONS_FILE_SCHEMA = TRANSITIONS_SCHEMA.append(pa.field("member_key", _KEY))


def to_table(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    """Rows (tuples in schema order) as an Arrow table of exactly ``schema``."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(list(c), type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


@dataclass
class MerchantState:
    """What the mirror holds of one merchant: watermarks and live files per table."""

    zone: str
    events_watermark: str | None = None
    snapshot_written_at: str | None = None
    synced_at: str | None = None
    merge_fingerprint: str | None = None
    transitions_probe: list[Any] | None = None
    next_member_key: int = 0
    """The key the next new member id gets (:mod:`siyu.analytics.mirror_keys`)."""
    facts_through: str | None = None
    """``member_months`` covers the events received up to this instant
    (:mod:`siyu.analytics.mirror_facts`); ``None``: no facts."""
    facts_events: int = 0
    """Events the mirror held when the facts were last built (how stale they are: the events since)."""
    files: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {t: {} for t in TABLES})
    """``files[table][relative path] = {"rows", "bytes", and per table: "max_received_at"…}``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "events_watermark": self.events_watermark,
            "snapshot_written_at": self.snapshot_written_at,
            "synced_at": self.synced_at,
            "merge_fingerprint": self.merge_fingerprint,
            "transitions_probe": self.transitions_probe,
            "next_member_key": self.next_member_key,
            "facts_through": self.facts_through,
            "facts_events": self.facts_events,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MerchantState:
        files = {t: dict(data.get("files", {}).get(t, {})) for t in TABLES}
        return cls(
            zone=data["zone"],
            events_watermark=data.get("events_watermark"),
            snapshot_written_at=data.get("snapshot_written_at"),
            synced_at=data.get("synced_at"),
            merge_fingerprint=data.get("merge_fingerprint"),
            transitions_probe=data.get("transitions_probe"),
            next_member_key=int(data.get("next_member_key", 0)),
            facts_through=data.get("facts_through"),
            facts_events=int(data.get("facts_events", 0)),
            files=files,
        )

    def rows(self, table: str) -> int:
        return sum(int(f["rows"]) for f in self.files[table].values())

    def bytes(self, table: str) -> int:
        return sum(int(f["bytes"]) for f in self.files[table].values())


@dataclass
class MirrorState:
    """The whole state file."""

    merchants: dict[str, MerchantState] = field(default_factory=dict)
    next_part: int = 1
    retired: dict[str, str] = field(default_factory=dict)
    """Relative path of a file no longer live → when it was retired (ISO, UTC)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "layout_version": LAYOUT_VERSION,
            "next_part": self.next_part,
            "merchants": {m: s.to_json() for m, s in sorted(self.merchants.items())},
            "retired": self.retired,
        }

    def part_name(self) -> str:
        """A file name never used before in this root."""
        name = f"part-{self.next_part:08d}.parquet"
        self.next_part += 1
        return name

    def live_files(self) -> set[str]:
        return {p for s in self.merchants.values() for t in TABLES for p in s.files[t]}


class LayoutOutdated(ValueError):
    """The state file was written by another layout version: the mirror must be rebuilt (the
    next ``siyu analytics sync`` does it; readers fall back to the state store until then)."""


def load_state(root: Path, *, any_layout: bool = False) -> MirrorState:
    """The state file of ``root`` (an empty state when there is none yet).

    Raises :class:`LayoutOutdated` for a state file of another layout version, unless
    ``any_layout`` (a rebuild reads it only to retire its files)."""
    path = root / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return MirrorState()
    if data.get("layout_version") != LAYOUT_VERSION and not any_layout:
        raise LayoutOutdated(
            f"{path}: layout version {data.get('layout_version')}, expected {LAYOUT_VERSION};"
            " run `siyu analytics sync` (it rebuilds the mirror)"
        )
    return MirrorState(
        merchants={m: MerchantState.from_json(s) for m, s in data.get("merchants", {}).items()},
        next_part=int(data.get("next_part", 1)),
        retired=dict(data.get("retired", {})),
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_state(root: Path, state: MirrorState) -> None:
    """Replace the state file atomically (temp file, fsync, rename, fsync the directory)."""
    tmp = root / TMP_DIR / f"state-{uuid.uuid4().hex}.json"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w") as handle:
        json.dump(state.to_json(), handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, root / STATE_FILE)
    _fsync_dir(root)


ROW_GROUP_ROWS = 256 * 1024
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd"}


def write_parquet(root: Path, relpath: str, table: pa.Table) -> int:
    """Write ``table`` to ``root/relpath`` through a temp file and a rename; its size in bytes."""
    tmp, writer = open_parquet(root, table.schema)
    with writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return place(root, tmp, relpath)


def temp_path(root: Path, suffix: str) -> Path:
    """A new file name under ``ROOT/.tmp`` (the directory exists)."""
    tmp = root / TMP_DIR / f"{uuid.uuid4().hex}{suffix}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


def open_parquet(root: Path, schema: pa.Schema) -> tuple[Path, pq.ParquetWriter]:
    """A new Parquet file under ``ROOT/.tmp`` to write row groups to; :func:`place` it when closed."""
    tmp = temp_path(root, ".parquet")
    return tmp, pq.ParquetWriter(tmp, schema, **PARQUET_OPTIONS)


def place(root: Path, tmp: Path, relpath: str) -> int:
    """Move a finished temp file to ``root/relpath`` (a rename); its size in bytes."""
    target = root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target.stat().st_size


def read_parquet(root: Path, paths: list[str], schema: pa.Schema) -> pa.Table:
    """The rows of ``paths`` (relative to ``root``) as one table."""
    if not paths:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(root / p, schema=schema) for p in sorted(paths)])


@contextlib.contextmanager
def locked(root: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold ``ROOT/.lock`` (``flock``): one writer at a time, across threads and processes.

    Yields ``False`` without the lock when ``wait`` is false and another writer holds it."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def retire(state: MirrorState, paths: list[str], now: datetime) -> None:
    for path in paths:
        state.retired[path] = now.isoformat()


def collect_garbage(root: Path, state: MirrorState, now: datetime) -> int:
    """Delete retired files past their grace, and orphans (files no state names: a crashed
    writer's). Call with the lock held — then no other writer has files in flight. Files deleted."""
    deleted = 0
    cutoff = now - timedelta(seconds=RETIRE_GRACE_SECONDS)
    for path, when in list(state.retired.items()):
        if datetime.fromisoformat(when) <= cutoff:
            (root / path).unlink(missing_ok=True)
            del state.retired[path]
            deleted += 1
    known = state.live_files() | set(state.retired)
    for table in TABLES:
        base = root / table
        if not base.exists():
            continue
        for file in base.rglob("*.parquet"):
            if file.relative_to(root).as_posix() not in known:
                file.unlink(missing_ok=True)
                deleted += 1
    tmp = root / TMP_DIR
    if tmp.exists():
        for file in tmp.iterdir():
            file.unlink(missing_ok=True)
    return deleted
