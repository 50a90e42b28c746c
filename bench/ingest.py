"""Ingestion throughput through the batch API, against a plain bulk insert of the same rows.

    python bench/ingest.py --events 5000000 --members 500000 [--database-url postgresql+psycopg://…]

Figures: events/s through ``POST /api/v1/events/batch`` (validation, identity resolution,
event insert, rollups, every ingest listener — lifecycle stages, reachability —, commit;
in-process ASGI, no network; the app's lifespan runs, so its background upkeep does too).

With ``--server``, the API is a real server instead (``bench/serving.py``: uvicorn with the app
as ``siyu serve`` builds it, ``--workers N`` processes, on a local port), the request bodies
encoded before the clock starts (so the client costs the server's 2 cores as little as possible:
reading prepared bytes, sending them), and ``--clients N`` connections posting batches concurrently::

    python bench/ingest.py --events 5000000 --members 500000 --server --workers 2 --clients 2

The stream: 55 % visits, 40 % paid orders, 5 % subscriptions,
follows and favourites; ~30 % of events also carry the member's phone number. The anchor: the
same rows bulk-inserted into ``events`` with one driver ``executemany`` per batch (the ceiling). The ratio is
API ÷ anchor. Each run uses a fresh SQLite file (default) or a fresh PostgreSQL schema.

``--core-only`` (in-process only) is a diagnostic, not a configuration: the ingest listeners —
lifecycle stages, points and tiers, reachability, campaign triggers — are switched off in this
process, leaving what the issue's speed target names: validation, identity resolution, the
event insert and the rollups. It shows what the listeners cost against that scope.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast
from urllib.parse import quote

import httpx
from fastapi.testclient import TestClient
from rich.console import Console
from rich.progress import Progress, TaskID
from sqlalchemy import Table, create_engine, insert, text

from serving import cpu_seconds, free_port, start_server
from siyu.app import create_app
from siyu.config import load_settings
from siyu.db import Database
from siyu.events import service as ingestion
from siyu.events.models import Event
from siyu.kit.bulk import execute_many
from siyu.kit.clock import utcnow
from siyu.members.models import Member
from siyu.migrate import upgrade
from siyu.tenancy import facade
from siyu.tenancy.scopes import MERCHANT_SCOPES, sorted_scopes
from siyu.tiers import membership

console = Console()
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=181)


REACH_EVENTS: list[tuple[str, dict[str, object]]] = [
    ("subscribe", {"channel": "mini_program", "template_id": "order-shipped", "one_time": True}),
    ("subscribe", {"channel": "mini_program", "template_id": "points", "one_time": False}),
    ("unsubscribe", {"channel": "mini_program", "template_id": "points"}),
    ("follow", {}),
    ("favorite", {}),
]


def make_batch(start: int, size: int, members: int, seed: int) -> list[dict[str, object]]:
    """Events ``start .. start+size`` of a deterministic stream (generated per batch, so a
    5 M-event run needs no more memory than one batch)."""
    rng = random.Random(seed * 1_000_003 + start)
    events: list[dict[str, object]] = []
    for n in range(start, start + size):
        person = rng.randrange(members)
        occurred = (T0 + timedelta(seconds=rng.randrange(180 * 86400))).isoformat()
        identities = {"member_no": f"M{person:08d}"}
        if rng.random() < 0.3:
            identities["phone"] = f"138{person:08d}"
        kind = rng.random()
        if kind < 0.05:  # reachability facts: subscriptions, follows, favourites
            type_, properties = rng.choice(REACH_EVENTS)
            events.append(
                {
                    "event_id": f"e{n}",
                    "type": type_,
                    "occurred_at": occurred,
                    "identities": identities,
                    "channel": "mini_program",
                    "properties": properties,
                }
            )
        elif kind < 0.6:
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


def run_api(url: str, tmp: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """Events/s through the batch API: overall, and over the last tenth of the run; and this
    process's CPU time per event during the requests (the server runs in-process; less
    dependent on the machine's other load than the wall clock, which it shares)."""
    db = Database(url)
    secret = bench_merchant(db, args)
    settings = load_settings(
        data_dir=tmp, database_url=url, secret_key="b" * 48, console=False, max_body_bytes=64 << 20
    )
    headers = {"Authorization": f"Bearer {secret}"}
    tail_from = (args.events - args.events // 10) // args.batch * args.batch
    spent = tail_spent = cpu = 0.0
    app = create_app(settings, db=db, console=False)  # imports every module: all listeners registered
    if args.core_only:
        ingestion._ingest_listeners.clear()  # this process only, and it ends with the bench
    # The app's lifespan runs as under `siyu serve`: GC tuning, the upkeep loops (on PostgreSQL
    # the planner-statistics refresh, which a long run depends on when autovacuum is off).
    with (
        TestClient(app) as client,
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task("batch API", total=args.events)
        for start in range(0, args.events, args.batch):
            chunk = make_batch(start, min(args.batch, args.events - start), args.members, args.seed)
            began, began_cpu = time.perf_counter(), time.process_time()
            response = client.post("/api/v1/events/batch", json={"events": chunk}, headers=headers)
            took = time.perf_counter() - began
            cpu += time.process_time() - began_cpu
            spent += took
            if start >= tail_from:
                tail_spent += took
            assert response.status_code == 200, response.text[:300]
            assert response.json()["accepted"] == len(chunk), response.text[:300]
            progress.advance(task, len(chunk))
    db.dispose()
    return args.events / spent, (args.events - tail_from) / tail_spent, cpu / args.events


def bench_merchant(db: Database, args: argparse.Namespace) -> str:
    """Migrate, create the bench's merchant (and its tiers with ``--tiers``); its API key."""
    upgrade(db.engine)
    with db.unit_of_work() as session:
        merchant = facade.create_merchant(session, name="bench")
        if args.tiers:
            for rank, threshold in enumerate((0, 1_000, 5_000, 20_000)):
                values = {"name": f"tier {rank}", "rank": rank, "threshold": threshold}
                membership.create_tier(
                    session,
                    merchant.id,
                    values | {"points_multiplier_bp": 10_000 + 2_500 * rank},
                    now=utcnow(),
                )
        key = facade.issue_key(
            session, name="bench", scopes=sorted_scopes(MERCHANT_SCOPES), merchant_id=merchant.id
        )
    assert key.secret is not None, "a new key shows its secret once"
    return key.secret


def run_server(url: str, tmp: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """Events/s through a real server (``args.workers`` processes) with ``args.clients``
    concurrent connections: overall, over the last tenth of the batches, and the server
    processes' CPU time per event (from ``/proc``, so Linux only)."""
    db = Database(url)
    secret = bench_merchant(db, args)
    db.dispose()
    bodies = tmp / "bodies"
    offsets: list[tuple[int, int, int]] = []  # (offset, length, events) per request
    with bodies.open("wb") as out, Progress(console=console, transient=True) as progress:
        task = progress.add_task("encoding requests", total=args.events)
        for start in range(0, args.events, args.batch):
            size = min(args.batch, args.events - start)
            data = json.dumps({"events": make_batch(start, size, args.members, args.seed)}).encode()
            offsets.append((out.tell(), len(data), size))
            out.write(data)
            progress.advance(task, size)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(url, tmp / "data", port, args.workers)
    try:
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        tail_from = len(offsets) - max(1, len(offsets) // 10)
        lock = threading.Lock()
        next_request = 0
        tail_started: list[float] = []
        failures: list[str] = []
        cpu_before = cpu_seconds(server.pid)

        def client(progress: Progress, task: TaskID) -> None:
            nonlocal next_request
            with (
                httpx.Client(base_url=base, timeout=600, headers=headers) as http,
                bodies.open("rb") as source,
            ):
                while not failures:
                    with lock:
                        n = next_request
                        next_request += 1
                        if n == tail_from:
                            tail_started.append(time.perf_counter())
                    if n >= len(offsets):
                        return
                    offset, length, size = offsets[n]
                    source.seek(offset)
                    response = http.post("/api/v1/events/batch", content=source.read(length))
                    if response.status_code != 200 or response.json()["accepted"] != size:
                        failures.append(f"{response.status_code}: {response.text[:300]}")
                    progress.advance(task, size)

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(
                f"server, {args.workers} workers, {args.clients} clients", total=args.events
            )
            began = time.perf_counter()
            threads = [threading.Thread(target=client, args=(progress, task)) for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            ended = time.perf_counter()
        if failures:
            raise SystemExit(f"a batch failed: {failures[0]}")
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=60)
    tail_events = sum(size for _, _, size in offsets[tail_from:])
    return args.events / (ended - began), tail_events / (ended - tail_started[0]), cpu / args.events


def run_anchor(url: str, args: argparse.Namespace) -> tuple[float, float]:
    """The ceiling: the same event rows (members pre-created) written with one driver-level
    ``executemany`` per batch and a commit — no HTTP, validation, resolution or rollups."""
    db = Database(url)
    upgrade(db.engine)
    with db.unit_of_work() as session:
        merchant_id = facade.create_merchant(session, name="anchor").id
    now = datetime.now(UTC)
    events_table = cast(Table, Event.__table__)
    members_table = cast(Table, Member.__table__)
    for start in range(0, args.members, 50_000):
        with db.unit_of_work() as session:
            execute_many(
                session,
                members_table,
                "bench.members",
                lambda _: insert(members_table),
                [
                    {
                        "merchant_id": merchant_id,
                        "id": f"mbr_{i:026d}",
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(start + 50_000, args.members))
                ],
            )
    spent = cpu = 0.0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("bulk insert", total=args.events)
        for start in range(0, args.events, args.batch):
            chunk = make_batch(start, min(args.batch, args.events - start), args.members, args.seed)
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
                    "amount_fen": dict(e.get("properties") or {}).get("amount_fen"),  # type: ignore[call-overload]
                    "properties": e.get("properties") or {},
                }
                for e in chunk
            ]
            began, began_cpu = time.perf_counter(), time.process_time()
            with db.unit_of_work() as session:
                execute_many(session, events_table, "bench.events", lambda _: insert(events_table), rows)
            spent += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
            progress.advance(task, len(chunk))
    db.dispose()
    return float(args.events / spent), cpu / args.events


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("SIYU_BENCH_DATABASE_URL"))
    parser.add_argument(
        "--tiers", action="store_true", help="give the merchant a 4-tier ladder (orders then assess tiers)"
    )
    parser.add_argument(
        "--server", action="store_true", help="through a uvicorn server on a local port (bench/serving.py)"
    )
    parser.add_argument(
        "--core-only",
        action="store_true",
        help="diagnostic, in-process: no ingest listeners (validation, resolution, insert, rollups only)",
    )
    parser.add_argument("--workers", type=int, default=1, help="with --server: server processes")
    parser.add_argument("--clients", type=int, default=1, help="with --server: concurrent connections")
    args = parser.parse_args()
    if args.core_only and args.server:
        parser.error("--core-only runs in-process only (the server would keep its listeners)")
    engine = "postgresql" if args.database_url else "sqlite"
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            run = run_server if args.server else run_api
            api, api_tail, api_cpu = run(url, Path(tmp), args)
        finally:
            drop_schema(args.database_url, schema)
        (Path(tmp) / "anchor").mkdir()
        url, schema = fresh_url(args.database_url, Path(tmp) / "anchor")
        try:
            anchor, anchor_cpu = run_anchor(url, args)
        finally:
            drop_schema(args.database_url, schema)
    console.print(
        f"engine {engine}: {args.events:,} events, {args.members:,} members, batches of {args.batch:,}"
        + (", 4-tier ladder" if args.tiers else "")
        + (", CORE ONLY (no ingest listeners: a diagnostic)" if args.core_only else "")
        + (f"; server, {args.workers} workers, {args.clients} clients" if args.server else "; in-process")
    )
    console.print(f"batch API      {api:10,.0f} events/s  (last tenth of the run: {api_tail:,.0f}/s)")
    console.print(f"bulk insert    {anchor:10,.0f} events/s  (anchor: the same rows, driver executemany)")
    console.print(f"ratio API/anchor {api / anchor:.3f}")
    who = "the server's processes" if args.server else "this process"
    console.print(
        f"CPU of {who} per event: API {api_cpu * 1e6:,.0f} µs, anchor {anchor_cpu * 1e6:,.1f} µs"
        f" (ratio {anchor_cpu / api_cpu:.3f}; "
        + (
            "the database server's processes not counted)"
            if args.server
            else "background processes such as the mirror sync not counted)"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
