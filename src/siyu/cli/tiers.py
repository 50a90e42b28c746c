"""`siyu tiers …`: parse, call the tiers facade, show progress.

``siyu tiers ladder`` prints a merchant's ladder; ``siyu tiers show`` a member's tier and history;
``siyu tiers run`` runs the tier jobs now (``siyu serve`` runs them every hour): re-assessments
after a period end, monthly privilege coupons, birthday gifts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
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
from siyu.members import facade as members
from siyu.tenancy import facade as tenancy
from siyu.tiers import facade, service
from siyu.tiers.facade import JobReport
from siyu.tiers.schemas import TierOut

tiers_app = typer.Typer(
    help="Tiers (会员等级): the ladder, members' tiers, the tier jobs.", no_args_is_help=True
)
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON only")]
SLICE = 2000


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _yuan(fen: int | None) -> str:
    return "" if fen is None else f"¥{fen / 100:,.2f}"


@tiers_app.command("ladder")
def ladder(merchant: MerchantOpt, as_json: JsonFlag = False) -> None:
    """A merchant's tiers, lowest first, with thresholds and benefits."""
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        settings = service.settings_of(session, merchant)
        tiers = [TierOut.model_validate(t) for t in service.tiers_of(session, merchant)]
    if as_json:
        _print_json({"settings": asdict(settings), "tiers": [t.model_dump(mode="json") for t in tiers]})
        return
    unit = "growth value" if settings.basis == "growth" else "fen of 365-day spend"
    title = f"tiers ({settings.basis}: threshold in {unit}; period {settings.period_months} month(s))"
    table = Table("rank", "name", "threshold", "points ×", "monthly coupon", "birthday", "price", title=title)
    for t in tiers:
        birthday = [
            "coupon" if t.birthday_coupon_template_id else "",
            f"{t.birthday_points} points" if t.birthday_points else "",
        ]
        monthly = (
            f"{t.monthly_coupon_count}× {t.monthly_coupon_template_id}"
            if t.monthly_coupon_template_id
            else ""
        )
        price = f"{_yuan(t.price_fen)} / {t.paid_days} d" if t.price_fen is not None else ""
        multiplier = f"{t.points_multiplier_bp / 10_000:g}×"
        table.add_row(
            str(t.rank),
            t.name,
            str(t.threshold),
            multiplier,
            monthly,
            " + ".join(filter(None, birthday)),
            price,
        )
    console.print(table if tiers else "no tiers: add them with POST /api/v1/tiers")


@tiers_app.command("show")
def show(
    member: Annotated[str, typer.Argument(help="member id (mbr_…)")],
    merchant: MerchantOpt,
    as_json: JsonFlag = False,
) -> None:
    """A member's tier, progress to the next tier, and tier history."""
    with unit_of_work() as session:
        found = members.find_member(session, merchant, member)
        if found is None:
            fail(f"no member {member}")
        view = facade.tier_of(session, merchant, found.id, now=utcnow())
        history = facade.history_of(session, merchant, found.id, limit=20)
    if as_json:
        _print_json({"member_id": found.id, "tier": asdict(view), "history": [asdict(h) for h in history]})
        return
    if view.tier is None:
        console.print("the merchant has no tiers")
        return
    console.print(
        f"[bold]{view.tier.name}[/bold] since {view.since or '—'} (points ×{view.multiplier_bp / 10_000:g})"
    )
    earned = view.earned.name if view.earned else "—"
    console.print(
        f"earned: {earned}; value {view.value} ({view.basis}), previous period {view.previous_value}"
    )
    if view.paid:
        console.print(f"paid: {view.paid.name} until {view.paid_until}")
    for floor in view.floors:
        console.print(f"joint membership: {floor}")
    if view.next_tier:
        console.print(
            f"next: {view.next_tier.name}, {view.to_next} to go; the period ends {view.period_ends_at}"
        )
    table = Table("at", "from", "to", "reason", "detail", title="history")
    for change in history:
        table.add_row(
            str(change.at), change.from_tier_id or "", change.to_tier_id or "", change.reason, change.detail
        )
    console.print(table)


@tiers_app.command("run")
def run(
    merchant: Annotated[
        str | None, typer.Option("--merchant", "-m", help="one merchant (default: all)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the tier jobs now, in transactions of 2 000 members: re-assessments due after a period
    end (the only time earned tiers go down), monthly privilege coupons, birthday gifts.

    Idempotent: a second run the same day gives nothing twice. Example: siyu tiers run -m mch_…
    """
    settings = settings_or_exit()
    database = open_database(settings)
    totals: dict[str, JobReport] = {}
    try:
        with database.reading() as session:
            merchants = [merchant] if merchant else tenancy.merchant_ids(session)
            if merchant and tenancy.get_merchant(session, merchant) is None:
                fail(f"no merchant {merchant}")
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed} members"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err_console, disable=as_json or not err_console.is_terminal) as bar:
            for merchant_id in merchants:
                task = bar.add_task(merchant_id, total=None)
                total = totals[merchant_id] = JobReport()

                def advance(step: str, n: int, task: TaskID = task, merchant_id: str = merchant_id) -> None:
                    bar.update(task, advance=n, description=f"{merchant_id}: {step}")

                while True:
                    with domain_errors(settings), database.unit_of_work() as session:
                        report = facade.run_due(
                            session, merchant_id, now=utcnow(), progress=advance, max_members=SLICE
                        )
                    total.assessed += report.assessed
                    total.changed += report.changed
                    total.privilege_coupons += report.privilege_coupons
                    total.birthday_gifts += report.birthday_gifts
                    for reason, n in report.refused.items():
                        total.refused[reason] = total.refused.get(reason, 0) + n
                    if report.done:
                        break
    finally:
        database.dispose()
    data = {
        m: {k: v for k, v in asdict(r).items() if k not in ("handled", "done")} for m, r in totals.items()
    }
    if as_json:
        _print_json(data)
        return
    table = Table("merchant", "assessed", "changed", "privilege coupons", "birthday gifts", "refused")
    for merchant_id, r in data.items():
        refused = ", ".join(f"{k} {v}" for k, v in r["refused"].items())
        table.add_row(
            merchant_id,
            *(str(r[k]) for k in ("assessed", "changed", "privilege_coupons", "birthday_gifts")),
            refused,
        )
    console.print(table)
