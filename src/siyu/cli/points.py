"""`siyu points …`: parse, call the points facade, show progress.

``siyu points expire`` runs the expiry job (cron it daily, after the merchants' midnight);
``siyu points adjust`` corrects a member's balance with a reason; ``siyu points liability``
prints the outstanding points by expiry month.
"""

from __future__ import annotations

import json
import secrets
import sys
from typing import Annotated

import typer
from rich.table import Table

from siyu.cli.common import (
    as_dict,
    console,
    domain_errors,
    emit,
    fail,
    open_database,
    render_fields,
    settings_or_exit,
    unit_of_work,
)
from siyu.kit.clock import utcnow
from siyu.members import facade as members
from siyu.points import facade
from siyu.tenancy import facade as tenancy

points_app = typer.Typer(help="Points (积分): expiry, adjustments, liability.", no_args_is_help=True)
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON only")]
BATCH = 5000


@points_app.command("expire")
def expire(as_json: JsonFlag = False) -> None:
    """Expire every lot past its expiry date, in transactions of 5 000 lots.

    Idempotent: a second run finds nothing due. Example: siyu points expire
    """
    settings = settings_or_exit()
    database = open_database(settings)
    total = 0
    try:
        while True:
            with domain_errors(settings), database.unit_of_work() as session:
                done = facade.expire_due(session, now=utcnow(), limit=BATCH)
            total += done
            if done < BATCH:
                break
    finally:
        database.dispose()
    if as_json:
        sys.stdout.write(json.dumps({"lots_expired": total}) + "\n")
    else:
        console.print(f"{total} lot(s) expired")


@points_app.command("adjust")
def adjust(
    member: Annotated[str, typer.Argument(help="member id (mbr_…)")],
    points: Annotated[int, typer.Argument(help="points to add (negative to take)")],
    merchant: MerchantOpt,
    reason: Annotated[str, typer.Option("--reason", help="why (required, kept on the entry)")],
    key: Annotated[str | None, typer.Option("--key", help="idempotency key (default: a new one)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Adjust a member's points by hand, with a reason kept on the entry.

    Example: siyu points adjust mbr_… 100 -m mch_… --reason 'goodwill'. To take points, put the
    options first and ``--`` before the negative number: siyu points adjust -m mch_… --reason x -- mbr_… -20
    """
    if points == 0:
        fail("points must not be zero")
    if not reason.strip():
        fail("--reason must not be empty")
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        found = members.find_member(session, merchant, member)
        if found is None:
            fail(f"no member {member}")
        if found.erased:
            fail(f"member {member} was erased")
        entry = facade.adjust(
            session,
            merchant,
            found.id,
            points=points,
            reason=reason,
            key=key or f"cli-{secrets.token_hex(8)}",
            source="cli",
            now=utcnow(),
        )
    emit(entry, as_json, render_fields("points adjusted"))


@points_app.command("liability")
def liability(merchant: MerchantOpt, as_json: JsonFlag = False) -> None:
    """Outstanding points by expiry month (merchant's time zone), total and shortfall."""
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        view = facade.liability(session, merchant, now=utcnow())
    if as_json:
        data = as_dict(view)
        data["by_expiry_month"] = [as_dict(m) for m in view.by_expiry_month]
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("expiry month", "points", title=f"points liability ({view.timezone})")
    for month in view.by_expiry_month:
        table.add_row(month.month or "never", str(month.points))
    table.add_row("total", str(view.total), style="bold")
    console.print(table)
    console.print(
        f"members with points: {view.members}; negative balances: {view.negative_balances}; "
        f"shortfall recorded: {view.shortfall}"
    )
