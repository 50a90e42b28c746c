"""``siyu serve`` and ``siyu db``: start the instance; manage its schema."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.panel import Panel

from siyu.cli.common import console, fail, open_database, safe_url, settings_or_exit
from siyu.config import Settings
from siyu.db import Database
from siyu.migrate import current_revision, head_revision, upgrade
from siyu.tenancy import facade
from siyu.tenancy.facade import BootstrapResult

db_app = typer.Typer(help="The state store's schema (Alembic migrations).", no_args_is_help=True)


def first_start(settings: Settings, database: Database) -> BootstrapResult | None:
    """Create the first merchant, its owner and an API key — only when the instance is empty."""
    with database.unit_of_work() as session:
        return facade.bootstrap(
            session, password=settings.bootstrap_password, api_key=settings.bootstrap_api_key
        )


def describe_start(settings: Settings, created: BootstrapResult | None) -> str:
    """The text printed on start: URLs always; credentials once, on the first start."""
    base = f"http://{settings.host}:{settings.port}"
    lines = [f"Console   {base}/console", f"API docs  {base}/docs"]
    if created is not None:
        password = created.password if created.password_generated else "(from SIYU_BOOTSTRAP_PASSWORD)"
        key = created.key.secret if created.key_generated else "(from SIYU_BOOTSTRAP_API_KEY)"
        lines += [
            "",
            f"Merchant  {created.merchant.name} ({created.merchant.id})",
            f"Login     {created.owner.login} / {password}",
            f"API key   {key}",
            "",
            "The password and the API key are shown this once: keep them now.",
        ]
    return "\n".join(lines)


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default SIYU_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind (default SIYU_PORT or 8000)")] = None,
) -> None:
    """Run Siyu: migrate the database, create the first merchant if there is none, serve API and console.

    Example: siyu serve --port 8080
    """
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_or_exit(**overrides)
    with console.status(f"Migrating {safe_url(settings.resolved_database_url)} …"):
        database = open_database(settings)
    created = first_start(settings, database)
    title = "Siyu is ready — first start" if created else "Siyu is ready"
    console.print(Panel(describe_start(settings, created), title=title, expand=False), highlight=False)

    import uvicorn

    from siyu.app import create_app

    app = create_app(settings, db=database)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (idempotent). `siyu serve` does this on start too.

    Example: SIYU_DATABASE_URL=postgresql+psycopg://siyu@db/siyu siyu db upgrade
    """
    settings = settings_or_exit()
    database = open_database(settings)
    upgrade(database.engine)
    console.print(
        f"{safe_url(settings.resolved_database_url)} is at revision {current_revision(database.engine)}"
    )
    database.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision and whether it is the newest (does not migrate)."""
    from siyu.db import Database as _Database

    settings = settings_or_exit()
    database = _Database(settings.resolved_database_url)
    try:
        current, head = current_revision(database.engine), head_revision(database.engine)
    except Exception as exc:  # one line for an unreachable database
        fail(f"cannot read the schema revision: {str(exc).splitlines()[0]}")
    state = "up to date" if current == head else f"behind (newest is {head}): run `siyu db upgrade`"
    console.print(f"revision {current or 'none'} — {state}")
    database.dispose()
