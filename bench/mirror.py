"""Throughput of the analytics mirror: events per second copied from the state store to Parquet.

    python bench/mirror.py --members 20000 --events 600000
    python bench/mirror.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --schema bench_mirror --members 20000 --events 600000

    # an existing data set, read only (nothing written to the database): a rebuild and the anchors
    python bench/mirror.py --existing --out /tmp/siyu-bench-analytics.db --root /tmp/mirror-1m-sqlite

The data set is bench/segment_data.py's (generated inside the database). Measured in one run:

* **rebuild**: the whole mirror from the state store (events, member snapshot, ledger), events/s;
* **incremental**: a sync after 1 % more events arrive, events/s, and an idle sync (nothing new:
  the fixed cost the ``siyu serve`` loop pays every few seconds);
* **anchor (row path)**: the same event rows read with the same select through SQLAlchemy's
  result rows (what the mirror did before its bulk reads), then written with plain pyarrow (one
  file per local date, same schema and compression);
* **anchor (bulk read)**: the same select read by :mod:`siyu.analytics.mirror_bulk` alone (raw
  cursor / COPY into Arrow columns, nothing written) — the ceiling of the read side.

With ``--existing`` the anchors read the first ``--anchor-rows`` events only (the row path takes
minutes per million).

Prints its figures; nothing is written to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from segment_data import NOW, generate, open_engine
from siyu.analytics import mirror, mirror_bulk
from siyu.analytics import mirror_store as store
from siyu.analytics.duck import mirror_engine, mirror_relations
from siyu.db import Database
from siyu.migrate import upgrade
from siyu.tenancy import facade as tenancy


def _rate(rows: int, seconds: float) -> str:
    return f"{rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f}/s" if seconds > 0 else f"{rows:,} rows"


def _anchor_select(database: Database, merchant_id: str, zone: ZoneInfo, limit: int | None) -> Any:
    statement = mirror.event_rows(merchant_id, zone, database.engine.dialect.name, since=None)
    return statement.limit(limit) if limit else statement


def anchor(
    database: Database, merchant_id: str, out: Path, limit: int | None = None
) -> tuple[int, float, float]:
    """Read the event rows with the mirror's own select through SQLAlchemy's rows (the row path),
    then write them with plain pyarrow."""
    with database.reading() as session:
        zone = tenancy.merchant_zone(session, merchant_id)
        started = time.perf_counter()
        rows = [tuple(r) for r in session.execute(_anchor_select(database, merchant_id, zone, limit))]
        read = time.perf_counter() - started
    started = time.perf_counter()
    by_day: dict[object, list[tuple[object, ...]]] = {}
    for row in rows:
        by_day.setdefault(row[4], []).append(row)
    for day, part in by_day.items():
        target = out / f"local_date={day}"
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(store.to_table(part, store.EVENTS_SCHEMA), target / "part.parquet", compression="zstd")
    return len(rows), read, time.perf_counter() - started


def bulk_anchor(database: Database, merchant_id: str, limit: int | None = None) -> tuple[int, float]:
    """Read the same select in bulk (Arrow batches), writing nothing."""
    with database.reading() as session:
        zone = tenancy.merchant_zone(session, merchant_id)
        started = time.perf_counter()
        rows = sum(
            b.num_rows
            for b in mirror_bulk.record_batches(
                session, _anchor_select(database, merchant_id, zone, limit), store.EVENTS_SCHEMA
            )
        )
        return rows, time.perf_counter() - started


def grow(database: Database, merchant_id: str, count: int, received: datetime) -> None:
    """``count`` more events received at ``received`` (copies of old ones under new ids)."""
    with database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO events (merchant_id, event_id, member_id, type, occurred_at, received_at,"
                " channel, store_id, amount_fen, properties)"
                " SELECT merchant_id, event_id || '-late', member_id, type, occurred_at, :received,"
                " channel, store_id, amount_fen, properties FROM events WHERE merchant_id = :m"
                " ORDER BY event_id LIMIT :n"
            ),
            {"received": received, "m": merchant_id, "n": count},
        )


def existing(args: argparse.Namespace) -> None:
    """Rebuild the mirror of an existing data set into ``--root`` (the database is only read)."""
    engine = open_engine(args) if args.database_url is None else sa.create_engine(args.database_url)
    database = Database(str(engine.url.render_as_string(hide_password=False)))
    root = Path(args.root)
    shutil.rmtree(root, ignore_errors=True)
    try:
        with database.reading() as session:
            (merchant_id,) = tenancy.merchant_ids(session)
        engine_name = database.engine.dialect.name
        started = time.perf_counter()
        report = mirror.rebuild(database, root, now=NOW + timedelta(days=1))
        full = time.perf_counter() - started
        print(f"{engine_name}: rebuild (events + snapshot + ledger): {_rate(report.events, full)}")
        for m in report.merchants:
            print(f"  {m.members:,} members, {m.transitions:,} ledger entries, {m.files_written:,} files")
        limit = args.anchor_rows
        rows, read = bulk_anchor(database, merchant_id, limit)
        print(f"anchor: bulk read of the same select (first {limit:,}): {_rate(rows, read)}")
        rows, read, write = anchor(
            database, merchant_id, Path(tempfile.mkdtemp(prefix="siyu-anchor-")), limit
        )
        print(
            f"anchor: row-path read (first {limit:,}) {_rate(rows, read)}; pyarrow write {_rate(rows, write)}"
        )
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--out", default="/tmp/siyu-bench-mirror.db", help="SQLite file")
    parser.add_argument("--database-url", help="PostgreSQL base URL (else SQLite --out)")
    parser.add_argument("--schema", default="bench_mirror", help="PostgreSQL schema to fill")
    parser.add_argument("--existing", action="store_true", help="only read an existing data set")
    parser.add_argument("--root", default="/tmp/siyu-bench-mirror-root", help="mirror root with --existing")
    parser.add_argument("--anchor-rows", type=int, default=300_000, help="anchor sample with --existing")
    args = parser.parse_args()
    if args.existing:
        existing(args)
        return
    if args.database_url:  # a fresh data set each run (a previous run may have stopped half-way)
        with sa.create_engine(args.database_url).begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
    else:
        Path(args.out).unlink(missing_ok=True)
    engine = open_engine(args)
    upgrade(engine)
    started = time.perf_counter()
    merchant_id = generate(engine, members=args.members, events=args.events)
    print(
        f"data set: {args.members:,} members, {args.events:,} events ({time.perf_counter() - started:.1f} s)"
    )
    database = Database(str(engine.url.render_as_string(hide_password=False)))
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-mirror-"))
    try:
        root = work / "analytics"
        # the generated events are received one per millisecond from NOW on
        loaded = NOW + timedelta(seconds=args.events / 1000)
        started = time.perf_counter()
        report = mirror.rebuild(database, root, now=loaded + timedelta(minutes=2))
        full = time.perf_counter() - started
        engine_name = database.engine.dialect.name
        print(f"{engine_name}: rebuild (events + snapshot + ledger): {_rate(report.events, full)}")
        extra = max(1, args.events // 100)
        grow(database, merchant_id, extra, loaded + timedelta(minutes=3))
        started = time.perf_counter()
        report = mirror.sync(database, root, now=loaded + timedelta(minutes=3, seconds=5), snapshot_every=60)
        incremental = time.perf_counter() - started
        print(f"incremental sync after 1 % more events: {_rate(report.events, incremental)}")
        started = time.perf_counter()
        mirror.sync(database, root, now=loaded + timedelta(minutes=3, seconds=10), snapshot_every=60)
        print(
            f"idle sync 5 s later (ids of the last minute re-checked): {time.perf_counter() - started:.3f} s"
        )
        started = time.perf_counter()
        mirror.sync(database, root, now=loaded + timedelta(minutes=5), snapshot_every=600)
        print(f"idle sync 2 min later (nothing to re-check): {time.perf_counter() - started:.3f} s")
        rows, read, write = anchor(database, merchant_id, work / "anchor")
        print(
            f"anchor: row-path read of the same select {_rate(rows, read)};"
            f" pyarrow write {_rate(rows, write)}"
        )
        print(f"rebuild vs row-path anchor (read + write): {(read + write) / full:.1f}x faster")
        bulk_rows, bulk_read = bulk_anchor(database, merchant_id)
        print(f"anchor: bulk read of the same select {_rate(bulk_rows, bulk_read)}")
        with database.reading() as session:
            zone = tenancy.merchant_zone(session, merchant_id)
        rel = mirror_relations(root, merchant_id, zone)
        with mirror_engine(root).connect() as connection:
            started = time.perf_counter()
            count = connection.execute(sa.select(sa.func.count()).select_from(rel.events)).scalar_one()
            print(f"check: DuckDB counts {count:,} mirrored events in {time.perf_counter() - started:.3f} s")
        assert count == rows, (count, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        database.dispose()


if __name__ == "__main__":
    main()
