"""``siyu analytics sync | rebuild | status``: the columnar mirror the analytics queries read.

``siyu serve`` keeps the mirror current by itself (``SIYU_ANALYTICS_SYNC_INTERVAL``); these
commands are for a server running without it, for a first load of a large history, and to look.
The mirror lives in ``SIYU_ANALYTICS_DIR`` (default ``DATA_DIR/analytics``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from siyu.analytics import mirror
from siyu.analytics.mirror_status import mirror_status
from siyu.cli.common import console, domain_errors, err_console, fail, open_database, settings_or_exit
from siyu.kit.clock import utcnow
from siyu.tenancy import facade as tenancy

analytics_app = typer.Typer(
    help="The analytics mirror (events and member snapshots as Parquet, read by DuckDB).",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="print the result as JSON only")]
MerchantsOpt = Annotated[
    list[str] | None, typer.Option("--merchant", "-m", help="merchant id (repeat; default: every merchant)")
]


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
    )


def _reporter(progress: Progress) -> mirror.Progress:
    tasks: dict[str, TaskID] = {}

    def report(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(what, total=total)
        progress.update(tasks[what], completed=done, total=total)

    return report


def _json(data: Any) -> None:
    def default(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else str(value)

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=default) + "\n")


def _show_report(report: mirror.SyncReport, title: str, as_json: bool) -> None:
    if as_json:
        _json({"merchants": [asdict(m) for m in report.merchants], "files_deleted": report.files_deleted})
        return
    table = Table(
        "merchant",
        "events",
        "merged ids",
        "erased",
        "members",
        "ledger",
        "facts",
        "files +/-",
        "watermark",
        title=title,
    )
    for m in report.merchants:
        table.add_row(
            m.merchant_id,
            str(m.events),
            "unchanged" if m.merged < 0 else str(m.merged),
            str(m.erased),
            str(m.members),
            str(m.transitions),
            str(m.facts),
            f"{m.files_written}/{m.files_retired}",
            m.watermark.isoformat() if m.watermark else "-",
        )
    console.print(table)


def _root(directory: Path | None) -> tuple[Any, Path]:
    settings = settings_or_exit()
    return settings, directory or settings.resolved_analytics_dir


DirOpt = Annotated[Path | None, typer.Option("--dir", help="mirror root (default SIYU_ANALYTICS_DIR)")]


@analytics_app.command("sync")
def sync(merchant: MerchantsOpt = None, directory: DirOpt = None, as_json: JsonFlag = False) -> None:
    """Copy what changed in the state store since the last sync into the mirror.

    Example: siyu analytics sync
    """
    settings, root = _root(directory)
    database = open_database(settings)
    try:
        with domain_errors(settings), _progress(as_json) as progress:
            if merchant:
                _require(database, merchant)
            report = mirror.sync(
                database, root, now=utcnow(), merchant_ids=merchant, progress=_reporter(progress)
            )
    finally:
        database.dispose()
    _show_report(report, f"analytics sync → {root}", as_json)


@analytics_app.command("rebuild")
def rebuild(directory: DirOpt = None, as_json: JsonFlag = False) -> None:
    """Write the whole mirror again from the state store, then switch to it at once.

    Queries keep reading the old mirror until the switch. Example: siyu analytics rebuild
    """
    settings, root = _root(directory)
    database = open_database(settings)
    try:
        with domain_errors(settings), _progress(as_json) as progress:
            report = mirror.rebuild(database, root, now=utcnow(), progress=_reporter(progress))
    finally:
        database.dispose()
    _show_report(report, f"analytics rebuild → {root}", as_json)


@analytics_app.command("status")
def status(merchant: MerchantsOpt = None, directory: DirOpt = None, as_json: JsonFlag = False) -> None:
    """Per merchant: watermark, files, rows, bytes, and how far the mirror is behind.

    Example: siyu analytics status
    """
    settings, root = _root(directory)
    database = open_database(settings)
    try:
        with domain_errors(settings), database.reading() as session:
            ids = merchant or tenancy.merchant_ids(session)
            rows = [mirror_status(session, root, m) for m in ids]
    finally:
        database.dispose()
    if as_json:
        _json([asdict(r) for r in rows])
        return
    table = Table(
        "merchant",
        "watermark",
        "files",
        "bytes",
        "events",
        "members",
        "days",
        "ledger",
        "facts",
        "pending",
        "lag s",
        title=f"analytics mirror {root}",
    )
    for r in rows:
        table.add_row(
            r.merchant_id,
            r.watermark.isoformat() if r.watermark else "-",
            str(r.files),
            f"{r.bytes:,}",
            f"{r.events:,}",
            f"{r.members:,}",
            str(r.snapshot_days),
            f"{r.transitions:,}",
            f"{r.facts:,}",
            f"{r.pending_events:,}",
            f"{r.lag_seconds:.0f}",
        )
    console.print(table)


def _require(database: Any, merchant_ids: list[str]) -> None:
    with database.reading() as session:
        for merchant_id in merchant_ids:
            if tenancy.get_merchant(session, merchant_id) is None:
                fail(f"no merchant {merchant_id}")
