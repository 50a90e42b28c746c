"""`siyu coupons …`: parse, call the coupons facade, show progress.

``siyu coupons expire`` is the expiry job by hand (cron it, or let the upkeep run it);
``siyu coupons codes`` generates unique promo codes in batches and writes them to a CSV file.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from siyu.cli.common import (
    console,
    domain_errors,
    emit,
    err_console,
    fail,
    open_database,
    render_fields,
    settings_or_exit,
    unit_of_work,
)
from siyu.coupons import facade
from siyu.coupons.models import TemplateStatus
from siyu.kit.clock import utcnow
from siyu.kit.pagination import MAX_LIMIT, PageRequest

coupons_app = typer.Typer(help="Coupons (商家券): templates, promo codes, expiry.", no_args_is_help=True)
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON only")]
CODE_BATCH = 1000


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
    )


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


@coupons_app.command("templates")
def templates(
    merchant: MerchantOpt,
    status: Annotated[TemplateStatus | None, typer.Option(help="only this status")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the merchant's coupon templates with stock. Example: siyu coupons templates -m mch_…"""
    rows = []
    with unit_of_work() as session:
        after: str | None = None
        while True:
            page = facade.list_templates(session, merchant, PageRequest(MAX_LIMIT, after), status=status)
            rows.extend(page.items)
            if page.next_cursor is None:
                break
            after = page.items[-1].id
    if as_json:
        _print_json(
            [{"id": t.id, "name": t.name, "status": t.status, "remaining": t.remaining} for t in rows]
        )
        return
    table = Table(
        "id", "name", "kind", "status", "stock", "issued", "remaining", "redeemed", title="coupon templates"
    )
    for t in rows:
        table.add_row(
            t.id, t.name, t.kind, t.status, str(t.stock), str(t.issued), str(t.remaining), str(t.redeemed)
        )
    console.print(table)


@coupons_app.command("create")
def create(
    merchant: MerchantOpt,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="a JSON template (the API's body)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="name shown to members")] = None,
    kind: Annotated[str | None, typer.Option(help="cash, discount, exchange or threshold")] = None,
    value_fen: Annotated[int | None, typer.Option(help="fen off (cash, threshold)")] = None,
    discount_bp: Annotated[int | None, typer.Option(help="basis points off (discount)")] = None,
    threshold_fen: Annotated[int | None, typer.Option(help="minimum spend of a 满减")] = None,
    stock: Annotated[int | None, typer.Option(help="total stock")] = None,
    valid_days: Annotated[int | None, typer.Option(help="days valid after claim")] = None,
    per_member_limit: Annotated[int | None, typer.Option(help="coupons per member, ever")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft template from options or a JSON file.

    Example: siyu coupons create -m mch_… --name "满30减10" --kind threshold --threshold-fen 3000
    --value-fen 1000 --stock 1000 --valid-days 7
    """
    if file is not None:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(f"cannot read {file}: {exc}")
    else:
        given = {
            "name": name,
            "kind": kind,
            "value_fen": value_fen,
            "discount_bp": discount_bp,
            "threshold_fen": threshold_fen,
            "total_stock": stock,
            "valid_days": valid_days,
            "per_member_limit": per_member_limit,
        }
        data = {k: v for k, v in given.items() if v is not None}
    try:
        spec = facade.TemplateIn.model_validate(data)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))
    with unit_of_work() as session:
        view = facade.create_template(session, merchant, spec, now=utcnow())
    emit(view, as_json, render_fields("coupon template (draft: activate it to issue)"))


@coupons_app.command("codes")
def codes(
    merchant: MerchantOpt,
    template: Annotated[str, typer.Argument(help="template id (cpt_…) with code_mode unique")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=10_000_000, help="codes to generate")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file for the new codes")],
    as_json: JsonFlag = False,
) -> None:
    """Generate unique promo codes in batches (one transaction each) and write them to a CSV.

    Example: siyu coupons codes cpt_… -m mch_… --count 50000 --out codes.csv
    """
    settings = settings_or_exit()
    database = open_database(settings)
    made = 0
    try:
        with out.open("w", newline="", encoding="utf-8") as handle, _progress(as_json) as progress:
            writer = csv.writer(handle)
            writer.writerow(["code", "template_id"])
            task = progress.add_task(f"codes for {template}", total=count)
            while made < count:
                with domain_errors(settings), database.unit_of_work() as session:
                    batch = facade.generate_codes(
                        session, merchant, template, min(CODE_BATCH, count - made), now=utcnow()
                    )
                writer.writerows([code, template] for code in batch.codes)
                made += batch.generated
                progress.update(task, completed=made)
    except OSError as exc:
        fail(f"cannot write {out}: {exc}")
    finally:
        database.dispose()
    if as_json:
        _print_json({"template_id": template, "generated": made, "file": str(out)})
    else:
        console.print(f"{made} codes written to {out}")


@coupons_app.command("expire")
def expire(as_json: JsonFlag = False) -> None:
    """Expire coupons whose validity ended, across merchants, in slices. Example: siyu coupons expire"""
    settings = settings_or_exit()
    database = open_database(settings)
    total = 0
    try:
        with _progress(as_json) as progress:
            task = progress.add_task("expire coupons", total=None)
            while True:
                with domain_errors(settings), database.unit_of_work() as session:
                    done = facade.expire_due(session, now=utcnow())
                total += done
                progress.update(task, completed=total)
                if done < 5000:
                    break
    finally:
        database.dispose()
    if as_json:
        _print_json({"expired": total})
    else:
        console.print(f"{total} coupons expired")
