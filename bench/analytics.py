"""The C-CARE dashboard and cohort retention on 1 M members / 30 M events: mirror vs state store.

    python bench/segment_data.py --members 1000000 --events 30000000 --out /tmp/siyu-bench-analytics.db
    python bench/analytics.py --db /tmp/siyu-bench-analytics.db --mirror /tmp/mirror-1m-sqlite [--rebuild]
    python bench/analytics.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --schema bench_analytics --mirror /tmp/mirror-1m-pg [--rebuild]

The data set is bench/segment_data.py's (generated inside the database; its shape is described
there). ``--rebuild`` first builds the mirror from the state store and times it; otherwise the
mirror under ``--mirror`` is brought current with one sync. ``--mirror-only`` skips the state
store (at 1 M on SQLite its dashboard takes minutes a repeat).

Measured in one run, each the best of ``--repeat`` requests, and each request as the API
answers one (a read session, a fresh analytics context, the work: the timings include opening
them):

* **dashboard**: every registered section (Customer, Scale, Active, woRth, Efficiency) for one
  period (the 30 local days ending on the data set's "now"), exactly as
  ``GET /api/v1/analytics/dashboard`` computes it, from the mirror (DuckDB over Parquet); the
  process's first request is printed too (after ``service.prewarm``, which ``siyu serve`` runs
  at start: DuckDB has read the files' footers, nothing else);
* **cohorts**: monthly first-order cohorts over the data set's half year, retention by paid order;
* **rolling DAU/WAU/MAU shapes**: the portable ``LEAD`` statement and DuckDB's bitmask statement
  (the mask technique of the dashboard's one-pass period figures on the mirror,
  ``metrics.period``), alternately on the mirror, and whether they agree;
* **anchor**: the same queries run directly on the state store (SQLite or PostgreSQL) — the same
  Core statements over the state store's relations. The ratio is state ÷ mirror.

The answers from both sources are compared and must be equal (the figures mean nothing
otherwise). Prints its figures; bench/RESULTS.md keeps the latest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from segment_data import MERCHANT_NAME, NOW
from siyu.analytics import mirror, service
from siyu.analytics.metrics import active, cohorts
from siyu.analytics.scope import Grain, Scope
from siyu.analytics.service import AnalyticsContext, Source
from siyu.db import Database
from siyu.migrate import upgrade
from siyu.tenancy.models import Merchant

console = Console()


def best_of(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    best, answer = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = work()
        best = min(best, time.perf_counter() - started)
    return best, answer


def dashboard(ctx: AnalyticsContext, scope: Scope, timings: dict[str, float]) -> dict[str, Any]:

    def took(name: str, seconds: float) -> None:
        timings[name] = min(timings.get(name, float("inf")), seconds)

    return service.dashboard(ctx, scope, Grain.DAY, timed=took)


def retention(ctx: AnalyticsContext, scope: Scope) -> Any:
    return cohorts.cohort_section(
        ctx.rows, ctx.rel, scope, Grain.MONTH, cohorts.Activity.ORDER, by_channel=False
    )


def comparable(answer: Any) -> Any:
    """The answer without what legitimately differs by source (operable assets over time are
    recorded daily by the mirror; the state store knows only today)."""
    data = {k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in answer.items()}
    customer = data.get("customer")
    if isinstance(customer, dict):
        customer.pop("operable_assets", None)
    return data


def rolling_shapes(
    database: Database, root: Path, merchant_id: str, period: Scope, repeat: int
) -> dict[str, Any]:
    """The portable ``LEAD`` statement of rolling DAU/WAU/MAU against DuckDB's bitmask statement
    (the mask technique of ``metrics.period``), alternately, on the same mirror in the same run."""
    best = {"lead": float("inf"), "masks": float("inf")}
    answers: dict[str, Any] = {}
    with (
        database.reading() as session,
        service.open_context(session, root, merchant_id, source=Source.MIRROR, now=NOW) as ctx,
    ):
        masks = active.rolling_active_masks(ctx.rel, period)
        assert masks is not None
        for _ in range(repeat):
            for name, work in (
                (
                    "lead",
                    lambda: active.daily_active(period, ctx.rows(active.rolling_active(ctx.rel, period))),
                ),
                ("masks", lambda: active.daily_active_of_masks(period, ctx.one(masks))),
            ):
                took, answers[name] = best_of(1, work)
                best[name] = min(best[name], took)
    return {**best, "same": answers["lead"] == answers["masks"]}


def print_shapes(shapes: dict[str, Any]) -> None:
    lead, masks = shapes["lead"], shapes["masks"]
    console.print(
        f"rolling DAU/WAU/MAU on the mirror: LEAD shape {lead:.3f} s, bitmask shape {masks:.3f} s "
        f"(LEAD ÷ bitmask {lead / masks:.1f}×), same answer: {shapes['same']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/tmp/siyu-bench-analytics.db", help="SQLite file")
    parser.add_argument("--database-url", help="PostgreSQL base URL (else SQLite --db)")
    parser.add_argument("--schema", default="bench_analytics")
    parser.add_argument("--mirror", required=True, type=Path, help="the mirror's directory")
    parser.add_argument("--rebuild", action="store_true", help="build the mirror from scratch first")
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="query the mirror as it is (a sync rewrites the 1 M-member snapshot: ~100 s)",
    )
    parser.add_argument("--answers", type=Path, help="write the mirror's answers here (JSON)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--mirror-only",
        action="store_true",
        help="skip the state-store anchor (at 1 M on SQLite it takes minutes a repeat)",
    )
    args = parser.parse_args()
    if args.db.startswith("sqlite:"):
        parser.error("--db takes the SQLite file's path, not a URL")
    if args.database_url:
        separator = "&" if "?" in args.database_url else "?"
        url = f"{args.database_url}{separator}options={quote(f'-csearch_path={args.schema}')}"
    else:
        url = f"sqlite:///{args.db}"
    database = Database(url)
    upgrade(database.engine)
    with database.reading() as session:
        merchant_id = session.execute(select(Merchant.id).where(Merchant.name == MERCHANT_NAME)).scalar_one()
    engine = database.engine.dialect.name
    console.print(f"[bold]{engine}[/]: merchant {merchant_id}, mirror {args.mirror}")

    started = time.perf_counter()
    if args.rebuild:
        report = mirror.rebuild(database, args.mirror, now=NOW)
    elif not args.no_sync:
        report = mirror.sync(database, args.mirror, now=NOW)
    took = time.perf_counter() - started
    if args.rebuild or not args.no_sync:
        verb = "rebuild" if args.rebuild else "sync"
        console.print(f"mirror {verb}: {report.events:,} events in {took:.1f} s")

    end = (NOW + timedelta(hours=8)).date()
    period = Scope(end - timedelta(days=29), end)
    half_year = Scope(end - timedelta(days=180), end)
    figures: dict[str, dict[str, float]] = {}
    answers: dict[str, tuple[Any, Any]] = {}
    started = time.perf_counter()
    files = service.prewarm(args.mirror)  # as `siyu serve` does at start
    console.print(
        f"prewarm (as siyu serve at start): {files:,} files' footers in {time.perf_counter() - started:.2f} s"
    )
    for source in (Source.MIRROR,) if args.mirror_only else (Source.MIRROR, Source.STATE):
        timings: dict[str, float] = {}

        def request(work: Callable[[AnalyticsContext], Any]) -> Any:
            """As the API answers one request: a read session, a fresh context, the work."""
            with (
                database.reading() as session,
                service.open_context(session, args.mirror, merchant_id, source=source, now=NOW) as ctx,  # noqa: B023
            ):
                return work(ctx)

        first_s, _ = best_of(1, lambda: request(lambda ctx: dashboard(ctx, period, timings)))  # noqa: B023
        board_s, board = best_of(args.repeat, lambda: request(lambda ctx: dashboard(ctx, period, timings)))  # noqa: B023
        cohort_s, triangle = best_of(args.repeat, lambda: request(lambda ctx: retention(ctx, half_year)))
        board_s = min(board_s, first_s)
        figures[source.value] = {
            "dashboard": board_s,
            "first request": first_s,
            "cohorts": cohort_s,
            **timings,
        }
        answers[source.value] = (comparable(board), asdict(triangle))
        console.print(
            f"{source.value}: dashboard {board_s:.2f} s (the process's first request {first_s:.2f} s), "
            f"cohorts {cohort_s:.2f} s"
        )

    if args.answers:
        args.answers.write_text(json.dumps(answers["mirror"], default=str, sort_keys=True, indent=1))
    shapes = rolling_shapes(database, args.mirror, merchant_id, period, args.repeat)

    if args.mirror_only:
        console.print({name: round(took, 3) for name, took in figures["mirror"].items()})
        print_shapes(shapes)
        return
    same = answers["mirror"] == answers["state"]
    table = Table(
        title=f"C-CARE dashboard, {engine}, period {period.start}..{period.end} (best of {args.repeat})"
    )
    table.add_column("query")
    table.add_column("mirror (DuckDB) s", justify="right")
    table.add_column(f"state store ({engine}) s", justify="right")
    table.add_column("state ÷ mirror", justify="right")
    for name in figures["mirror"]:
        m, s = figures["mirror"][name], figures["state"][name]
        table.add_row(name, f"{m:.3f}", f"{s:.3f}", f"{s / m:.1f}×" if m else "-")
    console.print(table)
    print_shapes(shapes)
    console.print(f"answers equal on both sources: {same}")
    if not same:
        for key in answers["mirror"][0]:
            if answers["mirror"][0][key] != answers["state"][0].get(key):
                console.print(f"  differs: {key}")
        if answers["mirror"][1] != answers["state"][1]:
            console.print("  differs: cohorts")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
