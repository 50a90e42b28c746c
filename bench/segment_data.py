"""A large synthetic merchant for segment and campaign benchmarks, generated inside the database.

    python bench/segment_data.py --members 1000000 --events 30000000 --out /tmp/seg-1m.db
    python bench/segment_data.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --schema bench_seg_1m --members 1000000 --events 30000000

Thirty million events cannot go through the API in a benchmark's time (bench/ingest.py measures
that path), and generating them row by row in Python costs minutes before the database sees
one. So the rows are produced by the database itself — a recursive CTE on SQLite,
``generate_series`` on PostgreSQL — from the same integer hash on both engines, which makes the
two datasets identical (the benchmark checks the counts agree). The events table's secondary
indexes are dropped during the load and rebuilt after it; rollups, stages, tags and points
balances, join dates (the first event) and a two-entry stage ledger per member are then derived
from the events in SQL, as ingestion would have left them (rollups:
the same columns, computed by aggregation; stages: a simplified classification).

The shape (documented so the figures can be read): every member has exactly ``events /
members`` events; 55 % visits, 20 % paid orders of 10–100 yuan, 10 % scans, 5 % check-ins, 5 %
shares, 5 % payment-page views, at 50 stores. By a hash of the member: 20 % never order (their
orders are visits), 10 % were last active 61–180 days ago (dormant), 10 % 181–360 days ago
(lost); the rest spread their events over the 180 days before :data:`NOW`. 10 % of members are
tagged ``vip``, a third ``coffee``; points balances 0–4,999.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import quote

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Connection, Engine, Table, create_engine, text
from sqlalchemy.orm import Session

from siyu.events.models import Event
from siyu.migrate import upgrade
from siyu.tenancy import facade
from siyu.tenancy.models import Store

console = Console()
NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
"""The dataset's "now" (noon in Shanghai): benchmarks pass it to every rule."""
DAYS = 180
CHUNK = 1_000_000
MERCHANT_NAME = "bench-segments"

# One multiplicative hash, written once for both dialects: h(n, k) = (n * k + salt) mod 2^32.
_K1, _K2, _K3 = 2654435761, 2246822519, 3266489917


def _h(expr: str, k: int, salt: int) -> str:
    return f"((({expr}) * {k} + {salt}) % 4294967296)"


def _member_id(expr: str, postgres: bool) -> str:
    if postgres:
        return f"'mbr_b' || lpad(({expr})::text, 8, '0')"
    return f"'mbr_b' || printf('%08d', {expr})"


def _event_select(postgres: bool, per_member: int, start: int, stop: int, merchant_id: str) -> str:
    """SELECT producing events ``start .. stop-1`` (ordered by member, so index builds append)."""
    n = "n"
    member = f"({n} / {per_member})"
    cls = f"({_h(member, _K1, 99)} % 10)"
    kind = f"({_h(n, _K1, 7)} % 100)"
    buys = f"{cls} >= 2 AND {kind} >= 55 AND {kind} < 75"
    type_ = (
        f"CASE WHEN {buys} THEN 'order_paid' WHEN {kind} < 75 THEN 'visit' "
        f"WHEN {kind} < 85 THEN 'scan' WHEN {kind} < 90 THEN 'checkin' "
        f"WHEN {kind} < 95 THEN 'share' ELSE 'payment_page_view' END"
    )
    spread = f"{_h(n, _K2, 11)}"
    seconds_ago = (
        f"(CASE WHEN {cls} = 2 THEN {61 * 86400} + {spread} % {119 * 86400} "
        f"WHEN {cls} = 3 THEN {181 * 86400} + {spread} % {180 * 86400} "
        f"ELSE {spread} % {DAYS * 86400} END)"
    )
    epoch_now = int(NOW.timestamp())
    if postgres:
        occurred = f"to_timestamp({epoch_now} - {seconds_ago})"
        received = f"to_timestamp({epoch_now} + {n} / 1000)"
        event_id = f"'e' || lpad({n}::text, 9, '0')"
        store = f"'sto_b' || lpad(({_h(n, _K3, 3)} % 50)::text, 2, '0')"
        source = f"generate_series({start}, {stop - 1}) AS g(n)"
        properties = "'{}'::json"
    else:
        occurred = f"datetime({epoch_now} - {seconds_ago}, 'unixepoch') || '.000000'"
        received = f"datetime({epoch_now} + {n} / 1000, 'unixepoch') || '.000000'"
        event_id = f"'e' || printf('%09d', {n})"
        store = f"'sto_b' || printf('%02d', {_h(n, _K3, 3)} % 50)"
        source = "g"
        properties = "'{}'"
    amount = f"CASE WHEN {buys} THEN 1000 + {_h(n, _K3, 5)} % 9000 END"
    channel = f"CASE WHEN {kind} < 55 THEN 'mini_program' WHEN {kind} < 75 THEN 'store' ELSE 'alipay' END"
    body = (
        f"SELECT '{merchant_id}', {event_id}, {_member_id(member, postgres)}, {type_}, "
        f"{occurred}, {received}, {channel}, {store}, {amount}, {properties} FROM {source}"
    )
    if postgres:
        return body
    return (
        f"WITH RECURSIVE g(n) AS (SELECT {start} UNION ALL SELECT n + 1 FROM g WHERE n < {stop - 1}) " + body
    )


def generate(engine: Engine, *, members: int, events: int) -> str:
    """Load the dataset into a migrated, empty database; returns the merchant id."""
    postgres = engine.dialect.name == "postgresql"
    per_member = max(1, events // members)
    with engine.begin() as connection:
        merchant_id = _merchant(connection)
    events_table = cast(Table, Event.__table__)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("members", total=members)
        with engine.begin() as connection:
            connection.execute(text(_members_sql(postgres, members, merchant_id)))
            progress.advance(task, members)
        with engine.begin() as connection:
            for index in events_table.indexes:
                index.drop(connection)
        task = progress.add_task("events", total=events)
        for start in range(0, events, CHUNK):
            stop = min(events, start + CHUNK)
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO events (merchant_id, event_id, member_id, type, occurred_at, "
                        "received_at, channel, store_id, amount_fen, properties) "
                        + _event_select(postgres, per_member, start, stop, merchant_id)
                    )
                )
            progress.advance(task, stop - start)
        task = progress.add_task("indexes, rollups, stages, tags, points, ledger", total=8)
        with engine.begin() as connection:
            for index in events_table.indexes:
                index.create(connection)
        progress.advance(task)
        for step in _derived_sql(postgres, merchant_id):
            with engine.begin() as connection:
                connection.execute(text(step))
            progress.advance(task)
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    console.print(
        f"generated {members:,} members, {events:,} events in {time.perf_counter() - started:.0f} s"
    )
    return merchant_id


def _merchant(connection: Connection) -> str:
    """The merchant and its 50 stores (ids ``sto_b00``…``sto_b49``, which the events name),
    around People's Square in Shanghai, 1.1 km apart."""
    with Session(bind=connection) as session:
        merchant_id = facade.create_merchant(session, name=MERCHANT_NAME).id
        session.flush()
    stores = cast(Table, Store.__table__)
    connection.execute(
        stores.insert(),
        [
            {
                "merchant_id": merchant_id,
                "id": f"sto_b{number:02d}",
                "code": f"S{number:02d}",
                "name": f"store {number}",
                "kind": "direct",
                "status": "open",
                "latitude": 31.20 + (number // 10) * 0.01,
                "longitude": 121.40 + (number % 10) * 0.01,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for number in range(50)
        ],
    )
    return merchant_id


def _members_sql(postgres: bool, members: int, merchant_id: str) -> str:
    created = NOW - timedelta(days=DAYS + 1)
    stamp = created.strftime("%Y-%m-%d %H:%M:%S") + (".000000" if not postgres else "+00")
    if postgres:
        source = f"generate_series(0, {members - 1}) AS g(n)"
        prefix = ""
    else:
        source = "g"
        prefix = f"WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < {members - 1}) "
    return (
        "INSERT INTO members (merchant_id, id, status, merged_into_id, birthday, created_at, updated_at) "
        + prefix
        + f"SELECT '{merchant_id}', {_member_id('n', postgres)}, 'active', NULL, NULL, "
        f"'{stamp}', '{stamp}' FROM {source}"
    )


def _derived_sql(postgres: bool, merchant_id: str) -> list[str]:
    now = NOW.strftime("%Y-%m-%d %H:%M:%S") + (".000000" if not postgres else "+00")
    today = (NOW + timedelta(hours=8)).date().isoformat()
    numeric_id = "substr(id, 6)::bigint" if postgres else "CAST(substr(id, 6) AS INTEGER)"
    rollups = (
        "INSERT INTO member_rollups (merchant_id, member_id, first_seen_at, last_seen_at, "
        "first_order_at, last_order_at, order_count, total_spend_fen, refund_count, refund_fen, "
        "visit_count, last_channel, last_store_id, acquisition_channel, acquisition_store_id, "
        "acquisition_campaign, acquisition_referrer, first_event_id, last_touch_at, last_touch_event_id) "
        "SELECT merchant_id, member_id, min(occurred_at), max(occurred_at), "
        "min(CASE WHEN type = 'order_paid' THEN occurred_at END), "
        "max(CASE WHEN type = 'order_paid' THEN occurred_at END), "
        "sum(CASE WHEN type = 'order_paid' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN type = 'order_paid' THEN amount_fen ELSE 0 END), 0, 0, "
        "sum(CASE WHEN type = 'visit' THEN 1 ELSE 0 END), min(channel), min(store_id), "
        "min(channel), min(store_id), NULL, NULL, min(event_id), max(occurred_at), max(event_id) "
        f"FROM events WHERE merchant_id = '{merchant_id}' GROUP BY merchant_id, member_id"
    )
    days_idle = (
        f"(EXTRACT(EPOCH FROM (TIMESTAMPTZ '{now}' - last_seen_at)) / 86400)"
        if postgres
        else f"(julianday('{now[:19]}') - julianday(last_seen_at))"
    )
    stages = (
        "INSERT INTO member_stages (merchant_id, member_id, stage, since, due_on, seq, recent, recent_since) "
        "SELECT merchant_id, member_id, CASE "
        f"WHEN {days_idle} >= 180 THEN 'lost' WHEN {days_idle} >= 60 THEN 'dormant' "
        "WHEN order_count >= 8 THEN 'super' WHEN order_count >= 2 THEN 'repeat' "
        "WHEN order_count = 1 THEN 'first_order' ELSE 'high_potential' END, "
        f"'{today}', NULL, 1, NULL, NULL FROM member_rollups WHERE merchant_id = '{merchant_id}'"
    )
    tags = (
        "INSERT INTO member_tags (merchant_id, member_id, tag, created_at) "
        f"SELECT merchant_id, id, 'vip', created_at FROM members "
        f"WHERE merchant_id = '{merchant_id}' AND {numeric_id} % 10 = 0 "
        "UNION ALL "
        f"SELECT merchant_id, id, 'coffee', created_at FROM members "
        f"WHERE merchant_id = '{merchant_id}' AND {numeric_id} % 3 = 0"
    )
    points = (
        "INSERT INTO points_accounts (merchant_id, member_id, balance, updated_at) "
        f"SELECT merchant_id, id, {_h(numeric_id, _K2, 1)} % 5000, created_at FROM members "
        f"WHERE merchant_id = '{merchant_id}'"
    )
    if postgres:
        created = (
            "UPDATE members m SET created_at = r.first_seen_at, updated_at = r.first_seen_at "
            "FROM member_rollups r WHERE r.merchant_id = m.merchant_id AND r.member_id = m.id "
            f"AND m.merchant_id = '{merchant_id}'"
        )
        first_day = "(r.first_seen_at AT TIME ZONE 'Asia/Shanghai')::date"
        stamp, day = f"TIMESTAMPTZ '{now}'", f"DATE '{today}'"
    else:
        created = (
            "UPDATE members SET created_at = (SELECT r.first_seen_at FROM member_rollups r "
            "WHERE r.merchant_id = members.merchant_id AND r.member_id = members.id) "
            f"WHERE merchant_id = '{merchant_id}'"
        )
        first_day = "date(r.first_seen_at, '+480 minutes')"
        stamp, day = f"'{now}'", f"'{today}'"
    # The ledger in brief: every member entered as a stranger on its first day and moved to its
    # current stage today (the classification above is itself simplified).
    ledger = (
        "INSERT INTO stage_transitions (merchant_id, member_id, seq, from_stage, to_stage, effective_on, "
        "recorded_at, cause) "
        f"SELECT r.merchant_id, r.member_id, 1, NULL, 'stranger', {first_day}, {stamp}, 'event' "
        f"FROM member_rollups r WHERE r.merchant_id = '{merchant_id}' "
        "UNION ALL "
        f"SELECT s.merchant_id, s.member_id, 2, 'stranger', s.stage, {day}, {stamp}, 'daily' "
        f"FROM member_stages s WHERE s.merchant_id = '{merchant_id}'"
    )
    stage_seq = f"UPDATE member_stages SET seq = 2 WHERE merchant_id = '{merchant_id}'"
    return [rollups, stages, tags, points, created, ledger, stage_seq]


def open_engine(args: argparse.Namespace) -> Engine:
    if args.database_url:
        base = args.database_url
        with create_engine(base).begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{args.schema}"'))
        separator = "&" if "?" in base else "?"
        return create_engine(f"{base}{separator}options={quote(f'-csearch_path={args.schema}')}")
    return create_engine(f"sqlite:///{args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=30_000_000)
    parser.add_argument("--out", default="/tmp/siyu-bench-segments.db", help="SQLite file")
    parser.add_argument("--database-url", help="PostgreSQL base URL (else SQLite --out)")
    parser.add_argument("--schema", default="bench_segments", help="PostgreSQL schema to fill")
    args = parser.parse_args()
    engine = open_engine(args)
    upgrade(engine)
    generate(engine, members=args.members, events=args.events)


if __name__ == "__main__":
    main()
