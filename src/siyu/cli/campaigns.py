"""`siyu campaigns …`: list a merchant's campaigns, show one, run the campaign round now.

``siyu serve`` runs the round every 30 seconds; ``siyu campaigns run`` does it at once (a
broadcast's run to its end, in transactions of 2,000 members, with a progress line), which is
also how an embedded installation without a server sends a campaign.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from siyu.campaigns import facade, service, tasks
from siyu.campaigns import repository as repo
from siyu.campaigns.schemas import CampaignOut
from siyu.cli.common import console, domain_errors, fail, open_database, settings_or_exit, unit_of_work
from siyu.kit.pagination import PageRequest
from siyu.tenancy import facade as tenancy

campaigns_app = typer.Typer(
    help="Campaigns (营销活动): list, show, run the due work now.", no_args_is_help=True
)
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON only")]


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _budget(spent: int, cap: int | None) -> str:
    return f"{spent}" if cap is None else f"{spent}/{cap}"


@campaigns_app.command("list")
def list_campaigns(
    merchant: MerchantOpt,
    status: Annotated[
        str | None, typer.Option(help="draft, scheduled, running, paused, completed, cancelled")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A merchant's campaigns, oldest first."""
    with unit_of_work() as session:
        if tenancy.get_merchant(session, merchant) is None:
            fail(f"no merchant {merchant}")
        rows = repo.list_page(session, merchant, PageRequest(limit=200), status=status)[:200]
        items = [CampaignOut.model_validate(r) for r in rows]
    if as_json:
        _print_json([i.model_dump(mode="json") for i in items])
        return
    table = Table("id", "name", "kind", "goal", "status", "holdout", "coupons", "points", "fen")
    for c in items:
        table.add_row(
            c.id, c.name, c.kind, c.goal, c.status, f"{c.holdout_bp / 100:g} %",
            _budget(c.spent_coupons, c.budget_coupons), _budget(c.spent_points, c.budget_points),
            _budget(c.spent_fen, c.budget_fen),
        )  # fmt: skip
    console.print(table if items else "no campaigns")


@campaigns_app.command("show")
def show(
    campaign: Annotated[str, typer.Argument(help="campaign id (cmp_…)")],
    merchant: MerchantOpt,
    as_json: JsonFlag = False,
) -> None:
    """One campaign and its runs."""
    with unit_of_work() as session:
        view = facade.get_campaign(session, merchant, campaign)
        if view is None:
            fail(f"no campaign {campaign}")
        item = CampaignOut.model_validate(service.require(session, merchant, campaign))
        runs = repo.runs_of(session, merchant, campaign)
        run_rows = [
            {"occurrence": r.occurrence, "status": r.status, "members": r.members, "treated": r.treated,
             "cursor": r.cursor, "finished_at": r.finished_at}
            for r in runs
        ]  # fmt: skip
    if as_json:
        _print_json({"campaign": item.model_dump(mode="json"), "runs": run_rows})
        return
    console.print(f"[bold]{item.name}[/bold] ({item.id}) — {item.kind}, goal {item.goal}, {item.status}")
    console.print(f"holdout {item.holdout_bp / 100:g} %, attribution {item.attribution_days} days")
    for variant in item.variants:
        actions = ", ".join(str(t.get("action")) for t in variant.get("treatments") or [])
        console.print(f"variant {variant['key']} ({variant['weight_bp'] / 100:g} %): {actions or '—'}")
    console.print(
        f"spent: coupons {_budget(item.spent_coupons, item.budget_coupons)}, "
        f"points {_budget(item.spent_points, item.budget_points)}, "
        f"fen {_budget(item.spent_fen, item.budget_fen)}"
    )
    table = Table("occurrence", "status", "members", "treated", "finished", title="runs")
    for r in run_rows:
        table.add_row(
            str(r["occurrence"]),
            str(r["status"]),
            str(r["members"]),
            str(r["treated"]),
            str(r["finished_at"] or ""),
        )
    console.print(table)


@campaigns_app.command("run")
def run(
    merchant: Annotated[
        str | None, typer.Option("--merchant", "-m", help="one merchant (default: all)")
    ] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", "-c", help="one campaign")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Do the due campaign work now: start and end campaigns on schedule, run broadcasts to their
    end, scan stage and birthday triggers, fire due trigger entries. Idempotent."""
    settings = settings_or_exit()
    database = open_database(settings)
    try:
        with database.reading() as session:
            merchants = [merchant] if merchant else tenancy.merchant_ids(session)
            if merchant and tenancy.get_merchant(session, merchant) is None:
                fail(f"no merchant {merchant}")
        results: dict[str, dict[str, int]] = {}
        for merchant_id in merchants:
            with domain_errors(settings):
                report = tasks.run_merchant(database, merchant_id, campaign_id=campaign)
            results[merchant_id] = report.as_dict()
    finally:
        database.dispose()
    if as_json:
        _print_json(results)
        return
    columns = list(tasks.TaskReport().as_dict())
    table = Table("merchant", *columns)
    for merchant_id, values in results.items():
        table.add_row(merchant_id, *(str(values[c]) for c in columns))
    console.print(table)
