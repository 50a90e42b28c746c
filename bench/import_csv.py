"""CSV import throughput and memory through the CLI, against plain ``csv`` reading of the same file.

    python bench/import_csv.py [--rows 200000] [--kind orders|members] [--chunk-size 2000]
                               [--database-url postgresql+psycopg://…]
    python bench/import_csv.py --rows 5000000        # the full run (target: peak RSS < 500 MB)

Figures: rows/s of ``siyu import orders FILE`` run as a child process (the real command: reader,
mapping, row building, ``events.ingest`` per chunk, one commit per chunk), its peak RSS
(``getrusage(RUSAGE_CHILDREN)``), and the anchor: rows/s of ``csv.reader`` over the same file
in this process (the ceiling for anything that reads a CSV in Python). The ratio is import ÷
anchor. Each run uses a fresh SQLite file (default) or a fresh PostgreSQL schema, dropped after.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from sqlalchemy import create_engine, text

from siyu.db import Database
from siyu.migrate import upgrade
from siyu.tenancy import facade

console = Console()
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=365)
STORES = ("S001", "S002", "S003", "S004", "S005")


def write_orders(path: Path, rows: int, members: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["订单号", "手机号", "会员号", "实付金额", "支付时间", "门店编码", "备注"])
        for n in range(rows):
            person = rng.randrange(members)
            fen = rng.randrange(500, 20000)
            paid = T0 + timedelta(seconds=rng.randrange(360 * 86400))
            writer.writerow(
                [
                    f"O{n:09d}",
                    f"139{person:08d}",
                    f"M{person:08d}",
                    f"{fen // 100}.{fen % 100:02d}",
                    paid.strftime("%Y-%m-%d %H:%M:%S"),
                    STORES[person % len(STORES)],
                    "",
                ]
            )


def write_members(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["手机号", "会员号", "注册时间", "标签", "门店编码"])
        for n in range(rows):
            joined = T0 + timedelta(seconds=rng.randrange(360 * 86400))
            tag = rng.choice(("", "", "VIP", "咖啡爱好者"))
            writer.writerow(
                [f"139{n:08d}", f"M{n:08d}", joined.strftime("%Y-%m-%d %H:%M"), tag, STORES[n % len(STORES)]]
            )


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


def prepare(url: str) -> str:
    db = Database(url)
    upgrade(db.engine)
    with db.unit_of_work() as session:
        merchant = facade.create_merchant(session, name="bench")
        for code in STORES:
            facade.create_store(session, merchant.id, name=f"store {code}", code=code)
    db.dispose()
    return merchant.id


def run_import(
    url: str, tmp: Path, kind: str, path: Path, merchant_id: str, chunk_size: int
) -> tuple[float, dict[str, object], int]:
    env = {
        **os.environ,
        "SIYU_DATABASE_URL": url,
        "SIYU_DATA_DIR": str(tmp / "data"),
        "SIYU_SECRET_KEY": "b" * 48,
    }
    command = [sys.executable, "-m", "siyu.cli", "import", kind, str(path), "-m", merchant_id]
    command += ["--chunk-size", str(chunk_size), "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"import failed: {done.stderr.decode(errors='replace')[-2000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, json.loads(done.stdout), peak_kib


def run_anchor(path: Path) -> float:
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as handle:
        count = sum(1 for _ in csv.reader(handle)) - 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=None, help="distinct members (orders; default rows/5)")
    parser.add_argument("--kind", choices=("orders", "members"), default="orders")
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL base URL (default: a SQLite file)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        path = tmp / f"{args.kind}.csv"
        with console.status(f"writing {args.rows:,} {args.kind} rows …"):
            if args.kind == "orders":
                write_orders(path, args.rows, args.members or max(1, args.rows // 5), args.seed)
            else:
                write_members(path, args.rows, args.seed)
        size_mb = path.stat().st_size / 1e6
        url, schema = fresh_url(args.database_url, tmp)
        try:
            merchant_id = prepare(url)
            with console.status(f"siyu import {args.kind} ({size_mb:,.1f} MB) …"):
                elapsed, summary, peak_kib = run_import(
                    url, tmp, args.kind, path, merchant_id, args.chunk_size
                )
        finally:
            drop_schema(args.database_url, schema)
        anchor = run_anchor(path)

    engine = "PostgreSQL" if args.database_url else "SQLite"
    rate = args.rows / elapsed
    console.print(f"[bold]import_csv[/] — {args.rows:,} {args.kind} rows, {size_mb:,.1f} MB, {engine}")
    console.print(
        f"  summary: accepted {summary['accepted']:,}, duplicates {summary['duplicates']:,}, "
        f"rejected {summary['rejected']:,}"
    )
    console.print(f"  siyu import: {rate:,.0f} rows/s ({elapsed:,.1f} s), peak RSS {peak_kib / 1024:,.0f} MB")
    console.print(f"  anchor (csv.reader over the same file): {anchor:,.0f} rows/s")
    console.print(f"  ratio import/anchor: {rate / anchor:.4f}")


if __name__ == "__main__":
    main()
