"""Entry point of the ``siyu`` command.

Every command honours ``SIYU_DATA_DIR`` and ``SIYU_DATABASE_URL``, runs in one unit of work and
calls tenancy facades only. Commands that create something accept ``--json`` and then print only
the created object (an API key's secret, or a generated password, included once) so that scripts
can drive them. Errors are one ``error: …`` line on stderr: exit code 2 for bad configuration or
input, a refused operation or an unreachable database; 1 for anything unexpected (a bug).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.cli.analytics import analytics_app
from siyu.cli.campaigns import campaigns_app
from siyu.cli.common import (
    EXIT_UNEXPECTED,
    console,
    emit,
    fail,
    print_error,
    render_fields,
    unit_of_work,
)
from siyu.cli.coupons import coupons_app
from siyu.cli.demo import demo
from siyu.cli.imports import import_app
from siyu.cli.journeys import journeys_app
from siyu.cli.lifecycle import lifecycle_app
from siyu.cli.models import models_app
from siyu.cli.points import points_app
from siyu.cli.serve import db_app, serve
from siyu.cli.tiers import tiers_app
from siyu.cli.worker import outbox_app, worker
from siyu.kit.crypto import generate_password
from siyu.kit.problems import NotFound
from siyu.tenancy import facade
from siyu.tenancy.models import StaffRole, StoreKind
from siyu.tenancy.scopes import ALL_PROVIDER_SCOPES, MERCHANT_SCOPES, Scope, sorted_scopes

app = typer.Typer(
    name="siyu",
    help=(
        "Siyu (私域): the operating system for a merchant's user assets.\n\n"
        "Data lives in SIYU_DATA_DIR (default ./siyu-data, SQLite) unless SIYU_DATABASE_URL names a "
        "PostgreSQL database; every command brings the schema up to date first. "
        "Errors are one line on stderr; exit code 2 means: fix the input or the configuration."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(serve)
app.command()(worker)
app.command()(demo)
app.add_typer(db_app, name="db")
provider_app = typer.Typer(help="Service providers (服务商).", no_args_is_help=True)
merchant_app = typer.Typer(help="Merchants (商家).", no_args_is_help=True)
store_app = typer.Typer(help="Stores (门店).", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts for the console.", no_args_is_help=True)
key_app = typer.Typer(help="API keys (secrets are shown once).", no_args_is_help=True)
grant_app = typer.Typer(help="Provider grants (代运营授权).", no_args_is_help=True)
for sub, name in [
    (provider_app, "provider"),
    (merchant_app, "merchant"),
    (store_app, "store"),
    (staff_app, "staff"),
    (key_app, "key"),
    (grant_app, "grant"),
]:
    app.add_typer(sub, name=name)
app.add_typer(import_app, name="import")
app.add_typer(lifecycle_app, name="lifecycle")
app.add_typer(coupons_app, name="coupons")
app.add_typer(points_app, name="points")
app.add_typer(tiers_app, name="tiers")
app.add_typer(outbox_app, name="outbox")
app.add_typer(models_app, name="models")
app.add_typer(analytics_app, name="analytics")
campaigns_app.add_typer(journeys_app, name="journeys")
app.add_typer(campaigns_app, name="campaigns")

KNOWN_SCOPES = ", ".join(sorted_scopes(Scope))
JsonFlag = Annotated[bool, typer.Option("--json", help="print the created object as JSON only")]
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]


@provider_app.command("create")
def provider_create(
    name: Annotated[str, typer.Option(help="display name")], as_json: JsonFlag = False
) -> None:
    """Create a service provider (服务商), who can then be granted access to merchants.

    Example: siyu provider create --name 杭州某代运营 --json
    """
    with unit_of_work() as session:
        view = facade.create_provider(session, name=name)
    emit(view, as_json, render_fields("provider created"))


@merchant_app.command("create")
def merchant_create(
    name: Annotated[str, typer.Option(help="merchant name")],
    timezone: Annotated[str, typer.Option(help="IANA time zone for day boundaries")] = "Asia/Shanghai",
    currency: Annotated[str, typer.Option(help="ISO 4217 currency")] = "CNY",
    as_json: JsonFlag = False,
) -> None:
    """Create a merchant (商家).

    Example: siyu merchant create --name 一杯咖啡 --json
    """
    with unit_of_work() as session:
        view = facade.create_merchant(session, name=name, timezone=timezone, currency=currency)
    emit(view, as_json, render_fields("merchant created"))


@store_app.command("create")
def store_create(
    merchant: MerchantOpt,
    name: Annotated[str, typer.Option(help="store name")],
    code: Annotated[str | None, typer.Option(help="the merchant's store code (default S0001, …)")] = None,
    kind: Annotated[StoreKind, typer.Option(help="direct (直营) or franchise (加盟)")] = StoreKind.DIRECT,
    city: Annotated[str | None, typer.Option()] = None,
    address: Annotated[str | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option(min=-90, max=90, help="latitude (with --lng)")] = None,
    lng: Annotated[float | None, typer.Option(min=-180, max=180, help="longitude (with --lat)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a store (门店) of a merchant.

    Example: siyu store create -m mch_… --name 徐汇店 --city 上海 --lat 31.19 --lng 121.44
    """
    with unit_of_work() as session:
        _require_merchant(session, merchant)
        view = facade.create_store(
            session,
            merchant,
            name=name,
            code=code,
            kind=kind,
            city=city,
            address=address,
            latitude=lat,
            longitude=lng,
        )
    emit(view, as_json, render_fields("store created"))


def stdin_is_terminal() -> bool:
    """Whether a person can answer a prompt (tests replace this)."""
    return sys.stdin.isatty()


@staff_app.command("create")
def staff_create(
    merchant: MerchantOpt,
    login: Annotated[str, typer.Option(help="console login")],
    role: Annotated[StaffRole, typer.Option(help="owner, operator, analyst or guide")],
    name: Annotated[str, typer.Option(help="display name (default: the login)")] = "",
    password: Annotated[
        str | None,
        typer.Option(help="asked for (hidden) when omitted on a terminal; else generated and shown once"),
    ] = None,
    store: Annotated[
        list[str] | None, typer.Option(help="limit the account to this store (repeat); franchise staff")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a console account for a merchant's staff.

    Example: siyu staff create -m mch_… --login li --role guide --store str_…
    """
    generated = None
    if password is None:
        if stdin_is_terminal():
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        else:
            password = generated = generate_password()
    with unit_of_work() as session:
        _require_merchant(session, merchant)
        view = facade.create_staff(
            session,
            merchant,
            login=login,
            role=role,
            password=password,
            display_name=name,
            store_ids=store or (),
        )
    emit(view, as_json, render_fields("staff created"), extra={"password": generated} if generated else None)
    if generated and not as_json:
        console.print("[yellow]The generated password is shown this once: keep it now.[/]")


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Option(help="what the key is for")],
    merchant: Annotated[str | None, typer.Option("--merchant", "-m", help="a merchant's key")] = None,
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="a provider's key")] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"scope (repeat); default: all the owner can hold. Known: {KNOWN_SCOPES}"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key for a merchant or a provider and print its secret once.

    Example: siyu key create -m mch_… --name pos --scope events:write --scope members:read
    """
    if (merchant is None) == (provider is None):
        fail("give exactly one of --merchant or --provider")
    default = MERCHANT_SCOPES if merchant else ALL_PROVIDER_SCOPES
    with unit_of_work() as session:
        if merchant:
            _require_merchant(session, merchant)
        try:
            view = facade.issue_key(
                session,
                name=name,
                scopes=scope or sorted_scopes(default),
                merchant_id=merchant,
                provider_id=provider,
            )
        except IntegrityError:
            # The facade does not check that the provider exists; its foreign key does.
            if provider is None:
                raise
            raise NotFound(f"no provider {provider}") from None
    emit(view, as_json, render_fields("API key created"))
    if not as_json:
        console.print("[yellow]The secret is shown this once and cannot be shown again.[/]")


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="key id (key_…)")], as_json: JsonFlag = False
) -> None:
    """Revoke an API key; its next request is refused (idempotent).

    Example: siyu key revoke key_…
    """
    with unit_of_work() as session:
        view = facade.revoke_key(session, key_id)
    emit(view, as_json, render_fields("API key revoked"))


@grant_app.command("create")
def grant_create(
    merchant: MerchantOpt,
    provider: Annotated[str, typer.Option("--provider", "-p", help="provider id (prv_…)")],
    scope: Annotated[list[str], typer.Option(help="scope the provider may use (repeat)")],
    as_json: JsonFlag = False,
) -> None:
    """Let a provider act for a merchant (代运营授权) within the given scopes, until revoked.

    Example: siyu grant create -m mch_… -p prv_… --scope stores:read --scope members:read
    """
    with unit_of_work() as session:
        _require_merchant(session, merchant)
        view = facade.create_grant(session, merchant, provider_id=provider, scopes=scope)
    emit(view, as_json, render_fields("grant created"))


@grant_app.command("revoke")
def grant_revoke(
    merchant: MerchantOpt,
    grant_id: Annotated[str, typer.Argument(help="grant id (grt_…)")],
    as_json: JsonFlag = False,
) -> None:
    """End a provider grant at once; the provider's next request for the merchant is refused.

    Example: siyu grant revoke -m mch_… grt_…
    """
    with unit_of_work() as session:
        view = facade.revoke_grant(session, merchant, grant_id)
    emit(view, as_json, render_fields("grant revoked"))


def _require_merchant(session: Session, merchant_id: str) -> None:
    if facade.get_merchant(session, merchant_id) is None:
        raise NotFound(f"no merchant {merchant_id}")


def run() -> None:
    """Console-script entry point: anything unexpected is still one line (exit code 1)."""
    try:
        app()
    except Exception as exc:  # expected errors have already ended the command with their message
        print_error(f"unexpected {type(exc).__name__}: {exc} (this is a bug in Siyu; please report it)")
        sys.exit(EXIT_UNEXPECTED)
