"""Throughput of the reachability ingest listener, against a bulk insert of the same events.

    python bench/reachability.py --events 50000 --members 5000 [--database-url postgresql+psycopg://…]

Figures: events/s through ``siyu.reachability.service``'s ingest listener alone (the events are
already resolved to members: subscriptions one-time and long-term, unsubscribes, follows,
favourites, in shuffled time order so late facts occur), one transaction per batch; and the
anchor: the same events bulk-inserted into ``events`` (what ingestion must store anyway). The
ratio listener/anchor is what the listener costs relative to that ceiling.

Both runs first process the first half of the events untimed and ``ANALYZE`` (PostgreSQL), so
the timed half meets tables that have rows and planner statistics, as in production (a freshly
created table makes PostgreSQL's planner scan a merchant's whole range instead of the index).
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
from sqlalchemy import insert, text

from ingest import drop_schema, fresh_url
from siyu.db import Database
from siyu.events.models import Event
from siyu.events.service import AcceptedEvent
from siyu.members.models import Member
from siyu.migrate import upgrade
from siyu.reachability import service
from siyu.tenancy import facade

console = Console()
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=181)


def make_events(count: int, members: int, seed: int) -> list[AcceptedEvent]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        roll = rng.random()
        properties: dict[str, object] = {}
        if roll < 0.4:
            kind = "subscribe"
            properties = {
                "channel": "mini_program",
                "template_id": f"tpl-{rng.randrange(5)}",
                "one_time": True,
            }
        elif roll < 0.5:
            kind = "subscribe"
            properties = {"channel": "mini_program", "template_id": "tpl-news", "one_time": False}
        elif roll < 0.55:
            kind = "unsubscribe"
            properties = {
                "channel": "mini_program",
                "template_id": f"tpl-{rng.randrange(5)}",
                "one_time": True,
            }
        elif roll < 0.8:
            kind = rng.choice(["follow", "follow", "unfollow"])
            properties = {"account_id": rng.choice(["a", "b"])}
        else:
            kind = rng.choice(["favorite", "favorite", "unfavorite"])
        events.append(
            AcceptedEvent(
                event_id=f"e{n}",
                member_id=f"mbr_{rng.randrange(members):026d}",
                type=kind,
                occurred_at=T0 + timedelta(seconds=rng.randrange(180 * 86400)),
                channel=None,
                store_id=None,
                amount_fen=None,
                properties=properties,
            )
        )
    return events


def prepare(url: str, members: int) -> tuple[Database, str]:
    db = Database(url)
    upgrade(db.engine)
    now = datetime.now(UTC)
    with db.unit_of_work() as session:
        merchant_id = facade.create_merchant(session, name="bench").id
        session.execute(
            insert(Member),
            [
                {
                    "merchant_id": merchant_id,
                    "id": f"mbr_{i:026d}",
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(members)
            ],
        )
    return db, merchant_id


def event_rows(merchant_id: str, events: list[AcceptedEvent], now: datetime) -> list[dict[str, object]]:
    return [
        {
            "merchant_id": merchant_id,
            "event_id": e.event_id,
            "member_id": e.member_id,
            "type": e.type,
            "occurred_at": e.occurred_at,
            "received_at": now,
            "channel": None,
            "store_id": None,
            "amount_fen": None,
            "properties": e.properties,
        }
        for e in events
    ]


def analyze(db: Database) -> None:
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()


def listen(db: Database, merchant_id: str, events: list[AcceptedEvent], batch: int, label: str) -> float:
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(events))
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            with db.unit_of_work() as session:
                service.apply_facts(
                    session,
                    merchant_id,
                    [fact for event in chunk for fact in service.facts_of_event(event)],
                    now=datetime.now(UTC),
                )
            progress.advance(task, len(chunk))
    return time.perf_counter() - started


def run_listener(url: str, events: list[AcceptedEvent], members: int, batch: int) -> float:
    """The listener alone; the events are stored beforehand (untimed) so late unsubscribes re-read them."""
    db, merchant_id = prepare(url, members)
    with db.unit_of_work() as session:
        session.execute(insert(Event), event_rows(merchant_id, events, datetime.now(UTC)))
    half = len(events) // 2
    listen(db, merchant_id, events[:half], batch, "listener warm-up")
    analyze(db)
    elapsed = listen(db, merchant_id, events[half:], batch, "listener")
    db.dispose()
    return (len(events) - half) / elapsed


def run_anchor(url: str, events: list[AcceptedEvent], members: int, batch: int) -> float:
    db, merchant_id = prepare(url, members)
    now = datetime.now(UTC)
    half = len(events) // 2
    with db.unit_of_work() as session:
        session.execute(insert(Event), event_rows(merchant_id, events[:half], now))
    analyze(db)
    started = time.perf_counter()
    for start in range(half, len(events), batch):
        with db.unit_of_work() as session:
            session.execute(insert(Event), event_rows(merchant_id, events[start : start + batch], now))
    elapsed = time.perf_counter() - started
    db.dispose()
    return (len(events) - half) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("SIYU_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    events = make_events(args.events, args.members, args.seed)
    engine = "postgresql" if args.database_url else "sqlite"
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("listener", run_listener), ("anchor", run_anchor)):
            folder = Path(tmp) / name
            folder.mkdir()
            url, schema = fresh_url(args.database_url, folder)
            try:
                figures[name] = run(url, events, args.members, args.batch)
            finally:
                drop_schema(args.database_url, schema)
    console.print(f"engine {engine}: {args.events} events, {args.members} members, batches of {args.batch}")
    console.print(f"reachability listener {figures['listener']:10.0f} events/s")
    console.print(f"bulk insert of events {figures['anchor']:10.0f} events/s  (anchor)")
    console.print(f"ratio listener/anchor {figures['listener'] / figures['anchor']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
