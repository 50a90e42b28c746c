"""``siyu serve`` and ``siyu db``: start the instance; manage its schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from siyu.cli.common import (
    connect,
    console,
    domain_errors,
    fail,
    first_line,
    migrate,
    safe_url,
    say,
    settings_or_exit,
)
from siyu.config import Settings
from siyu.db import Database
from siyu.migrate import current_revision, head_revision
from siyu.tenancy import facade
from siyu.tenancy.facade import BootstrapResult

db_app = typer.Typer(help="The state store's schema (Alembic migrations).", no_args_is_help=True)

WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def base_url(settings: Settings) -> str:
    """Where a browser on this machine reaches the instance (a wildcard bind shows loopback)."""
    host = WILDCARD_HOSTS.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def first_start(settings: Settings, database: Database) -> BootstrapResult | None:
    """Create the first merchant, its owner and an API key — only when the instance is empty."""
    with database.unit_of_work() as session:
        return facade.bootstrap(
            session, password=settings.bootstrap_password, api_key=settings.bootstrap_api_key
        )


def describe_start(settings: Settings, created: BootstrapResult | None) -> str:
    """The text printed on start: URLs always; credentials once, on the first start.

    Secrets the deployment supplied (``SIYU_BOOTSTRAP_*``) are never echoed: only the generated
    ones are shown, because nobody knows them otherwise.
    """
    base = base_url(settings)
    console_line = f"{base}/console" if settings.console else "off (SIYU_CONSOLE=false)"
    lines = [f"Console   {console_line}", f"API docs  {base}/docs"]
    if settings.host in WILDCARD_HOSTS:
        lines.append(f"Listening on every interface ({settings.host or '0.0.0.0'}), port {settings.port}")
    if created is not None:
        password = created.password if created.password_generated else "(from SIYU_BOOTSTRAP_PASSWORD)"
        key = created.key.secret if created.key_generated else "(from SIYU_BOOTSTRAP_API_KEY)"
        lines += [
            "",
            f"Merchant  {created.merchant.name} ({created.merchant.id})",
            f"Login     {created.owner.login} / {password}",
            f"API key   {key}",
        ]
        if created.password_generated and created.key_generated:
            lines += ["", "The password and the API key are shown this once: keep them now."]
        elif created.password_generated or created.key_generated:
            what = "password" if created.password_generated else "API key"
            lines += ["", f"The {what} is shown this once: keep it now."]
    return "\n".join(lines)


def announce(settings: Settings, database: Database) -> BootstrapResult | None:
    """Bootstrap an empty instance and print how to reach it; what was created, or ``None``."""
    with domain_errors(settings):
        created = first_start(settings, database)
    title = "Siyu is ready — first start" if created else "Siyu is ready"
    console.print(Panel(Text(describe_start(settings, created)), title=title, expand=False))
    return created


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default SIYU_HOST or 127.0.0.1)")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port to bind (default SIYU_PORT or 8000)")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="server processes (PostgreSQL deployments: about one per core); more than one "
            "serves the API only — run the console in a one-process instance",
        ),
    ] = 1,
) -> None:
    """Run Siyu: migrate the database, create the first merchant if there is none, serve API and console.

    The first start prints the owner's login, password and an API key once. Data lives in
    SIYU_DATA_DIR (SQLite) unless SIYU_DATABASE_URL names a PostgreSQL database.

    Example: SIYU_DATA_DIR=/var/lib/siyu siyu serve --host 0.0.0.0 --port 8080

    With --workers N, N processes share the port; each builds the app from the same environment.
    The console keeps per-process state (its live page connections), so it is served only when
    there is one process.
    """
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_or_exit(**overrides)
    database = connect(settings)
    before, after = migrate(settings, database)
    change = f"migrated from {before or 'an empty database'}" if before != after else "up to date"
    say(f"Database {safe_url(settings.resolved_database_url)}: revision {after} ({change})", style="dim")
    announce(settings, database)

    import uvicorn

    from siyu.app import create_app

    if workers > 1:
        database.dispose()
        os.environ["SIYU_CONSOLE"] = "false"
        if settings.console:
            say(
                f"{workers} worker processes: API only (the console needs a one-process instance)",
                style="dim",
            )
        uvicorn.run(
            "siyu.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="info",
        )
        return
    with domain_errors(settings):
        app = create_app(settings, db=database)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (idempotent). `siyu serve` and every other command do this too.

    Example: SIYU_DATABASE_URL=postgresql+psycopg://siyu@db/siyu siyu db upgrade
    """
    settings = settings_or_exit()
    database = connect(settings)
    try:
        before, after = migrate(settings, database)
    finally:
        database.dispose()
    url = safe_url(settings.resolved_database_url)
    if before == after:
        say(f"{url} is already at the newest revision, {after}")
    else:
        say(f"{url} migrated from {before or 'an empty database'} to revision {after}")


def _is_known(database: Database, revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from siyu.migrate import alembic_config

    try:
        return ScriptDirectory.from_config(alembic_config(database.engine)).get_revision(revision) is not None
    except CommandError:
        return False


@db_app.command("check")
def db_check() -> None:
    """Check the references the database does not enforce: every ingested row's member exists.

    The tables written on every event (events, rollups, identities, stages, points, tiers,
    reachability) reference their member without a foreign key, for speed; this counts the rows
    whose member (or merchant) is missing. Reads only; exits 1 if any are found.

    Example: siyu db check
    """
    from siyu.integrity import orphans, references

    settings = settings_or_exit()
    database = connect(settings)
    total = sum(1 for _ in references())
    try:
        with console.status("checking") as status, database.engine.connect() as connection:
            done = 0

            def step(table: str) -> None:
                nonlocal done
                done += 1
                status.update(f"checking {table} ({done}/{total})")

            found = orphans(connection, progress=step)
    except SQLAlchemyError as exc:
        fail(f"cannot check {safe_url(settings.resolved_database_url)}: {first_line(exc)}")
    finally:
        database.dispose()
    if not found:
        say(f"{total} references checked: every row has its member and merchant")
        return
    for orphan in found:
        console.print(orphan.describe(), style="red", markup=False)
    raise typer.Exit(1)


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision and whether it is the newest (changes nothing).

    Example: siyu db current
    """
    settings = settings_or_exit()
    url = settings.resolved_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        say(f"no database yet at {parsed.database}: `siyu db upgrade` creates it")
        return
    database = connect(settings)
    try:
        current, head = current_revision(database.engine), head_revision(database.engine)
    except SQLAlchemyError as exc:
        fail(f"cannot read the schema revision of {safe_url(url)}: {first_line(exc)}")
    finally:
        database.dispose()
    if current == head:
        state = "up to date"
    elif current is not None and not _is_known(database, current):
        state = f"unknown to this version of Siyu (its newest is {head}); is a newer Siyu using it?"
    else:
        state = f"behind (newest is {head}): run `siyu db upgrade`"
    say(f"revision {current or 'none'} — {state}")
