"""What every command shares: settings, the database, one clear line for errors, JSON output."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from siyu.config import ConfigError, Settings, load_settings
from siyu.db import Database
from siyu.kit.problems import Problem
from siyu.migrate import upgrade

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")

EXIT_USAGE = 2
"""Bad configuration or input, or a refused operation: the message says what to change."""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
        settings.ensure_data_dir()
    except ConfigError as exc:
        fail(str(exc))
    return settings


def open_database(settings: Settings) -> Database:
    """The database, migrated to the newest schema (idempotent; SQLite files are created)."""
    url = settings.resolved_database_url
    try:
        database = Database(url)
        upgrade(database.engine)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        fail(f"cannot reach the database {safe_url(url)}: {reason}")
    return database


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One command, one transaction, with domain errors turned into one line."""
    settings = settings_or_exit()
    database = open_database(settings)
    try:
        with database.unit_of_work() as session:
            yield session
    except Problem as exc:
        fail(exc.detail)
    except OperationalError as exc:
        fail(f"database error on {safe_url(settings.resolved_database_url)}: {str(exc.orig).splitlines()[0]}")
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
    data = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
    return {k: _jsonable(v) for k, v in data.items()}


def emit(view: Any, as_json: bool, render: Callable[[dict[str, Any]], None]) -> None:
    """``--json``: the object alone on stdout; otherwise a friendly rendering."""
    data = as_dict(view)
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        render(data)


def render_fields(title: str) -> Callable[[dict[str, Any]], None]:
    def render(data: dict[str, Any]) -> None:
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left")
        for key, value in data.items():
            if key == "secret" and value is None:
                continue
            table.add_row(key, "—" if value in (None, [], "") else str(value))
        console.print(table)

    return render
