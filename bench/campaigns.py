"""Segments, campaign fan-out and the payment-success decision, each against an anchor.

    python bench/campaigns.py preview  [--database-url postgresql+psycopg://…] [--schema bench_segments]
    python bench/campaigns.py fanout   [--database-url …] [--members 100000]
    python bench/campaigns.py decision [--rate 200] [--seconds 30] [--warmup 2] [--workers 1]
    python bench/campaigns.py decision-cost [--payers 500] [--database-url …]

**preview** — segment preview (count + a sample of 20) on the dataset of bench/segment_data.py
(1 M members, 30 M events: generate it first, once per engine). Each rule is timed through
:func:`siyu.segments.facade.preview` (the compiled SQL) and against the anchor: the same count
written by hand in SQL, run on the same connection. Counts must agree (else exit 1); the ratio is
anchor time ÷ compiled time (1.0 = as fast as hand-written SQL). Every query runs 3 times; the
best is reported (the first run warms the cache).

**fanout** — a broadcast campaign (audience: every active member, 10 %
holdout, one marketing message treatment on the webhook channel) run to completion on a fresh
database of ``--members`` members by the same round ``siyu serve`` runs
(:func:`siyu.campaigns.tasks.run_merchant`): the audience snapshot, assignment by stable hash,
budget, ``messaging.send_many`` (member look-up, per-member lock on PostgreSQL, caps per local day
and ISO week, quiet hours) and the message rows and outbox items written, slice by slice. Then the
same campaign again for a second audience on the same day: every member is over the daily cap,
so each send is counted and suppressed (members who were in the first campaign's holdout are
still under the cap and get theirs). Figures: messages decided per second with caps checked —
(queued + deferred + suppressed) ÷ wall time of the run; in the first run every decided message
is written to the outbox. Anchor: the same number of outbox items written directly with
``outbox.enqueue_many`` in slices of the same size (no campaign, no caps), in the same run. On
PostgreSQL planner statistics are refreshed during the run as ``siyu serve``'s upkeep does
(:func:`keeping_statistics`).

**decision** — the payment-success-page decision over HTTP: a real server (uvicorn,
``--workers`` processes, one by default; the app as ``siyu serve`` builds it) on a fresh SQLite
file (the embedded default) or PostgreSQL schema; one running payment-success campaign (10 %
holdout) offering a cash coupon. An open-loop
load generator sends ``--rate`` requests/s for ``--warmup`` + ``--seconds`` on a pool of
keep-alive connections (only the last ``--seconds`` are counted; see :func:`open_loop`),
each request at its scheduled time (latency is measured from the scheduled send, so a slow
answer cannot hide the queue behind it — no coordinated omission). Two payer mixes: every payer
new (the member is created by the page-view event, assigned, offered: the heaviest path) and
payers seen before. The anchor: ``GET /api/v1/whoami`` at the same rate, same clients.
Figures: p50 / p99 / max latency in ms and the offers made; the target is p99 < 20 ms at
200 requests/s on the embedded default. Also the server's CPU time per request (user + system
time of the uvicorn processes over the run, from ``/proc``, ÷ requests sent): on a shared machine
latency follows the neighbours' load, CPU time much less so.

**decision-cost** — what one decision costs, measured in process without HTTP (sequential, so
independent of load): the service call as the endpoint makes it (``decide``, the answer, the
commit) for ``--payers`` new payers, then the same payers again (anchor: a bare DBAPI
``INSERT`` + ``COMMIT``, same database, same run). Figures per decision: SQL
statements (counted by an engine event, ``BEGIN`` and ``COMMIT`` included), Python function
calls (``cProfile``: deterministic, a proxy for CPU that does not move with the machine's load),
CPU ms and wall ms (both measured without the profiler).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import TextClause, bindparam, event, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))
import siyu.wiring  # noqa: F401  (outbox handlers and listeners, as under siyu serve)
from coupons import Conn, get_request, post_request, seed
from ingest import drop_schema, fresh_url
from segment_data import MERCHANT_NAME, NOW
from serving import cpu_seconds, free_port, start_server
from siyu.campaigns import service as campaigns
from siyu.campaigns import tasks
from siyu.campaigns.models import GoalDimension
from siyu.campaigns.schemas import CampaignIn, VariantIn
from siyu.coupons import facade as coupons
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database, UTCDateTime, refresh_statistics
from siyu.housekeeping import STATISTICS_INTERVAL_SECONDS
from siyu.messaging import facade as messaging_facade
from siyu.messaging import service as messaging
from siyu.migrate import upgrade
from siyu.outbox import facade as outbox
from siyu.outbox import service as outbox_service
from siyu.segments import facade as segments
from siyu.tenancy.models import Merchant

console = Console(width=150)
REPEATS = 3

PREVIEW_RULES: list[tuple[str, dict[str, Any], str]] = [
    (
        "order_paid ≥ 2 in 30 days",
        {"behaviour": {"event": "order_paid", "op": "gte", "count": 2, "within_days": 30}},
        "SELECT count(*) FROM members m WHERE m.merchant_id = :m AND m.status = 'active' AND m.id IN ("
        " SELECT member_id FROM events WHERE merchant_id = :m AND type = 'order_paid'"
        " AND occurred_at >= :since30 GROUP BY member_id HAVING count(*) >= 2)",
    ),
    (
        "RFM: recent ≤ 30 d, ≥ 5 orders, ≥ 300 yuan",
        {
            "and": [
                {"rfm": {"measure": "recency_days", "op": "lte", "value": 30}},
                {"rfm": {"measure": "frequency", "op": "gte", "value": 5}},
                {"rfm": {"measure": "monetary_fen", "op": "gte", "value": 30_000}},
            ]
        },
        "SELECT count(*) FROM members m JOIN member_rollups r ON r.merchant_id = m.merchant_id"
        " AND r.member_id = m.id WHERE m.merchant_id = :m AND m.status = 'active'"
        " AND r.last_order_at > :since31 AND r.order_count >= 5 AND r.total_spend_fen >= 30000",
    ),
    (
        "repeat/super, tagged vip, no visit in 14 days",
        {
            "and": [
                {"stage": {"in": ["repeat", "super"]}},
                {"tags": {"any": ["vip"]}},
                {"not": {"behaviour": {"event": "visit", "within_days": 14}}},
            ]
        },
        "SELECT count(*) FROM members m JOIN member_stages s ON s.merchant_id = m.merchant_id"
        " AND s.member_id = m.id WHERE m.merchant_id = :m AND m.status = 'active'"
        " AND s.stage IN ('repeat', 'super')"
        " AND EXISTS (SELECT 1 FROM member_tags t WHERE t.merchant_id = m.merchant_id"
        "  AND t.member_id = m.id AND t.tag = 'vip')"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.merchant_id = m.merchant_id"
        "  AND e.member_id = m.id AND e.type = 'visit' AND e.occurred_at >= :since14)",
    ),
]


def best_of(run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def count_of(session: Session, table: str, merchant_id: str) -> int:
    query = text(f"SELECT count(*) FROM {table} WHERE merchant_id = :m")
    return int(session.execute(query, {"m": merchant_id}).scalar_one())


def measure(
    session: Session, merchant_id: str, rule: dict[str, Any], anchor: TextClause
) -> tuple[float, int, float, int]:
    """(preview seconds, its count, hand-SQL seconds, its count) — best of :data:`REPEATS`."""
    ours, result = best_of(lambda: segments.preview(session, merchant_id, rule, now=NOW, sample=20))
    mine, count = best_of(lambda: int(session.execute(anchor.bindparams(m=merchant_id)).scalar_one()))
    return ours, result.count, mine, count


def engine_url(args: argparse.Namespace) -> str:
    if not args.database_url:
        return f"sqlite:///{args.sqlite}"
    separator = "&" if "?" in args.database_url else "?"
    return f"{args.database_url}{separator}options={quote(f'-csearch_path={args.schema}')}"


def preview(args: argparse.Namespace) -> int:
    url = engine_url(args)
    db = Database(url)
    upgrade(db.engine)  # the dataset may predate the segments tables
    engine_name = db.engine.dialect.name
    # recency_days = ⌊(now − last order) / 24 h⌋ (docs/segments.md), so "≤ 30" is "after now − 31 d"
    params = {f"since{d}": NOW - timedelta(days=d) for d in (14, 30, 31)}
    with db.unit_of_work() as session:
        merchant_id = session.scalars(select(Merchant.id).where(Merchant.name == MERCHANT_NAME)).one()
        member_count, event_count = (count_of(session, t, merchant_id) for t in ("members", "events"))
    table = Table(title=f"segment preview on {engine_name}: {member_count:,} members, {event_count:,} events")
    for column in ("rule", "members", "preview (s)", "hand SQL (s)", "ratio"):
        table.add_column(column, justify="right" if column != "rule" else "left")
    failed = False
    for name, rule, anchor_sql in PREVIEW_RULES:
        anchor_query = text(anchor_sql).bindparams(
            *(bindparam(k, v, type_=UTCDateTime()) for k, v in params.items() if f":{k}" in anchor_sql)
        )
        with db.unit_of_work() as session:
            ours, found, anchor, count = measure(session, merchant_id, rule, anchor_query)
        if found != count:
            failed = True
            console.print(f"[red]count mismatch for {name}: preview {found}, hand SQL {count}")
        table.add_row(name, f"{found:,}", f"{ours:.2f}", f"{anchor:.2f}", f"{anchor / ours:.2f}")
    console.print(table)
    db.dispose()
    return 1 if failed else 0


@contextmanager
def keeping_statistics(db: Database) -> Iterator[None]:
    """What ``siyu serve``'s upkeep does beside a campaign round: on PostgreSQL, refresh planner
    statistics every :data:`~siyu.housekeeping.STATISTICS_INTERVAL_SECONDS` (``ANALYZE`` of the
    tables that changed enough; this machine runs PostgreSQL with ``autovacuum = off``, so without
    it the tables a fan-out fills are planned as empty for the whole run). SQLite: nothing."""
    if db.engine.dialect.name != "postgresql":
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(STATISTICS_INTERVAL_SECONDS):
            refresh_statistics(db.engine)

    thread = threading.Thread(target=loop, name="statistics", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def broadcast(db: Database, merchant_id: str, template_id: str, name: str, now: datetime) -> str:
    """A started broadcast: every active member, one message treatment."""
    spec = CampaignIn(
        name=name,
        goal=GoalDimension.ACTIVE,
        variants=[
            VariantIn(
                key="main", weight_bp=10_000, treatments=[{"action": "message", "template_id": template_id}]
            )
        ],
    )
    with db.unit_of_work() as session:
        row = campaigns.create(session, merchant_id, spec.model_dump(mode="json"), now=now)
        campaigns.transition(session, merchant_id, row.id, "start", now=now)
        return row.id


def enqueue_rate(db: Database, merchant_id: str, member_ids: list[str], now: datetime) -> float:
    """The anchor of the fan-out benches: outbox items queued per second, one no-op item per
    member in slices of a campaign round (``enqueue_many``)."""
    started = time.perf_counter()
    for start in range(0, len(member_ids), tasks.SLICE):
        items = [
            outbox.NewItem(kind="bench.noop", key=f"anchor:{m}", payload={"member_id": m})
            for m in member_ids[start : start + tasks.SLICE]
        ]
        with db.unit_of_work() as session:
            outbox.enqueue_many(session, merchant_id, items, now=now)
    return len(member_ids) / (time.perf_counter() - started)


def fanout(args: argparse.Namespace) -> int:
    now = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # noon in Shanghai: outside quiet hours
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            db = Database(url)
            upgrade(db.engine)
            merchant_id, _secret, ids = seed(db, args.members)
            with db.unit_of_work() as session:
                template = {
                    "name": "会员日",
                    "channel": "webhook",
                    "kind": "marketing",
                    "title": "会员日",
                    "body": "会员日快乐",
                }
                template_id = messaging.create_template(session, merchant_id, template, now=now).id
            rows = []
            for label, at in (
                ("first campaign (queued)", now),
                ("second, same day (all capped)", now + timedelta(hours=1)),
            ):
                campaign_id = broadcast(db, merchant_id, template_id, label, at)
                started = time.perf_counter()
                with keeping_statistics(db):
                    report = tasks.run_merchant(db, merchant_id, now=at, campaign_id=campaign_id)
                took = time.perf_counter() - started
                with db.reading() as session:
                    counts = messaging_facade.campaign_message_counts(session, merchant_id, campaign_id)
                rows.append((label, report.members_assigned, report.members_treated, counts, took))
            anchor = enqueue_rate(db, merchant_id, ids, now)
            table = Table(title=f"campaign fan-out on {db.engine.dialect.name}: {args.members:,} members")
            for column in ("run", "assigned", "treated", "queued", "suppressed", "s", "decided/s", "ratio"):
                table.add_column(column, justify="left" if column == "run" else "right")
            for label, assigned, treated, counts, took in rows:
                rate = (counts.queued + counts.deferred + counts.suppressed) / took
                table.add_row(
                    label, f"{assigned:,}", f"{treated:,}", f"{counts.queued:,}", f"{counts.suppressed:,}",
                    f"{took:.1f}", f"{rate:,.0f}", f"{rate / anchor:.2f}",
                )  # fmt: skip
            table.add_row(
                "anchor: outbox.enqueue_many", "", "", f"{args.members:,}", "", "", f"{anchor:,.0f}", "1.00"
            )
            console.print(table)
            db.dispose()
        finally:
            drop_schema(args.database_url, schema)
    return 0


def coupon_delivery(args: argparse.Namespace) -> int:
    """A coupon broadcast to every member, its outbox drained: the batch handler
    (``give_many`` → ``coupons.issue_coupons``) against the one-item handler (``give`` →
    ``issue_coupon`` per member, on a smaller merchant); anchor: queueing as many outbox items."""
    now = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            db = Database(url)
            upgrade(db.engine)
            rows = []
            for label, members, batched in (
                ("batch handler (issue_coupons)", args.members, True),
                ("one by one (issue_coupon)", min(args.members, args.one_by_one), False),
            ):
                merchant_id, _secret, _ids = seed(db, members)
                with db.unit_of_work() as session:
                    template = coupons.create_template(
                        session,
                        merchant_id,
                        TemplateIn(
                            name="满30减10", kind="cash", value_fen=1000, total_stock=members, valid_days=7
                        ),
                        now=now,
                    )
                    coupons.change_template_status(session, merchant_id, template.id, "activate", now=now)
                    spec = CampaignIn(
                        name=label,
                        goal=GoalDimension.ACTIVE,
                        holdout_bp=0,
                        variants=[
                            VariantIn(
                                key="main",
                                weight_bp=10_000,
                                treatments=[{"action": "coupon", "template_id": template.id}],
                            )
                        ],
                    )
                    row = campaigns.create(session, merchant_id, spec.model_dump(mode="json"), now=now)
                    campaigns.transition(session, merchant_id, row.id, "start", now=now)
                tasks.run_merchant(db, merchant_id, now=now, campaign_id=row.id)
                kept = outbox_service._batch_handlers.pop("campaign.treatment") if not batched else None
                try:
                    started = time.perf_counter()
                    while outbox.run_once(db, limit=500, now=now + timedelta(minutes=1)):
                        pass
                    took = time.perf_counter() - started
                finally:
                    if kept is not None:
                        outbox_service._batch_handlers["campaign.treatment"] = kept
                with db.reading() as session:
                    view = coupons.get_template(session, merchant_id, template.id)
                    issued = view.issued if view is not None else 0
                rows.append((label, members, issued, took))
            anchor = enqueue_rate(db, merchant_id, [f"m{i}" for i in range(args.members)], now)
            table = Table(title=f"coupon broadcast delivery on {db.engine.dialect.name}")
            for column in ("handler", "members", "coupons issued", "s", "coupons/s", "ratio"):
                table.add_column(column, justify="left" if column == "handler" else "right")
            for label, members, issued, took in rows:
                rate = issued / took
                table.add_row(
                    label,
                    f"{members:,}",
                    f"{issued:,}",
                    f"{took:.1f}",
                    f"{rate:,.0f}",
                    f"{rate / anchor:.3f}",
                )
            table.add_row(
                "anchor: outbox.enqueue_many", f"{args.members:,}", "", "", f"{anchor:,.0f}", "1.000"
            )
            console.print(table)
            db.dispose()
        finally:
            drop_schema(args.database_url, schema)
    return 0


async def open_loop(
    port: int,
    requests: Callable[[int], bytes],
    rate: float,
    seconds: float,
    warmup: float = 0.0,
    connections: int = 64,
) -> tuple[list[float], Counter[int]]:
    """Send ``requests(n)`` at ``rate``/s for ``warmup + seconds``; latencies (s) from each scheduled time.

    Only requests scheduled after the first ``warmup`` seconds are counted: a server that has
    just started, or idled past the configuration cache's 2 s lifetime, answers its first few
    dozen requests slowly (40–90 ms measured), which is not the steady state a p99 at 200/s is
    about. The load generator's own garbage collector is frozen and paused for the run: this
    process imports the whole app, and its full collections (150–180 ms, measured with
    ``gc.callbacks``) landed in the latencies as if the server had stalled.
    """
    idle: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Conn.open(port))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    counted_from = int(rate * warmup)

    async def one(n: int, due: float) -> None:
        conn = await idle.get()
        status, _ = await conn.request(requests(n))
        if n >= counted_from:
            latencies.append(time.perf_counter() - due)
            statuses[status] += 1
        idle.put_nowait(conn)

    tasks_: list[asyncio.Task[None]] = []
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        start = time.perf_counter()
        for n in range(int(rate * (warmup + seconds))):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks_.append(asyncio.create_task(one(n, due)))
        await asyncio.gather(*tasks_)
    finally:
        gc.enable()
        gc.unfreeze()
    while not idle.empty():
        idle.get_nowait().close()
    return latencies, statuses


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return pick(0.50), pick(0.99), ordered[-1] * 1000


def payment_campaign(client: httpx.Client, secret: str) -> None:
    """One running payment-success campaign (10 % holdout) offering a cash coupon of ample stock."""
    headers = {"Authorization": f"Bearer {secret}"}
    coupon = {
        "name": "支付后立减 10 元",
        "kind": "cash",
        "value_fen": 1000,
        "total_stock": 1_000_000,
        "per_member_limit": 1,
        "valid_days": 30,
    }
    made = client.post("/api/v1/coupon-templates", headers=headers, json=coupon)
    made.raise_for_status()
    template_id = made.json()["id"]
    activate = f"/api/v1/coupon-templates/{template_id}/activate"
    client.post(activate, headers=headers).raise_for_status()
    body = {
        "name": "支付后立减",
        "goal": "worth",
        "kind": "payment_success",
        "placement": "payment_success",
        "variants": [
            {
                "key": "main",
                "weight_bp": 10_000,
                "treatments": [{"action": "coupon", "template_id": template_id}],
            }
        ],
    }
    created = client.post("/api/v1/campaigns", headers=headers, json=body)
    created.raise_for_status()
    campaign_id = created.json()["id"]
    client.post(f"/api/v1/campaigns/{campaign_id}/start", headers=headers).raise_for_status()


def load_average() -> str:
    """The machine's 1-minute load average (``/proc/loadavg``), to read a latency figure by."""
    return Path("/proc/loadavg").read_text().split()[0]


def decision(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        server = None
        try:
            db = Database(url)
            upgrade(db.engine)
            merchant_id, secret, _members = seed(db, 0)
            port = free_port()
            server = start_server(url, Path(tmp), port, args.workers)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                payment_campaign(client, secret)
            path = "/api/v1/decisions/payment-success"

            def payer(prefix: str) -> Callable[[int], bytes]:
                return lambda n: post_request(
                    path, secret, {"identities": {"alipay_user_id": f"{prefix}{n:010d}"}, "amount_fen": 3800}
                )

            whoami = get_request("/api/v1/whoami", secret)
            runs = [
                ("anchor: GET /whoami", lambda _n: whoami),
                ("decision, every payer new", payer("2088")),
                ("decision, payers seen before", payer("2088")),
            ]
            table = Table(
                title=f"payment-success decision on {db.engine.dialect.name}, "
                f"{args.rate:.0f}/s for {args.seconds:.0f} s after {args.warmup:.0f} s of warm-up, "
                f"{args.workers} server process(es)"
            )
            columns = ("load", "requests", "statuses", "p50 ms", "p99 ms", "max ms", "server CPU ms/req")
            for column in columns:
                table.add_column(column, justify="left" if column in ("load", "statuses") else "right")
            for label, make in runs:
                time.sleep(5)  # let the server finish what the previous run left queued
                cpu_before, load_before = cpu_seconds(server.pid), load_average()
                latencies, statuses = asyncio.run(
                    open_loop(port, make, args.rate, args.seconds, warmup=args.warmup)
                )
                sent = len(latencies) + int(args.rate * args.warmup)
                cpu = (cpu_seconds(server.pid) - cpu_before) / sent * 1000
                p50, p99, worst = percentiles(latencies)
                shown = ", ".join(f"{k}×{v}" for k, v in sorted(statuses.items()))
                table.add_row(
                    f"{label} (load {load_before})", f"{len(latencies):,}", shown,
                    f"{p50:.1f}", f"{p99:.1f}", f"{worst:.0f}", f"{cpu:.2f}",
                )  # fmt: skip
            with db.reading() as session:
                offers = session.execute(
                    text("SELECT status, count(*) FROM decisions WHERE merchant_id = :m GROUP BY status"),
                    {"m": merchant_id},
                ).all()
            console.print(table)
            console.print("decisions: " + ", ".join(f"{status} {count:,}" for status, count in offers))
            db.dispose()
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            drop_schema(args.database_url, schema)
    return 0


def decision_cost(args: argparse.Namespace) -> int:
    from fastapi.testclient import TestClient

    from siyu.app import create_app
    from siyu.config import load_settings
    from siyu.decisions import endpoints as decision_endpoints
    from siyu.decisions import service as decision_service
    from siyu.kit.clock import utcnow
    from siyu.tenancy.auth import MerchantCtx

    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            db = Database(url)
            upgrade(db.engine)
            merchant_id, secret, _members = seed(db, 0)
            settings = load_settings(
                data_dir=Path(tmp), database_url=url, secret_key="bench-secret-" + "x" * 40,
                console=False, worker_embedded=False,
            )  # fmt: skip
            app = create_app(settings, db=db, console=False)
            with TestClient(app) as client:
                payment_campaign(client, secret)
            vault = app.state.vault
            statements = [0]

            def count(*_args: Any) -> None:
                statements[0] += 1

            event.listen(db.engine, "before_cursor_execute", count)

            def one(payer: str) -> str:
                """The endpoint's service call: decide, the answer, the commit."""
                with db.sessions() as session:
                    # _out reads only the session and the merchant
                    ctx = MerchantCtx(session=session, principal=None, merchant_id=merchant_id)  # type: ignore[arg-type]
                    payment = decision_service.Payment({"alipay_user_id": payer}, 3800)
                    found = decision_service.decide(session, vault, merchant_id, payment, now=utcnow())
                    answer = decision_endpoints._out(ctx, found)
                    session.commit()
                    return str(answer.status)

            for n in range(50):  # warm the statement caches
                one(f"2099{n:010d}")
            measured = [f"2088{n:010d}" for n in range(args.payers)]
            profiled = [f"2077{n:010d}" for n in range(min(100, args.payers))]
            table = Table(title=f"one payment-success decision on {db.engine.dialect.name}, in process")
            for column in (
                "payers",
                "decisions",
                "statements",
                "Python calls",
                "CPU ms",
                "wall ms",
                "statuses",
            ):
                table.add_column(column, justify="left" if column in ("payers", "statuses") else "right")
            raw = db.engine.raw_connection()  # the anchor: one bare DBAPI write transaction
            try:
                cursor = raw.cursor()
                cursor.execute("CREATE TEMPORARY TABLE bench_anchor (n INTEGER)")
                raw.commit()
                mark = "%s" if db.engine.dialect.name == "postgresql" else "?"  # the driver's paramstyle
                insert_anchor = f"INSERT INTO bench_anchor VALUES ({mark})"
                anchor_cpu = time.process_time()
                for n in range(len(measured)):
                    cursor.execute(insert_anchor, (n,))
                    raw.commit()
                anchor_ms = (time.process_time() - anchor_cpu) / len(measured) * 1000
            finally:
                raw.close()
            table.add_column("CPU ÷ anchor", justify="right")
            for label in ("new (created, assigned, offered)", "seen before (capped)"):
                statements[0] = 0
                wall, cpu = time.perf_counter(), time.process_time()
                statuses = Counter(one(p) for p in measured)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                counted = statements[0] / len(measured)
                profile = cProfile.Profile()  # other payers of the same kind, profiled: calls only
                profile.enable()
                for p in profiled:
                    one(p)
                profile.disable()
                calls = pstats.Stats(profile).total_calls / len(profiled)  # type: ignore[attr-defined]
                if args.dump_profile:  # for `python -m pstats FILE` or snakeviz
                    profile.dump_stats(
                        f"{args.dump_profile}-{'new' if label.startswith('new') else 'seen'}.prof"
                    )
                table.add_row(
                    label, f"{len(measured):,}", f"{counted:.1f}", f"{calls:,.0f}",
                    f"{cpu / len(measured) * 1000:.2f}", f"{wall / len(measured) * 1000:.2f}",
                    ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
                    f"{cpu / len(measured) * 1000 / anchor_ms:.1f}",
                )  # fmt: skip
            table.add_row(
                "anchor: bare INSERT + COMMIT (DBAPI)", f"{len(measured):,}", "2", "",
                f"{anchor_ms:.3f}", "", "", "1.0",
            )  # fmt: skip
            console.print(table)
            console.print(f"load average after measuring: {load_average()}")
            db.dispose()
        finally:
            drop_schema(args.database_url, schema)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preview")
    p.add_argument("--sqlite", default="/tmp/siyu-bench-segments.db")
    p.add_argument("--database-url")
    p.add_argument("--schema", default="bench_segments")
    f = sub.add_parser("fanout")
    f.add_argument("--members", type=int, default=100_000)
    f.add_argument("--database-url")
    cd = sub.add_parser("coupon-delivery")
    cd.add_argument("--members", type=int, default=20_000)
    cd.add_argument("--one-by-one", type=int, default=2_000, help="members of the one-by-one run")
    cd.add_argument("--database-url")
    d = sub.add_parser("decision")
    d.add_argument("--rate", type=float, default=200)
    d.add_argument("--seconds", type=float, default=20)
    d.add_argument("--workers", type=int, default=1, help="server processes (uvicorn --workers)")
    d.add_argument(
        "--warmup", type=float, default=2, help="seconds sent at the rate before the measured ones"
    )
    d.add_argument("--database-url")
    c = sub.add_parser("decision-cost")
    c.add_argument("--payers", type=int, default=500)
    c.add_argument("--database-url")
    c.add_argument("--dump-profile", metavar="PREFIX", help="write PREFIX-new.prof and PREFIX-seen.prof")
    args = parser.parse_args()
    if args.command == "decision-cost":
        return decision_cost(args)
    if args.command == "decision":
        return decision(args)
    if args.command == "preview":
        return preview(args)
    if args.command == "fanout":
        return fanout(args)
    if args.command == "coupon-delivery":
        return coupon_delivery(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
