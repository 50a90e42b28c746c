"""What the CLI, the API and the console use of imports: run one import, read its report.

:func:`import_file` reads the file as a stream and gives **every chunk a transaction of its
own** through the caller's ``transaction`` factory (the CLI opens one unit of work per chunk;
the API commits its request session after each chunk). A chunk's events, member tags and the
run's counters commit together, so after a crash the run's counts match what is stored, and a
re-run reports the rows already imported as duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from sqlalchemy.orm import Session

from siyu.kit.clock import utcnow
from siyu.kit.pagination import PageRequest
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import Problem

from . import repository as repo
from . import service
from .mapping import FIELDS, ImportKind, parse_overrides
from .models import ImportRun, ImportStatus
from .readers import FileEncodingError, ImportFileError, SourceRow, TableReader, open_table
from .rows import Rejection

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FIELDS",
    "ImportAborted",
    "ImportFileInvalid",
    "ImportKind",
    "ImportOptions",
    "ImportProgress",
    "ImportSummary",
    "MappingReport",
    "Rejection",
    "get_import",
    "import_file",
    "list_imports",
    "parse_overrides",
    "purge_expired_rejections",
    "rejected_rows",
]

DEFAULT_CHUNK_SIZE = 2000
MIN_CHUNK_SIZE, MAX_CHUNK_SIZE = 1, 5000

TransactionFactory = Callable[[], AbstractContextManager[Session]]
RejectSink = Callable[[Session, str, list[Rejection]], None]
"""``sink(session, import_id, rejections)``: called inside each chunk's transaction."""


class ImportFileInvalid(Problem):
    """The file or its columns cannot be imported; nothing was written."""

    status, slug, title = 422, "import-file-invalid", "File cannot be imported"


class ImportAborted(Problem):
    """The import stopped part-way (an unreadable line); the rows before it were imported."""

    status, slug, title = 422, "import-aborted", "Import stopped part-way"

    def __init__(self, detail: str, summary: ImportSummary) -> None:
        super().__init__(detail, extra={"import": _summary_dict(summary)})
        self.summary = summary


@dataclass(frozen=True, slots=True)
class ImportOptions:
    overrides: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    sheet: str | None = None
    delimiter: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    encoding_option: str = "--encoding gb18030"
    """How the caller's user picks an encoding, for the hint in encoding errors."""


@dataclass(frozen=True, slots=True)
class MappingReport:
    """Shown before any row is read: which column feeds which field, and which are ignored."""

    kind: str
    file_format: str
    columns: tuple[str, ...]
    mapping: dict[str, str]
    ignored_columns: tuple[str, ...]
    progress_total: int | None
    progress_unit: str


@dataclass(frozen=True, slots=True)
class ImportProgress:
    done: int
    total: int | None
    unit: str
    rows_read: int
    accepted: int
    duplicates: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ImportSummary:
    import_id: str
    kind: str
    status: str
    file_name: str
    file_format: str
    rows_read: int
    accepted: int
    duplicates: int
    rejected: int
    columns: tuple[str, ...]
    mapping: dict[str, str]
    ignored_columns: tuple[str, ...]
    rejected_file: str | None
    error: str | None
    origin: str
    started_at: datetime
    finished_at: datetime | None


def _summary(run: ImportRun) -> ImportSummary:
    used = set(run.mapping.values())
    return ImportSummary(
        import_id=run.id,
        kind=run.kind,
        status=run.status,
        file_name=run.file_name,
        file_format=run.file_format,
        rows_read=run.rows_read,
        accepted=run.accepted,
        duplicates=run.duplicates,
        rejected=run.rejected,
        columns=tuple(run.columns),
        mapping=dict(run.mapping),
        ignored_columns=tuple(c for c in run.columns if c and c not in used),
        rejected_file=run.rejected_file,
        error=run.error,
        origin=run.origin,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def _summary_dict(summary: ImportSummary) -> dict[str, object]:
    return {
        "id": summary.import_id,
        "status": summary.status,
        "rows_read": summary.rows_read,
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "rejected": summary.rejected,
    }


def _invalid(exc: ImportFileError, options: ImportOptions) -> ImportFileInvalid:
    message = exc.message_for(options.encoding_option) if isinstance(exc, FileEncodingError) else exc.message
    return ImportFileInvalid(message, extra={"line": exc.line} if exc.line else None)


def import_file(
    transaction: TransactionFactory,
    vault: IdentifierVault,
    merchant_id: str,
    kind: ImportKind,
    file: IO[bytes],
    *,
    name: str,
    options: ImportOptions,
    origin: str,
    actor: str,
    rejects: RejectSink,
    rejected_file: str | None = None,
    on_mapping: Callable[[MappingReport], None] | None = None,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportSummary:
    """Import ``file`` chunk by chunk; raises :class:`ImportFileInvalid` before writing anything
    when the file or its header cannot be used, :class:`ImportAborted` when a line part-way
    cannot be read (the rows before it stay imported)."""
    if not MIN_CHUNK_SIZE <= options.chunk_size <= MAX_CHUNK_SIZE:
        raise ImportFileInvalid(f"the chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}")
    started = utcnow()
    try:
        reader = open_table(
            file, name=name, encoding=options.encoding, sheet=options.sheet, delimiter=options.delimiter
        )
    except ImportFileError as exc:
        raise _invalid(exc, options) from None
    try:
        try:
            with transaction() as session:
                builder = service.plan(
                    session, vault, merchant_id, kind, reader.header, options.overrides, now=started
                )
                run = service.start_run(
                    session,
                    merchant_id,
                    builder.ctx.mapping,
                    origin=origin,
                    actor=actor,
                    file_name=name,
                    file_format=reader.format.value,
                    rejected_file=rejected_file,
                    now=started,
                )
                import_id = run.id
        except ImportFileError as exc:
            raise _invalid(exc, options) from None
        mapping = builder.ctx.mapping
        if on_mapping is not None:
            on_mapping(
                MappingReport(
                    kind=kind.value,
                    file_format=reader.format.value,
                    columns=mapping.header,
                    mapping=mapping.as_dict(),
                    ignored_columns=mapping.ignored,
                    progress_total=reader.progress_total,
                    progress_unit=reader.progress_unit,
                )
            )
        totals = ImportProgress(0, reader.progress_total, reader.progress_unit, 0, 0, 0, 0)

        def flush(rows: list[SourceRow]) -> None:
            nonlocal totals
            now = utcnow()
            with transaction() as session:
                result = service.import_chunk(session, vault, builder, rows, now=now)
                service.record_chunk(session, merchant_id, import_id, result, now=now)
                if result.rejections:
                    rejects(session, import_id, result.rejections)
            totals = ImportProgress(
                done=reader.progress(),
                total=reader.progress_total,
                unit=reader.progress_unit,
                rows_read=totals.rows_read + result.rows,
                accepted=totals.accepted + result.accepted,
                duplicates=totals.duplicates + result.duplicates,
                rejected=totals.rejected + len(result.rejections),
            )
            if on_progress is not None:
                on_progress(totals)

        failure = _run_chunks(reader, options.chunk_size, flush)
        with transaction() as session:
            if failure is None:
                run = service.finish_run(
                    session, merchant_id, import_id, status=ImportStatus.COMPLETED, error=None, now=utcnow()
                )
                return _summary(run)
            message = _invalid(failure, options).detail
            done = totals.rows_read
            rows_before = f"the {done:,} rows before it were" if done != 1 else "the row before it was"
            message += (
                f"; {rows_before} imported (fix the file and import it again: rows already imported "
                "count as duplicates)"
                if done
                else "; nothing was imported"
            )
            run = service.finish_run(
                session, merchant_id, import_id, status=ImportStatus.FAILED, error=message, now=utcnow()
            )
            summary = _summary(run)
        raise ImportAborted(message, summary)
    finally:
        reader.close()


def _run_chunks(
    reader: TableReader, chunk_size: int, flush: Callable[[list[SourceRow]], None]
) -> ImportFileError | None:
    """Feed ``flush`` chunks of rows; a line that cannot be read ends the run (rows before it count)."""
    rows = _guarded(reader.rows())
    pending: list[SourceRow] = []
    for item in rows:
        if isinstance(item, ImportFileError):
            if pending:
                flush(pending)
            return item
        pending.append(item)
        if len(pending) >= chunk_size:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    return None


def _guarded(rows: Iterator[SourceRow]) -> Iterator[SourceRow | ImportFileError]:
    try:
        yield from rows
    except ImportFileError as exc:
        yield exc


def get_import(session: Session, merchant_id: str, import_id: str) -> ImportSummary | None:
    run = repo.get_run(session, merchant_id, import_id)
    return _summary(run) if run else None


def list_imports(session: Session, merchant_id: str, page: PageRequest) -> list[ImportSummary]:
    """One page (plus one extra row, for the cursor) of the merchant's imports, oldest first."""
    return [_summary(run) for run in repo.list_runs(session, merchant_id, page)]


def rejected_rows(
    session: Session, vault: IdentifierVault, merchant_id: str, import_id: str, *, batch: int = 1000
) -> Iterator[Rejection]:
    """The stored rejected rows of an upload, in line order, unsealed."""
    after = 0
    while True:
        page = repo.rejections_after(session, merchant_id, import_id, after, batch)
        for row in page:
            yield Rejection(row.line, row.reason, row.column, service.unseal_row(vault, merchant_id, row))
        if len(page) < batch:
            return
        after = page[-1].line


def store_rejections_sink(vault: IdentifierVault, merchant_id: str) -> RejectSink:
    """A sink that keeps rejected rows in the database (sealed), for API uploads."""
    stored = 0

    def sink(session: Session, import_id: str, rejections: list[Rejection]) -> None:
        nonlocal stored
        stored += service.store_rejections(
            session, vault, merchant_id, import_id, rejections, already=stored, now=utcnow()
        )

    return sink


def purge_expired_rejections(session: Session, now: datetime) -> int:
    return service.purge_expired_rejections(session, now)
