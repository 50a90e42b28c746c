"""`siyu campaigns journeys …`: move journey members along now (``siyu serve`` does it every 10 s).

``siyu campaigns journeys advance`` claims due members and takes their steps, a batch per
transaction, until nobody is due; killed at any point, a second run carries on where the first
stopped and sends nothing twice (docs/journeys.md).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from siyu.campaigns import journeys
from siyu.cli.common import domain_errors, err_console, fail, open_database, say, settings_or_exit
from siyu.kit.clock import as_utc, utcnow
from siyu.tenancy import facade as tenancy

journeys_app = typer.Typer(help="Journeys (旅程): move members along their journeys.", no_args_is_help=True)


@journeys_app.command("advance")
def advance(
    merchant: Annotated[
        str | None, typer.Option("--merchant", "-m", help="one merchant (default: all)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many steps")] = 1_000_000,
    batch: Annotated[int, typer.Option(min=1, max=5000, help="steps per transaction")] = journeys.BATCH,
    now: Annotated[
        str | None, typer.Option(help="ISO 8601 instant to advance to (default: now), e.g. to replay")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """Take the steps of every member due by now: entries, actions (treatments), branches, ends
    of waits, exits. Safe to run beside `siyu serve` and beside another run (PostgreSQL: each
    claims different members; SQLite: runs take turns).

    Example: siyu campaigns journeys advance -m mch_…
    """
    settings = settings_or_exit()
    try:
        moment = as_utc(datetime.fromisoformat(now)) if now else utcnow()
    except ValueError as exc:
        fail(f"--now: {exc}")
    database = open_database(settings)
    try:
        if merchant is not None:
            with database.reading() as session:
                if tenancy.get_merchant(session, merchant) is None:
                    fail(f"no merchant {merchant}")
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} steps"))
        with Progress(
            *columns, TimeElapsedColumn(), console=err_console, disable=as_json or not err_console.is_terminal
        ) as bar:
            task = bar.add_task("advancing", total=None)

            def moved(merchant_id: str, steps: int) -> None:
                bar.update(task, advance=steps, description=merchant_id)

            with domain_errors(settings):
                report = journeys.advance_due(
                    database, now=moment, limit=limit, batch=batch, merchant_id=merchant, progress=moved
                )
    finally:
        database.dispose()
    if as_json:
        sys.stdout.write(json.dumps({"steps": report.steps, "postponed": report.postponed}) + "\n")
    else:
        say(f"{report.steps} steps taken, {report.postponed} postponed (paused campaigns, failed steps)")
