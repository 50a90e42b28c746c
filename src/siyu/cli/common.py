"""What every command shares: settings, the database, one clear line for errors, JSON output.

Schema policy: every command that touches the database first brings its schema to the newest
revision (Alembic ``upgrade``; a quick revision check makes it a no-op when nothing is pending).
``siyu serve`` migrates on start anyway, so a command migrating is no more surprising than a start,
and an embedded instance never needs a separate ``siyu db upgrade`` step. A database whose schema is
*newer* than this version of Siyu is refused with one line instead of being touched.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any, NoReturn

import typer
from alembic.util.exc import CommandError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

import siyu.wiring  # noqa: F401  (listeners of every module)
from siyu.config import ConfigError, Settings, load_settings
from siyu.db import Database
from siyu.kit.problems import Problem
from siyu.migrate import current_revision, head_revision, upgrade

console = Console()
err_console = Console(stderr=True)

EXIT_USAGE = 2
"""Bad configuration or input, an unreachable database, or a refused operation: the message says
what to change."""
EXIT_UNEXPECTED = 1
"""A bug: something nobody planned for went wrong."""


def say(message: str, *, style: str = "") -> None:
    """One informative line on stdout, shown literally and never wrapped."""
    console.print(Text(message, style=style), soft_wrap=True)


def print_error(message: str) -> None:
    """``error: message`` as one red line on stderr; the message is shown literally."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one error line and end the command with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add SQL and hints below it)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings (``SIYU_*`` plus ``overrides``) with the data directory in place."""
    try:
        settings = load_settings(**overrides)
        settings.ensure_data_dir()
    except ConfigError as exc:
        fail(str(exc))
    return settings


def migrate(settings: Settings, database: Database) -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision; returns (revision before, revision after)."""
    url = safe_url(settings.resolved_database_url)
    before: str | None = None
    try:
        before, head = current_revision(database.engine), head_revision(database.engine)
        if before != head:
            with console.status(f"Migrating {url} to revision {head} …"):
                upgrade(database.engine)
    except OperationalError as exc:
        fail(f"cannot reach the database {url}: {first_line(exc)}")
    except CommandError:
        fail(
            f"the database {url} is at schema revision {before}, which this version of Siyu does not "
            "know; is a newer Siyu using it?"
        )
    return before, head


def connect(settings: Settings) -> Database:
    """The database of ``settings`` (connections are opened lazily, on first use)."""
    try:
        return Database(settings.resolved_database_url)
    except (SQLAlchemyError, OSError) as exc:
        fail(f"cannot open the database {safe_url(settings.resolved_database_url)}: {first_line(exc)}")


def open_database(settings: Settings) -> Database:
    """The database, migrated to the newest schema (SQLite files are created)."""
    database = connect(settings)
    migrate(settings, database)
    return database


@contextmanager
def domain_errors(settings: Settings) -> Iterator[None]:
    """Refusals by the domain and database failures, as one line each."""
    try:
        yield
    except Problem as exc:
        fail(exc.detail)
    except ConfigError as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(f"database error on {safe_url(settings.resolved_database_url)}: {first_line(exc)}")
    except IntegrityError as exc:
        fail(f"the database refused the change: {first_line(exc)}")


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One command, one transaction (committed at the end, rolled back on any error)."""
    settings = settings_or_exit()
    database = open_database(settings)
    try:
        with domain_errors(settings), database.unit_of_work() as session:
            yield session
    finally:
        database.dispose()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def as_dict(view: Any) -> dict[str, Any]:
    """A facade view (frozen dataclass) as plain JSON-ready values; datetimes as ISO 8601."""
    data = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
    return {k: _jsonable(v) for k, v in data.items()}


def emit(
    view: Any,
    as_json: bool,
    render: Callable[[dict[str, Any]], None],
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """``--json``: the object alone on stdout (plus ``extra``); otherwise a friendly rendering."""
    data = {**as_dict(view), **(extra or {})}
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()
    else:
        render(data)


def render_fields(title: str) -> Callable[[dict[str, Any]], None]:
    """A two-column table of the object's fields; values are shown literally (no Rich markup)."""

    def render(data: dict[str, Any]) -> None:
        table = Table(title=title, show_header=False, title_justify="left")
        for key, value in data.items():
            if key in ("secret", "password") and value is None:
                continue
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            shown = "—" if value in (None, "") else str(value)
            style = "bold yellow" if key in ("secret", "password") else ""
            table.add_row(key, Text(shown, style=style))
        console.print(table)

    return render
