"""The stage-ledger step of a mirror sync while a day's ledger grows (a bulk ingest, a busy day).

    python bench/mirror_ledger.py --entries 1000000 --new 10000
    python bench/mirror_ledger.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

A merchant's ledger holds ``--entries`` entries, all dated today and recorded over the last
hours (what a day of heavy ingestion leaves). The mirror is synced once; then, ``--rounds``
times, ``--new`` entries are appended (recorded now, as one ingest batch would) and the mirror
is synced again, as the ``siyu serve`` loop does every few seconds. Measured in one run:

* **round**: one sync after ``--new`` new entries (the ledger step is the work; the merchant has
  no events or members), the median of the rounds;
* **idle**: a sync with nothing new, one second later (the last entries are still inside the
  60 s overlap, so it re-reads them), and **quiet**: one more after the overlap has passed;
* **anchor**: a plain bulk read of just the new entries into Arrow (``mirror_bulk.read_table``),
  the least a round can read.

The ratio is round ÷ anchor: how many times the least work a round costs. A sync that re-read
the whole day would grow with ``--entries``; one that reads only what is new stays flat.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from siyu.analytics import mirror, mirror_bulk
from siyu.analytics import mirror_store as store
from siyu.db import Database
from siyu.lifecycle.models import StageTransition
from siyu.migrate import upgrade
from siyu.tenancy import facade as tenancy

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
STAGES = ("stranger", "high_potential", "first_order", "repeat", "super")


def _database(args: argparse.Namespace, work: Path) -> Database:
    if args.database_url:
        base = args.database_url
        schema = "bench_mirror_ledger"
        with sa.create_engine(base).begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in base else "?"
        url = f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    else:
        url = f"sqlite:///{work / 'ledger.db'}"
    upgrade(sa.create_engine(url))
    return Database(url)


def _append(database: Database, merchant_id: str, start: int, count: int, recorded: list[datetime]) -> None:
    """Entries ``start … start+count`` (one member each, seq 1), dated today, recorded at the
    times in ``recorded`` (cycled)."""
    today = NOW.date()
    rows = [
        {
            "merchant_id": merchant_id,
            "member_id": f"mbr_bench{n:020d}",
            "seq": 1,
            "from_stage": None,
            "to_stage": STAGES[n % len(STAGES)],
            "effective_on": today,
            "recorded_at": recorded[n % len(recorded)],
            "cause": "event",
        }
        for n in range(start, start + count)
    ]
    with database.engine.begin() as connection:
        for offset in range(0, len(rows), 50_000):
            connection.execute(sa.insert(StageTransition.__table__), rows[offset : offset + 50_000])


def _anchor(database: Database, merchant_id: str, since: datetime) -> tuple[int, float]:
    t = StageTransition.__table__
    statement = sa.select(
        t.c.member_id, t.c.seq, t.c.from_stage, t.c.to_stage, t.c.effective_on, t.c.recorded_at, t.c.cause
    ).where(t.c.merchant_id == merchant_id, t.c.recorded_at >= since)
    with database.reading() as session:
        started = time.perf_counter()
        table = mirror_bulk.read_table(session, statement, store.TRANSITIONS_SCHEMA)
        return table.num_rows, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger entries dated today")
    parser.add_argument("--new", type=int, default=10_000, help="entries appended before each round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="PostgreSQL base URL (else a SQLite file in a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-ledger-"))
    database = _database(args, work)
    root = work / "mirror"
    try:
        with database.unit_of_work() as session:
            merchant_id = tenancy.create_merchant(session, name="台账基准").id
        hours = [NOW - timedelta(hours=6) + timedelta(seconds=s) for s in range(0, 6 * 3600, 5)]
        started = time.perf_counter()
        _append(database, merchant_id, 0, args.entries, hours)
        print(
            f"{database.engine.dialect.name}: {args.entries:,} entries dated today written in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        started = time.perf_counter()
        mirror.sync(database, root, now=NOW, merchant_ids=[merchant_id])
        print(f"first sync (whole ledger): {time.perf_counter() - started:.2f} s", flush=True)
        rounds, anchors, idles = [], [], []
        for number in range(args.rounds):
            at = NOW + timedelta(seconds=5 * (number + 1))
            _append(database, merchant_id, args.entries + number * args.new, args.new, [at])
            started = time.perf_counter()
            report = mirror.sync(database, root, now=at, merchant_ids=[merchant_id])
            rounds.append(time.perf_counter() - started)
            copied = report.merchants[0].transitions
            if copied != args.new:
                sys.exit(f"round {number}: {copied:,} entries copied, expected {args.new:,}")
            rows, seconds = _anchor(database, merchant_id, at)
            if rows != args.new:
                sys.exit(f"anchor read {rows:,} rows, expected {args.new:,}")
            anchors.append(seconds)
            started = time.perf_counter()
            mirror.sync(database, root, now=at + timedelta(seconds=1), merchant_ids=[merchant_id])
            idles.append(time.perf_counter() - started)
        quiet_at = NOW + timedelta(seconds=5 * args.rounds) + mirror.OVERLAP + timedelta(seconds=2)
        started = time.perf_counter()
        mirror.sync(database, root, now=quiet_at, merchant_ids=[merchant_id])
        quiet_s = time.perf_counter() - started
        held = store.load_state(root).merchants[merchant_id].rows("stage_transitions")
        if held != args.entries + args.rounds * args.new:
            sys.exit(f"the mirror holds {held:,} entries, expected {args.entries + args.rounds * args.new:,}")
        round_s, anchor_s, idle_s = (statistics.median(x) for x in (rounds, anchors, idles))
        print(
            f"round: sync after {args.new:,} new entries   {round_s * 1000:9.1f} ms (median of {args.rounds})"
        )
        print(f"idle:  sync with nothing new          {idle_s * 1000:9.1f} ms")
        print(f"quiet: the same after the overlap     {quiet_s * 1000:9.1f} ms")
        print(f"anchor: bulk read of the new entries  {anchor_s * 1000:9.1f} ms")
        print(f"ratio round/anchor {round_s / anchor_s:.1f}")
    finally:
        database.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
