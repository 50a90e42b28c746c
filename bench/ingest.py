"""Ingestion throughput through the batch API, against a plain bulk insert of the same rows.

    python bench/ingest.py --events 50000 --members 5000 [--database-url postgresql+psycopg://…]

Figures: events/s through ``POST /api/v1/events/batch`` (validation, identity resolution,
event insert, rollup recompute, commit — in-process ASGI, no network), and the anchor: the same
rows bulk-inserted into ``events`` with one ``executemany`` per batch (the ceiling). The ratio is
API ÷ anchor. Each run uses a fresh SQLite file (default) or a fresh PostgreSQL schema.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from fastapi.testclient import TestClient
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import create_engine, insert, text

from siyu.app import create_app
from siyu.config import load_settings
from siyu.db import Database
from siyu.events.models import Event
from siyu.members.models import Member
from siyu.migrate import upgrade
from siyu.tenancy import facade
from siyu.tenancy.scopes import MERCHANT_SCOPES, sorted_scopes

console = Console()
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=181)


def make_events(count: int, members: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        person = rng.randrange(members)
        kind = rng.random()
        occurred = (T0 + timedelta(seconds=rng.randrange(180 * 86400))).isoformat()
        identities = {"member_no": f"M{person:08d}"}
        if rng.random() < 0.3:
            identities["phone"] = f"138{person:08d}"
        if kind < 0.6:
            events.append(
                {"event_id": f"e{n}", "type": "visit", "occurred_at": occurred, "identities": identities}
            )
        else:
            events.append(
                {
                    "event_id": f"e{n}",
                    "type": "order_paid",
                    "occurred_at": occurred,
                    "identities": identities,
                    "channel": "mini_program",
                    "properties": {"order_id": f"o{n}", "amount_fen": rng.randrange(1000, 8000)},
                }
            )
    return events


def fresh_url(base: str | None, tmp: Path) -> tuple[str, str | None]:
    if not base:
        return f"sqlite:///{tmp / 'bench.db'}", None
    schema = f"bench_{secrets.token_hex(4)}"
    with create_engine(base).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}')}", schema


def drop_schema(base: str | None, schema: str | None) -> None:
    if base and schema:
        with create_engine(base).begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def run_api(url: str, tmp: Path, events: list[dict[str, object]], batch: int) -> float:
    db = Database(url)
    upgrade(db.engine)
    with db.unit_of_work() as session:
        merchant = facade.create_merchant(session, name="bench")
        key = facade.issue_key(
            session, name="bench", scopes=sorted_scopes(MERCHANT_SCOPES), merchant_id=merchant.id
        )
    settings = load_settings(
        data_dir=tmp, database_url=url, secret_key="b" * 48, console=False, max_body_bytes=64 << 20
    )
    client = TestClient(create_app(settings, db=db, console=False))
    headers = {"Authorization": f"Bearer {key.secret}"}
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("batch API", total=len(events))
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            response = client.post("/api/v1/events/batch", json={"events": chunk}, headers=headers)
            assert response.status_code == 200, response.text[:300]
            rejected = [r for r in response.json()["results"] if r["status"] != "accepted"]
            assert not rejected, rejected[:3]
            progress.advance(task, len(chunk))
    elapsed = time.perf_counter() - started
    db.dispose()
    return len(events) / elapsed


def run_anchor(url: str, events: list[dict[str, object]], members: int, batch: int) -> float:
    """Bulk insert of the same event rows (members pre-created), no validation or resolution."""
    db = Database(url)
    upgrade(db.engine)
    with db.unit_of_work() as session:
        merchant_id = facade.create_merchant(session, name="anchor").id
    now = datetime.now(UTC)
    with db.unit_of_work() as session:
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
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        rows = [
            {
                "merchant_id": merchant_id,
                "event_id": str(e["event_id"]),
                "member_id": f"mbr_{int(str(e['identities']['member_no'])[1:]):026d}",  # type: ignore[index]
                "type": e["type"],
                "occurred_at": datetime.fromisoformat(str(e["occurred_at"])),
                "received_at": now,
                "channel": e.get("channel"),
                "store_id": None,
                "amount_fen": (e.get("properties") or {}).get("amount_fen"),  # type: ignore[union-attr]
                "properties": e.get("properties") or {},
            }
            for e in events[start : start + batch]
        ]
        with db.unit_of_work() as session:
            session.execute(insert(Event), rows)
    elapsed = time.perf_counter() - started
    db.dispose()
    return len(events) / elapsed


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
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            api = run_api(url, Path(tmp), events, args.batch)
        finally:
            drop_schema(args.database_url, schema)
        url, schema = fresh_url(args.database_url, Path(tmp) / "anchor")
        (Path(tmp) / "anchor").mkdir(exist_ok=True)
        url = url if args.database_url else f"sqlite:///{Path(tmp) / 'anchor' / 'bench.db'}"
        try:
            anchor = run_anchor(url, events, args.members, args.batch)
        finally:
            drop_schema(args.database_url, schema)
    console.print(f"engine {engine}: {args.events} events, {args.members} members, batches of {args.batch}")
    console.print(f"batch API      {api:10.0f} events/s")
    console.print(f"bulk insert    {anchor:10.0f} events/s  (anchor)")
    console.print(f"ratio API/anchor {api / anchor:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
