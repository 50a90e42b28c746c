"""The outbox: how fast a fan-out is written, and how fast workers drain it.

    python bench/outbox.py [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                           [--items 50000] [--batch 5000] [--workers 2]

On a fresh SQLite file (default) or a fresh PostgreSQL schema. Printed:

* **enqueue_many** items/s — ``--items`` message-sized items written in transactions of
  ``--batch`` (what a campaign fan-out does), against the anchor: the same rows inserted into the
  same table by :func:`siyu.kit.bulk.execute_many` with a plain ``INSERT`` (no conflict check, no
  id generation) — the driver's ceiling for this table;
* a replay of the first batch (every key exists): how fast duplicates are recognised;
* **drain** items/s — ``--workers`` threads running :func:`siyu.outbox.facade.run_once` with a
  handler that does nothing, i.e. the outbox's own cost per delivery (claim, attempt log, outcome).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from sqlalchemy import Table, delete, insert

sys.path.insert(0, str(Path(__file__).parent))
from ingest import drop_schema, fresh_url
from siyu.db import Database
from siyu.kit.bulk import execute_many
from siyu.kit.ids import IdKind, new_id
from siyu.migrate import upgrade
from siyu.outbox import facade as outbox
from siyu.outbox.facade import NewItem, OutboxItemView, RetryPolicy
from siyu.outbox.models import OutboxAttempt, OutboxItem
from siyu.tenancy import facade as tenancy

console = Console()
T0 = datetime(2026, 6, 1, tzinfo=UTC)
ITEMS = cast(Table, OutboxItem.__table__)


@outbox.handles("bench.noop")
def noop(_db: Database, _item: OutboxItemView) -> None:
    return None


def payload(n: int) -> dict[str, Any]:
    return {
        "message_id": f"msg_{n:010d}",
        "member_id": f"mbr_{n:010d}",
        "template_id": "tpl_bench",
        "channel": "sms",
    }


def run(url: str, args: argparse.Namespace) -> None:
    db = Database(url)
    upgrade(db.engine)
    with db.unit_of_work() as session:
        merchant = tenancy.create_merchant(session, name="bench").id

    # anchor: plain bulk INSERT of the same rows
    started = time.perf_counter()
    for start in range(0, args.items, args.batch):
        rows = [
            {
                "merchant_id": merchant,
                "id": new_id(IdKind.OUTBOX_ITEM),
                "kind": "bench.noop",
                "key": f"anchor:{n}",
                "payload": payload(n),
                "status": "pending",
                "attempts": 0,
                "available_at": T0,
                "created_at": T0,
                "updated_at": T0,
            }
            for n in range(start, min(start + args.batch, args.items))
        ]
        with db.unit_of_work() as session:
            execute_many(session, ITEMS, "bench.outbox.insert", lambda _d: insert(ITEMS), rows)
    anchor = args.items / (time.perf_counter() - started)
    with db.unit_of_work() as session:
        session.execute(delete(OutboxItem))

    started = time.perf_counter()
    new = 0
    for start in range(0, args.items, args.batch):
        items = [
            NewItem("bench.noop", f"msg:{n}", payload(n))
            for n in range(start, min(start + args.batch, args.items))
        ]
        with db.unit_of_work() as session:
            new += outbox.enqueue_many(session, merchant, items, now=T0)
    written = args.items / (time.perf_counter() - started)
    assert new == args.items

    started = time.perf_counter()
    with db.unit_of_work() as session:
        again = outbox.enqueue_many(
            session,
            merchant,
            [NewItem("bench.noop", f"msg:{n}", payload(n)) for n in range(args.batch)],
            now=T0,
        )
    replay = args.batch / (time.perf_counter() - started)
    assert again == 0

    drained = [0]
    lock = threading.Lock()
    policy = RetryPolicy(lease=RetryPolicy().lease)

    def work(index: int) -> None:
        while True:
            n = outbox.run_once(db, limit=100, policy=policy, worker=f"bench-{index}")
            with lock:
                drained[0] += n
            if n == 0:
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drain = drained[0] / (time.perf_counter() - started)
    assert drained[0] == args.items

    engine = db.engine.dialect.name
    console.print(f"[bold]outbox on {engine}[/] ({args.items:,} items, transactions of {args.batch:,})")
    console.print(f"  enqueue_many      {written:>10,.0f} items/s   (ratio to anchor {written / anchor:.2f})")
    console.print(f"  anchor: bulk insert {anchor:>8,.0f} rows/s    (kit.bulk.execute_many, plain INSERT)")
    console.print(f"  replay (all dups) {replay:>10,.0f} items/s")
    console.print(
        f"  drain, {args.workers} workers  {drain:>10,.0f} items/s   (no-op handler: claim + log + outcome)"
    )
    with db.unit_of_work() as session:
        session.execute(delete(OutboxAttempt))
        session.execute(delete(OutboxItem))
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            run(url, args)
        finally:
            drop_schema(args.database_url, schema)


if __name__ == "__main__":
    main()
