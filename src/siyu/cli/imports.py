"""``siyu import members|orders FILE``: CSV or Excel into the merchant's user assets.

The file is read as a stream and imported in chunks, each committed on its own; a Rich progress
bar (bytes of a CSV, rows of a sheet) runs on stderr when it is a terminal, a plain progress line
every few seconds otherwise, and nothing with ``--json``. Rejected rows go to
``FILE.rejected.csv`` (or ``--rejected``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from siyu.cli.common import (
    as_dict,
    domain_errors,
    err_console,
    fail,
    open_database,
    say,
    settings_or_exit,
)
from siyu.db import StatisticsKeeper
from siyu.imports import facade
from siyu.imports.facade import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    ImportAborted,
    ImportKind,
    ImportOptions,
    ImportProgress,
    ImportSummary,
    MappingReport,
)
from siyu.imports.mapping import ALIASES, FIELD_HELP, FIELDS, IDENTITY_FIELDS
from siyu.imports.readers import ImportFileError
from siyu.imports.rejects import RejectedFile, default_path
from siyu.kit.pii import IdentifierVault

import_app = typer.Typer(
    help=(
        "Import members or orders from CSV or Excel (导入). Columns are found by their headers, in "
        "Chinese or English; re-importing a file counts its rows once."
    ),
    no_args_is_help=True,
)

PLAIN_PROGRESS_SECONDS = 10.0
EXIT_INTERRUPTED = 130


def _fields_help(kind: ImportKind) -> str:
    lines = []
    for field in FIELDS[kind]:
        aliases = " / ".join(ALIASES[field][1:4])
        note = FIELD_HELP.get(field, "member identity" if field in IDENTITY_FIELDS else "")
        lines.append(f"{field} ({aliases}){': ' + note if note else ''}")
    return "\n\n".join(lines)


FIELDS_INTRO = "Fields and some of the headers that name them (Chinese or English, any case):\n\n"

FileArg = Annotated[
    Path,
    typer.Argument(
        help="a .csv or .xlsx file", exists=True, dir_okay=False, readable=True, resolve_path=True
    ),
]
MerchantOpt = Annotated[str, typer.Option("--merchant", "-m", help="merchant id (mch_…)")]
MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="field=Header: take FIELD from the column HEADER (repeat); field= leaves it unmapped",
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option(
        help="CSV encoding: utf-8 by default (a BOM is fine); gb18030 (or gbk) for Chinese Excel exports"
    ),
]
SheetOpt = Annotated[str | None, typer.Option(help="XLSX sheet name (default: the first sheet)")]
DelimiterOpt = Annotated[
    str | None, typer.Option(help="CSV delimiter (default: comma, or tab/semicolon if the header uses them)")
]
RejectedOpt = Annotated[
    Path | None,
    typer.Option(help="where to write rejected rows (default: FILE.rejected.csv next to the file)"),
]
ChunkOpt = Annotated[
    int,
    typer.Option(
        min=1,
        max=MAX_CHUNK_SIZE,
        help="rows per transaction: a killed import loses at most the chunk in flight",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="print only the summary, as JSON")]


@import_app.command(
    "members",
    epilog=FIELDS_INTRO + _fields_help(ImportKind.MEMBERS),
)
def import_members(
    file: FileArg,
    merchant: MerchantOpt,
    map_: MapOpt = None,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
    delimiter: DelimiterOpt = None,
    rejected: RejectedOpt = None,
    chunk_size: ChunkOpt = DEFAULT_CHUNK_SIZE,
    as_json: JsonFlag = False,
) -> None:
    """Import members: each row becomes a member_joined event (source "import") and its tags.

    A row needs at least one identity (手机号, 会员号, openid, 支付宝用户ID, …); rows of one person
    merge into one member. The registration time (注册时间) dates the member; without it, the
    import time does. Naive times are in the merchant's time zone.

    Example: siyu import members 会员.xlsx -m mch_… --map phone=联系方式
    """
    _run(ImportKind.MEMBERS, file, merchant, map_, encoding, sheet, delimiter, rejected, chunk_size, as_json)


@import_app.command(
    "orders",
    epilog=FIELDS_INTRO + _fields_help(ImportKind.ORDERS),
)
def import_orders(
    file: FileArg,
    merchant: MerchantOpt,
    map_: MapOpt = None,
    encoding: EncodingOpt = None,
    sheet: SheetOpt = None,
    delimiter: DelimiterOpt = None,
    rejected: RejectedOpt = None,
    chunk_size: ChunkOpt = DEFAULT_CHUNK_SIZE,
    as_json: JsonFlag = False,
) -> None:
    """Import orders: each row becomes an order_paid event (order:<订单号>), plus order_refunded
    when a refund column (退款金额) holds an amount.

    Needed: the order number (订单号), the payment time (支付时间), the amount — in yuan with at most
    two decimals (实付金额 12.30) or in fen (amount_fen) — and an identity of the member (手机号, 会员号,
    …). A store code (门店编码) must be one of the merchant's stores.

    Example: siyu import orders 订单.csv -m mch_… --encoding gb18030
    """
    _run(ImportKind.ORDERS, file, merchant, map_, encoding, sheet, delimiter, rejected, chunk_size, as_json)


class _Progress:
    """The Rich bar on a terminal; a plain line every few seconds otherwise; nothing for --json."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.rich = enabled and err_console.is_terminal
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.last_line = time.monotonic()

    def start(self, report: MappingReport) -> None:
        if not self.rich:
            return
        amount = DownloadColumn() if report.progress_unit == "bytes" else MofNCompleteColumn()
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            amount,
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.task = self.bar.add_task(f"importing {report.kind}", total=report.progress_total, counts="")
        self.bar.start()

    def update(self, p: ImportProgress) -> None:
        counts = f"{p.rows_read:,} rows · {p.accepted:,} new · {p.duplicates:,} dup · {p.rejected:,} rejected"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=p.done, counts=counts)
        elif self.enabled and time.monotonic() - self.last_line >= PLAIN_PROGRESS_SECONDS:
            self.last_line = time.monotonic()
            share = f" ({100 * p.done // p.total}%)" if p.total else ""
            err_console.print(f"progress{share}: {counts}", highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _show_mapping(report: MappingReport, file: Path) -> None:
    say(f"{file.name} ({report.file_format}): {len(report.mapping)} columns mapped")
    for field, header in report.mapping.items():
        say(f"  {header} → {field}")
    if report.ignored_columns:
        say(f"  ignored: {', '.join(report.ignored_columns)}")


def _show_summary(summary: ImportSummary, rejected_path: Path | None) -> None:
    say(
        f"{summary.kind}: {summary.rows_read:,} rows read · {summary.accepted:,} accepted · "
        f"{summary.duplicates:,} duplicates · {summary.rejected:,} rejected (import {summary.import_id})",
        style="bold",
    )
    if rejected_path is not None:
        say(f"rejected rows: {rejected_path}", style="yellow")


def _output(summary: ImportSummary, rejected_path: Path | None, as_json: bool) -> None:
    if as_json:
        import json
        import sys

        data: dict[str, Any] = as_dict(summary)
        data["rejected_file"] = str(rejected_path) if rejected_path else None
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()
    else:
        _show_summary(summary, rejected_path)


def _run(
    kind: ImportKind,
    file: Path,
    merchant: str,
    map_: list[str] | None,
    encoding: str | None,
    sheet: str | None,
    delimiter: str | None,
    rejected: Path | None,
    chunk_size: int,
    as_json: bool,
) -> None:
    settings = settings_or_exit()
    rejected_path = (rejected or default_path(file)).resolve()
    if rejected_path == file:
        fail("--rejected must not be the file being imported")
    try:
        overrides = facade.parse_overrides(map_ or [])
    except ImportFileError as exc:
        fail(exc.message)
    options = ImportOptions(
        overrides=overrides,
        encoding=encoding,
        sheet=sheet,
        delimiter=delimiter.replace("\\t", "\t") if delimiter else None,
        chunk_size=chunk_size,
    )
    database = open_database(settings)
    vault = IdentifierVault(settings.resolved_secret_key())
    rejects = RejectedFile(rejected_path)
    progress = _Progress(enabled=not as_json)
    statistics = StatisticsKeeper(database.engine)  # PostgreSQL plans by them: see refresh_statistics
    rows_done = 0

    def on_mapping(report: MappingReport) -> None:
        rejects.begin(report.columns)
        if not as_json:
            _show_mapping(report, file)
        progress.start(report)

    def on_progress(p: ImportProgress) -> None:
        nonlocal rows_done
        rows_done = p.rows_read
        progress.update(p)
        statistics.tick()

    try:
        with domain_errors(settings), file.open("rb") as handle:
            try:
                summary = facade.import_file(
                    database.unit_of_work,
                    vault,
                    merchant,
                    kind,
                    handle,
                    name=file.name,
                    options=options,
                    origin="cli",
                    actor="cli",
                    rejects=rejects.write,
                    rejected_file=str(rejected_path),
                    on_mapping=on_mapping,
                    on_progress=on_progress,
                )
            except ImportAborted as exc:
                progress.stop()
                rejects.close()
                _output(exc.summary, rejected_path if rejects.count else None, as_json)
                fail(exc.detail)
            except KeyboardInterrupt:
                progress.stop()
                fail(
                    f"interrupted after {rows_done:,} rows; what was committed stays: run the same command "
                    "again to finish (rows already imported count as duplicates)",
                    EXIT_INTERRUPTED,
                )
    finally:
        progress.stop()
        rejects.close()
        database.dispose()
    _output(summary, rejected_path if rejects.count else None, as_json)
    if rejects.count and not as_json:
        say(
            "Fix the rows in the rejected file and import it as it is: its extra columns are ignored.",
            style="dim",
        )
