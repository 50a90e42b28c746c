"""``siyu worker`` (deliver the outbox) and ``siyu outbox list|retry`` (look at it, requeue dead items).

``siyu serve`` runs a worker inside the server already (``SIYU_WORKER_EMBEDDED``); run ``siyu
worker`` as processes of their own when deliveries should not share the API's process, or to run
several (PostgreSQL: they claim disjoint batches with ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from siyu.channels import facade as channels
from siyu.cli.common import console, domain_errors, fail, open_database, say, settings_or_exit, unit_of_work
from siyu.kit.clock import utcnow
from siyu.kit.pagination import PageRequest
from siyu.kit.pii import IdentifierVault
from siyu.outbox import repository
from siyu.outbox.models import ItemStatus
from siyu.outbox.service import RoundReport, known_kinds
from siyu.outbox.worker import Worker, policy_of
from siyu.tenancy import facade as tenancy

outbox_app = typer.Typer(
    help="The outbox: side effects waiting for delivery, and dead letters.", no_args_is_help=True
)
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]
REPORT_EVERY_SECONDS = 2.0


def _totals(report: RoundReport) -> str:
    return (
        f"{report.claimed} processed: {report.done} delivered, {report.retried} to retry, "
        f"{report.dead} dead" + (f", {report.lost} lost to an expired lease" if report.lost else "")
    )


def worker(
    once: Annotated[bool, typer.Option("--once", help="deliver everything due, then exit")] = False,
    batch: Annotated[
        int | None, typer.Option(min=1, max=1000, help="items claimed at once (default SIYU_WORKER_BATCH)")
    ] = None,
    poll: Annotated[
        float | None, typer.Option(min=0.05, max=60, help="idle wait in seconds (default SIYU_WORKER_POLL)")
    ] = None,
) -> None:
    """Deliver the outbox until stopped (Ctrl-C or SIGTERM finish the item in hand, then exit).

    Delivery is at least once: each item goes to its kind's handler with its idempotency key,
    failures are retried with exponential back-off, and an item is dead after
    SIYU_OUTBOX_MAX_ATTEMPTS attempts (see `siyu outbox list --status dead`).

    Example: SIYU_DATABASE_URL=postgresql+psycopg://siyu@db/siyu siyu worker
    """
    settings = settings_or_exit()
    database = open_database(settings)
    with domain_errors(settings):
        channels.use_vault(IdentifierVault(settings.resolved_secret_key()))
    stop = threading.Event()

    def ask_to_stop(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        say(f"{signal.Signals(signum).name}: finishing the item in hand, then stopping", style="yellow")
        stop.set()

    previous = {signum: signal.signal(signum, ask_to_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    last = [time.monotonic()]
    running = RoundReport()

    def progress(report: RoundReport) -> None:
        for name in ("claimed", "done", "retried", "dead", "lost"):
            setattr(running, name, getattr(running, name) + getattr(report, name))
        if time.monotonic() - last[0] >= REPORT_EVERY_SECONDS:
            last[0] = time.monotonic()
            say(f"{utcnow():%H:%M:%S} {_totals(running)}", style="dim")

    loop = Worker(
        database,
        batch=batch or settings.worker_batch,
        poll=poll or settings.worker_poll,
        policy=policy_of(settings),
        on_round=progress,
    )
    say(
        f"outbox worker {'draining' if once else 'running'} (kinds: {', '.join(known_kinds())}); "
        f"batch {loop.batch}, lease {settings.outbox_lease:g} s, {settings.outbox_max_attempts} attempts",
        style="dim",
    )
    try:
        with domain_errors(settings):
            total = loop.run(stop, once=once)
    finally:
        database.dispose()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    say(f"stopped: {_totals(total)}")


@outbox_app.command("list")
def list_items(
    merchant: MerchantOpt,
    status: Annotated[ItemStatus | None, typer.Option(help="pending, in_flight, done or dead")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """A merchant's outbox items, oldest first (with the last error of each).

    Example: siyu outbox list -m mch_… --status dead
    """
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        rows = repository.list_items(
            session, merchant, status=status, kind=None, page=PageRequest(limit=limit)
        )
        counts = repository.counts_by_status(session, merchant)
    rows = rows[:limit]
    if as_json:
        data = [
            {
                "id": r.id,
                "kind": r.kind,
                "key": r.key,
                "status": r.status,
                "attempts": r.attempts,
                "available_at": r.available_at.isoformat(),
                "last_error": r.last_error,
            }
            for r in rows
        ]
        sys.stdout.write(json.dumps({"counts": counts, "items": data}, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("id", "kind", "key", "status", "attempts", "next / lease end", "last error", title="outbox")
    for r in rows:
        table.add_row(
            r.id,
            r.kind,
            r.key,
            r.status,
            str(r.attempts),
            f"{r.available_at:%Y-%m-%d %H:%M:%S}",
            r.last_error or "",
        )
    console.print(table)
    say(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "the outbox is empty", style="dim")


@outbox_app.command("retry")
def retry(
    merchant: MerchantOpt,
    item_ids: Annotated[list[str], typer.Argument(help="dead item ids (obx_…)")],
) -> None:
    """Requeue dead items: pending, due now, with a fresh attempt budget and the same key.

    Example: siyu outbox retry -m mch_… obx_…
    """
    with unit_of_work() as session:
        refused = [i for i in item_ids if not repository.requeue(session, merchant, i, now=utcnow())]
    requeued = len(item_ids) - len(refused)
    say(f"requeued {requeued} item{'s' if requeued != 1 else ''}")
    if refused:
        fail(f"not dead (or not found), left as they are: {', '.join(refused)}")
