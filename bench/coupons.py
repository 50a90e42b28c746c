"""A hot coupon drop: many concurrent clients claim one coupon with limited stock, over HTTP.

    python bench/coupons.py [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                            [--stock 20000] [--connections 64] [--workers 2]

A real server (uvicorn, ``--workers`` processes, the app as ``siyu serve`` builds it, console
off) on a fresh SQLite file (default: the embedded figure) or a fresh PostgreSQL schema. One
cash coupon template, ``--stock`` coupons, one per member; ``--connections`` keep-alive clients
each claim for distinct members (``POST /api/v1/coupon-templates/{id}/claims``) until the stock
is gone. Printed:

* successful claims/s — stock ÷ the time from the first request to the last successful claim;
* the anchor: ``GET /api/v1/whoami`` (authentication, the unit of work, routing, JSON — the
  app's own cheapest authenticated request) with the same clients, the framework ceiling;
  the ratio is claims/s ÷ whoami/s;
* the oversell count read back from the database (coupons issued beyond the stock, and members
  holding more than their limit): both must be 0, or the run exits 1.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio/uvloop in this process;
it shares the machine's cores with the server and the database, as a real drop on one box would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).parent))
from ingest import drop_schema, fresh_url
from serving import free_port, start_server
from siyu.coupons.models import Coupon
from siyu.db import Database
from siyu.kit.ids import IdKind, new_id
from siyu.members.models import Member
from siyu.migrate import upgrade
from siyu.tenancy import facade
from siyu.tenancy.scopes import MERCHANT_SCOPES, sorted_scopes

console = Console()


@dataclass
class Outcome:
    statuses: Counter[str] = field(default_factory=Counter)
    first_sent: float = 0.0
    last_success: float = 0.0
    successes: int = 0
    requests: int = 0


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def get_request(path: str, secret: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {secret}\r\n\r\n".encode()


def post_request(path: str, secret: str, body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def anchor_rate(port: int, secret: str, connections: int, seconds: float) -> float:
    """whoami requests/s with ``connections`` clients for ``seconds``."""
    raw = get_request("/api/v1/whoami", secret)
    conns = [await Conn.open(port) for _ in range(connections)]
    done = 0
    stop_at = time.perf_counter() + seconds

    async def client(conn: Conn) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            status, _ = await conn.request(raw)
            if status != 200:
                raise RuntimeError(f"whoami answered {status}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return done / elapsed


async def drop(port: int, secret: str, template_id: str, member_ids: list[str], connections: int) -> Outcome:
    """Claim until the stock is gone (every client has seen ``out_of_stock``) or members run out."""
    path = f"/api/v1/coupon-templates/{template_id}/claims"
    outcome = Outcome()
    members = iter(member_ids)
    sold_out = False
    conns = [await Conn.open(port) for _ in range(connections)]

    async def client(conn: Conn) -> None:
        nonlocal sold_out
        for member_id in members:
            if sold_out:
                return
            status, body = await conn.request(post_request(path, secret, {"member_id": member_id}))
            outcome.requests += 1
            if status == 201:
                outcome.successes += 1
                outcome.last_success = time.perf_counter()
                outcome.statuses["201"] += 1
            else:
                reason = str(json.loads(body).get("reason") or json.loads(body).get("type", ""))
                outcome.statuses[f"{status} {reason}"] += 1
                if "out_of_stock" in reason:
                    sold_out = True

    outcome.first_sent = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    for c in conns:
        c.close()
    return outcome


def seed(db: Database, members: int) -> tuple[str, str, list[str]]:
    """A merchant, an all-scopes key and ``members`` members (bulk-inserted)."""
    with db.unit_of_work() as session:
        merchant = facade.create_merchant(session, name="热门券商户")
        key = facade.issue_key(
            session, name="bench", scopes=sorted_scopes(MERCHANT_SCOPES), merchant_id=merchant.id
        )
    assert key.secret is not None
    now = datetime.now(UTC)
    ids = [new_id(IdKind.MEMBER) for _ in range(members)]
    rows = [
        {"merchant_id": merchant.id, "id": i, "status": "active", "created_at": now, "updated_at": now}
        for i in ids
    ]
    with db.unit_of_work() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(Member), rows[start : start + 5000])
    return merchant.id, key.secret, ids


def create_hot_template(port: int, secret: str, stock: int) -> str:
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {secret}"}
    created = httpx.post(
        f"{base}/coupon-templates",
        headers=headers,
        json={
            "name": "开业立减 10 元",
            "kind": "cash",
            "value_fen": 1000,
            "total_stock": stock,
            "per_member_limit": 1,
            "valid_days": 30,
        },
        timeout=10,
    )
    created.raise_for_status()
    template_id = str(created.json()["id"])
    httpx.post(
        f"{base}/coupon-templates/{template_id}/activate", headers=headers, timeout=10
    ).raise_for_status()
    return template_id


def oversell(db: Database, merchant_id: str, template_id: str, stock: int) -> tuple[int, int, int]:
    """(coupons issued, issued beyond stock, members over their limit of 1), from the database."""
    with db.reading() as session:
        issued = session.scalar(
            select(func.count()).where(Coupon.merchant_id == merchant_id, Coupon.template_id == template_id)
        )
        per_member = (
            select(Coupon.member_id)
            .where(Coupon.merchant_id == merchant_id, Coupon.template_id == template_id)
            .group_by(Coupon.member_id)
            .having(func.count() > 1)
            .subquery()
        )
        doubled = session.scalar(select(func.count()).select_from(per_member))
    issued = int(issued or 0)
    return issued, max(0, issued - stock), int(doubled or 0)


def run(url: str, tmp: Path, args: argparse.Namespace) -> int:
    db = Database(url)
    upgrade(db.engine)
    merchant_id, secret, member_ids = seed(db, args.stock * 2)
    port = free_port()
    server = start_server(url, tmp / "data", port, args.workers)
    try:
        template_id = create_hot_template(port, secret, args.stock)
        anchor = asyncio.run(anchor_rate(port, secret, args.connections, args.anchor_seconds))
        outcome = asyncio.run(drop(port, secret, template_id, member_ids, args.connections))
    finally:
        server.terminate()
        server.wait(timeout=30)
    issued, oversold, doubled = oversell(db, merchant_id, template_id, args.stock)
    db.dispose()
    elapsed = outcome.last_success - outcome.first_sent
    rate = outcome.successes / elapsed if elapsed > 0 else 0.0
    engine = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    console.print(
        f"[bold]{engine}[/], {args.workers} worker(s), {args.connections} connections, stock {args.stock}"
    )
    console.print(f"  anchor GET /whoami: {anchor:,.0f} requests/s")
    console.print(
        f"  claims: {outcome.successes:,} successful in {elapsed:.2f} s = [bold]{rate:,.0f} claims/s[/]"
        f" (ratio {rate / anchor:.3f}); {outcome.requests:,} requests"
    )
    console.print(f"  answers: {dict(outcome.statuses)}")
    console.print(
        f"  oversell: {oversold} coupons beyond stock, {doubled} members over their limit; issued {issued}"
    )
    ok = oversold == 0 and doubled == 0 and issued == outcome.successes == args.stock
    if not ok:
        console.print("[red]FAIL: the drop did not issue exactly the stock[/]")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: a fresh SQLite file)")
    parser.add_argument("--stock", type=int, default=20_000)
    parser.add_argument(
        "--connections", type=int, default=None, help="concurrent clients (default: 64 PostgreSQL, 16 SQLite)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="server processes (default: 2 PostgreSQL, 1 SQLite)"
    )
    parser.add_argument("--anchor-seconds", type=float, default=8.0)
    args = parser.parse_args()
    # The embedded default is one process (`siyu serve`); SQLite serialises writers, and past ~16
    # waiting writers its busy wait is unfair enough that some wait out the 15 s timeout.
    args.workers = args.workers or (2 if args.database_url else 1)
    args.connections = args.connections or (64 if args.database_url else 16)
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            return run(url, Path(tmp), args)
        finally:
            drop_schema(args.database_url, schema)


if __name__ == "__main__":
    sys.exit(main())
