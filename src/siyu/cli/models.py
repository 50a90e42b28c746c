"""`siyu models …`: refit the member models now, list fits.

``siyu models refit`` records a fit for each merchant (or the one named) and runs it in this
process, with a progress line per step; the same job runs in the background after
``POST /api/v1/models/refit``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from siyu.cli.common import console, domain_errors, err_console, fail, open_database, settings_or_exit
from siyu.kit.clock import utcnow
from siyu.models import facade
from siyu.models.models import FitStatus
from siyu.models.tasks import run_refit
from siyu.tenancy import facade as tenancy

models_app = typer.Typer(
    help="Member models: CLV, P(alive), churn risk, high-potential (refits and their record).",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON only")]


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _table(fits: list[facade.FitView]) -> Table:
    table = Table(
        "fit", "merchant", "status", "as of", "buyers", "repeat", "prospects", "AUC", "scored", "error"
    )
    for f in fits:
        table.add_row(
            f.id,
            f.merchant_id,
            f.status,
            str(f.as_of or ""),
            str(f.n_customers or 0),
            str(f.n_repeat or 0),
            str(f.n_prospects or 0),
            "" if f.auc is None else f"{f.auc:.3f}",
            str(f.members_scored),
            f.error or "",
        )
    return table


@models_app.command("refit")
def refit(
    merchant: Annotated[
        str | None, typer.Option("--merchant", "-m", help="one merchant (default: all)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fit BG/NBD + Gamma-Gamma and the high-potential classifier, and rewrite every member's scores.

    Exit code 2 when a fit failed (its error is shown). Example: siyu models refit -m mch_…
    """
    settings = settings_or_exit()
    database = open_database(settings)
    done: list[facade.FitView] = []
    try:
        with database.reading() as session:
            if merchant and tenancy.get_merchant(session, merchant) is None:
                fail(f"no merchant {merchant}")
            merchants = [merchant] if merchant else tenancy.merchant_ids(session)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=err_console, disable=as_json or not err_console.is_terminal) as bar:
            for merchant_id in merchants:
                task = bar.add_task(merchant_id, total=None)
                with domain_errors(settings), database.unit_of_work() as session:
                    fit_id = facade.request_refit(session, merchant_id, now=utcnow()).id

                def step(text: str, task: TaskID = task, merchant_id: str = merchant_id) -> None:
                    bar.update(task, description=f"{merchant_id}: {text}")

                with domain_errors(settings):
                    run_refit(database, merchant_id, fit_id, progress=step)
                with database.reading() as session:
                    view = facade.fit(session, merchant_id, fit_id)
                assert view is not None
                done.append(view)
                bar.update(task, description=f"{merchant_id}: {view.status}")
    finally:
        database.dispose()
    if as_json:
        _print_json([asdict(v) for v in done])
    else:
        console.print(_table(done))
    if any(v.status is FitStatus.FAILED for v in done):
        raise typer.Exit(2)


@models_app.command("fits")
def fits(
    merchant: Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """A merchant's latest fits, newest first."""
    settings = settings_or_exit()
    database = open_database(settings)
    try:
        with database.reading() as session:
            if tenancy.get_merchant(session, merchant) is None:
                fail(f"no merchant {merchant}")
            views = facade.latest_fits(session, merchant, limit=limit)
    finally:
        database.dispose()
    if as_json:
        _print_json([asdict(v) for v in views])
    else:
        console.print(_table(views))
