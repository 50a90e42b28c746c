"""``siyu lifecycle sweep|stages|flows``: the daily job by hand, and the ledger's figures.

``siyu serve`` runs the sweep every hour by itself; ``siyu lifecycle sweep`` is for deployments
that run the API elsewhere (cron it after local midnight) and for applying changed rules at once.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from siyu.cli.common import (
    console,
    domain_errors,
    err_console,
    fail,
    open_database,
    settings_or_exit,
    unit_of_work,
)
from siyu.kit.clock import utcnow
from siyu.lifecycle import facade
from siyu.tenancy import facade as tenancy

lifecycle_app = typer.Typer(
    help="Lifecycle stages (生命周期) and the user-asset ledger (用户资产台账).", no_args_is_help=True
)
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON only")]


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{name} must be a date like 2026-11-22, not {value!r}")


def _progress(quiet: bool) -> Progress:
    """A progress bar on stderr when it is a terminal (never with ``--json``)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
    )


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@lifecycle_app.command("sweep")
def sweep(
    merchant: Annotated[
        str | None, typer.Option("--merchant", "-m", help="merchant id (default: every merchant)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply today's time-based stage changes (dormant, lost, windows ageing) now.

    Idempotent: a second run the same day finds nothing due. Example: siyu lifecycle sweep
    """
    results = []
    settings = settings_or_exit()
    database = open_database(settings)
    try:
        with domain_errors(settings), database.reading() as session:
            merchant_ids = [merchant] if merchant else tenancy.merchant_ids(session)
            if merchant and tenancy.get_merchant(session, merchant) is None:
                fail(f"no merchant {merchant}")
        with _progress(as_json) as progress:
            for merchant_id in merchant_ids:
                task = progress.add_task(f"sweep {merchant_id}", total=None)
                members = changes = 0
                while True:  # a slice of members per transaction, as the upkeep does
                    with domain_errors(settings), database.unit_of_work() as session:
                        result = facade.sweep(
                            session, merchant_id, now=utcnow(), max_members=facade.SWEEP_SLICE
                        )
                    members += result.members
                    changes += result.transitions
                    progress.update(task, completed=members)
                    if result.members < facade.SWEEP_SLICE:
                        break
                progress.update(task, completed=members, total=max(members, 1))
                results.append(
                    {
                        "merchant_id": merchant_id,
                        "day": result.day.isoformat(),
                        "members": members,
                        "transitions": changes,
                    }
                )
    finally:
        database.dispose()
    if as_json:
        _print_json(results)
        return
    table = Table("merchant", "day", "members re-classified", "stage changes", title="lifecycle sweep")
    for r in results:
        table.add_row(str(r["merchant_id"]), str(r["day"]), str(r["members"]), str(r["transitions"]))
    console.print(table)


@lifecycle_app.command("rebuild")
def rebuild(
    merchant: MerchantOpt,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Rewrite the merchant's ledger from its event history, as if classified every day.

    For after importing past orders: imported history arrives today, so the live ledger dates
    every change today. Replaces the whole ledger of the merchant (entries get cause 'rebuild').
    Example: siyu import orders history.csv -m mch_… && siyu lifecycle rebuild -m mch_… --yes
    """
    if not yes and not typer.confirm(f"Replace the whole user-asset ledger of {merchant}?", err=True):
        fail("nothing changed")
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        with _progress(as_json) as progress:
            task = progress.add_task(f"rebuild {merchant}", total=None)
            result = facade.rebuild(
                session,
                merchant,
                now=utcnow(),
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    summary = {"merchant_id": merchant, "members": result.members, "transitions": result.transitions}
    if as_json:
        _print_json(summary)
    else:
        console.print(f"ledger rebuilt: {result.members} members, {result.transitions} entries")


@lifecycle_app.command("stages")
def stages(
    merchant: MerchantOpt,
    on: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: today, local)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Members per stage at the end of a day, from the ledger. Example: siyu lifecycle stages -m mch_…"""
    day = _day(on, "--date")
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        day = day or facade.today(session, merchant, utcnow())
        counts = facade.stage_counts(session, merchant, day)
    if as_json:
        _print_json({"date": day.isoformat(), "stages": {s.value: n for s, n in counts.items()}})
        return
    table = Table("stage", "members", title=f"stages on {day.isoformat()}")
    for stage, n in counts.items():
        table.add_row(stage.value, str(n))
    table.add_row("total", str(sum(counts.values())), style="bold")
    console.print(table)


@lifecycle_app.command("flows")
def flows(
    merchant: MerchantOpt,
    start: Annotated[str, typer.Option("--from", help="YYYY-MM-DD")],
    end: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD (default: today, local)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Members moving between stages from one day to another.

    Example: siyu lifecycle flows -m mch_… --from 2026-10-01
    """
    first, last = _day(start, "--from"), _day(end, "--to")
    assert first is not None
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        last = last or facade.today(session, merchant, utcnow())
        if last < first:
            fail("--to is before --from")
        found = facade.flows(session, merchant, first, last)
    rows = [
        {
            "from_stage": f.from_stage.value if f.from_stage else None,
            "to_stage": f.to_stage.value if f.to_stage else None,
            "members": f.members,
        }
        for f in found
    ]
    if as_json:
        _print_json({"from": first.isoformat(), "to": last.isoformat(), "flows": rows})
        return
    table = Table("from", "to", "members", title=f"stage flows {first.isoformat()} → {last.isoformat()}")
    for r in rows:
        table.add_row(str(r["from_stage"] or "(new)"), str(r["to_stage"] or "(merged)"), str(r["members"]))
    console.print(table)
