"""Entry point of the ``siyu`` command. Every command honours ``SIYU_DATA_DIR`` and
``SIYU_DATABASE_URL``; commands that create something accept ``--json`` and then print only the
created object (an API key's secret included, once) so that scripts can drive them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from siyu.cli.common import console, emit, err_console, fail, render_fields, unit_of_work
from siyu.cli.serve import db_app, serve
from siyu.kit.crypto import generate_password
from siyu.tenancy import facade
from siyu.tenancy.models import StaffRole, StoreKind
from siyu.tenancy.scopes import ALL_PROVIDER_SCOPES, MERCHANT_SCOPES, sorted_scopes

app = typer.Typer(
    name="siyu",
    help="Siyu (私域): the operating system for a merchant's user assets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(serve)
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

JsonFlag = Annotated[bool, typer.Option("--json", help="print the created object as JSON only")]
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]


@provider_app.command("create")
def provider_create(
    name: Annotated[str, typer.Option(help="display name")], as_json: JsonFlag = False
) -> None:
    """Create a service provider. Example: siyu provider create --name 杭州某代运营"""
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
    """Create a merchant. Example: siyu merchant create --name 一杯咖啡 --json"""
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
    lat: Annotated[float | None, typer.Option(min=-90, max=90, help="latitude")] = None,
    lng: Annotated[float | None, typer.Option(min=-180, max=180, help="longitude")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a store. Example: siyu store create -m mch_… --name 徐汇店 --lat 31.19 --lng 121.44"""
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


@staff_app.command("create")
def staff_create(
    merchant: MerchantOpt,
    login: Annotated[str, typer.Option(help="console login")],
    role: Annotated[StaffRole, typer.Option(help="owner, operator, analyst or guide")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    password: Annotated[
        str | None, typer.Option(help="asked for when omitted on a terminal; generated otherwise")
    ] = None,
    store: Annotated[
        list[str] | None, typer.Option(help="limit to this store (repeat); franchise staff")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a console account. Example: siyu staff create -m mch_… --login li --role guide --store str_…"""
    generated = None
    if password is None:
        if sys.stdin.isatty():
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
    emit(view, as_json, render_fields("staff created"))
    if generated:
        err_console.print(f"generated password (shown once): [bold]{generated}[/]", highlight=False)


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Option(help="what the key is for")],
    merchant: Annotated[str | None, typer.Option("--merchant", "-m", help="a merchant's key")] = None,
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="a provider's key")] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="scope (repeat); default: all for the owner")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print its secret once.

    Example: siyu key create -m mch_… --name pos --scope stores:read
    """
    if (merchant is None) == (provider is None):
        fail("give exactly one of --merchant or --provider")
    default = MERCHANT_SCOPES if merchant else ALL_PROVIDER_SCOPES
    with unit_of_work() as session:
        if merchant:
            _require_merchant(session, merchant)
        view = facade.issue_key(
            session,
            name=name,
            scopes=scope or sorted_scopes(default),
            merchant_id=merchant,
            provider_id=provider,
        )
    emit(view, as_json, render_fields("API key created"))
    if not as_json:
        console.print("[yellow]The secret is shown this once and cannot be shown again.[/]")


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="key id (key_…)")], as_json: JsonFlag = False
) -> None:
    """Revoke an API key; its next request is refused. Example: siyu key revoke key_…"""
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
    """Let a provider act for a merchant. Example: siyu grant create -m mch_… -p prv_… --scope stores:read"""
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
    """End a provider grant at once. Example: siyu grant revoke -m mch_… grt_…"""
    with unit_of_work() as session:
        view = facade.revoke_grant(session, merchant, grant_id)
    emit(view, as_json, render_fields("grant revoked"))


def _require_merchant(session: object, merchant_id: str) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    if facade.get_merchant(session, merchant_id) is None:
        fail(f"no merchant {merchant_id}")


def run() -> None:
    """Console-script entry point."""
    app()
