"""The daily lifecycle sweep: members re-classified per second, against reading their events.

    python bench/lifecycle.py --members 50000 [--events-per-member 6] [--database-url postgresql+psycopg://…]

Set-up (not timed): ``--members`` members, each with a few visits and orders 61–70 days ago,
ingested through the real path 61 days ago — so on the benchmark's "today" every
one of them is due to turn dormant. Figures: members/s of :func:`siyu.lifecycle.service.sweep`
(find the due members by index, lock their stage rows — which carry each member's brief of recent
events —, read their rollups, classify, write the stage rows and one ledger entry each), in chunks
of 500 as the upkeep runs it. The anchor: the same members' events of the lookback window read
with one plain driver query per 500 members (what the sweep read before the briefs, and still
reads for a member without one). The ratio is sweep ÷ anchor. A second sweep the same day must
find nothing due (printed).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
import siyu.wiring  # noqa: F401  (listeners)
from ingest import drop_schema, fresh_url
from siyu.config import load_settings
from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.pii import IdentifierVault
from siyu.kit.runtime import tune_gc
from siyu.lifecycle import service
from siyu.migrate import upgrade
from siyu.tenancy import facade

console = Console()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--events-per-member", type=int, default=6)
    parser.add_argument("--database-url", default=os.environ.get("SIYU_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        url, schema = fresh_url(args.database_url, Path(tmp_dir))
        try:
            run(url, Path(tmp_dir), args)
        finally:
            drop_schema(args.database_url, schema)


def run(url: str, tmp: Path, args: argparse.Namespace) -> None:
    db = Database(url)
    upgrade(db.engine)
    settings = load_settings(data_dir=tmp, database_url=url, secret_key="b" * 48, console=False)
    vault = IdentifierVault(settings.resolved_secret_key())
    with db.unit_of_work() as session:
        merchant = facade.create_merchant(session, name="bench", timezone="Asia/Shanghai").id
    today = datetime.now(UTC)
    rng = random.Random(7)
    tune_gc()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("set-up (ingestion, not timed)", total=args.members)
        for start in range(0, args.members, 2_000):
            batch = []
            for m in range(start, min(start + 2_000, args.members)):
                for k in range(args.events_per_member):
                    when = today - timedelta(days=70 - k % 9, hours=rng.randrange(24))
                    order = k % 3 == 0
                    batch.append(
                        {
                            "event_id": f"e{m}-{k}",
                            "type": "order_paid" if order else "visit",
                            "occurred_at": when.isoformat(),
                            "identities": {"member_no": f"M{m:08d}"},
                            "properties": {"order_id": f"o{m}-{k}", "amount_fen": 2_000} if order else {},
                        }
                    )
            with db.unit_of_work() as session:
                verdicts = ingest(session, vault, merchant, batch, now=today - timedelta(days=61))
            assert all(v.status == "accepted" for v in verdicts), "set-up events refused"
            progress.update(task, completed=min(start + 2_000, args.members))
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    # the sweep
    began = time.perf_counter()
    with db.unit_of_work() as session:
        result = service.sweep(session, merchant, now=today)
    swept = time.perf_counter() - began
    with db.unit_of_work() as session:
        again = service.sweep(session, merchant, now=today)
    # the anchor: the events of the same members in the lookback window, one query per 500
    since = today - timedelta(days=180)
    with db.engine.connect() as connection:
        ids = [r[0] for r in connection.execute(text("SELECT id FROM members ORDER BY id"))]
        began = time.perf_counter()
        rows = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(f":m{i}" for i in range(len(chunk)))
            rows += len(
                connection.execute(
                    text(
                        "SELECT member_id, type, occurred_at, amount_fen FROM events "
                        f"WHERE merchant_id = :merchant AND member_id IN ({marks}) AND occurred_at >= :since"
                    ),
                    {"merchant": merchant, "since": since, **{f"m{i}": v for i, v in enumerate(chunk)}},
                ).fetchall()
            )
        anchor = time.perf_counter() - began
    db.dispose()
    console.print(
        f"engine {db.engine.dialect.name}: {args.members:,} members due, {rows:,} events in their window"
    )
    console.print(
        f"sweep          {result.members / swept:>9,.0f} members/s  ({result.members:,} members, "
        f"{result.transitions:,} ledger entries, {swept:.1f} s)"
    )
    console.print(f"read (anchor)  {len(ids) / anchor:>9,.0f} members/s  (their events, plain driver query)")
    console.print(f"ratio sweep/anchor {anchor / swept:.3f}")
    console.print(f"second sweep the same day: {again.members} members due")


if __name__ == "__main__":
    main()
