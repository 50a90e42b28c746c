"""Import rules: plan a file (mapping, stores, time zone), import one chunk, keep the run's report.

Nothing here commits: :mod:`siyu.imports.facade` gives each chunk a transaction of its own.
A chunk's events go through :func:`siyu.events.service.ingest` — the same validation, identity
resolution, de-duplication by event id, rollups and listeners as events sent to the API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.events.service import Verdict, ingest
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import NotFound
from siyu.members.service import IdentityError, add_tags, find_by_identity
from siyu.tenancy import facade as tenancy

from . import repository as repo
from .mapping import ColumnMapping, ImportKind, resolve_mapping
from .models import ImportRejection, ImportRun, ImportStatus
from .readers import SourceRow
from .rows import Rejection, RowBuilder, RowContext, RowEvents, field_of_pointer

MAX_STORED_REJECTIONS = 100_000
"""Rejected rows kept for download per API upload; the counts stay exact beyond it."""
REJECTION_RETENTION = timedelta(days=7)
SEAL_PURPOSE = "import-row"


@dataclass(slots=True)
class ChunkResult:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)


def plan(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    kind: ImportKind,
    header: Sequence[str],
    overrides: dict[str, str] | None,
    *,
    now: datetime,
) -> RowBuilder:
    """Check the merchant and the header; everything rows need, loaded once."""
    merchant = tenancy.get_merchant(session, merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}")
    mapping = resolve_mapping(kind, header, overrides)
    stores = (
        {s.code: s.id for s in tenancy.list_stores(session, merchant_id)}
        if "store_code" in mapping.columns
        else {}
    )
    context = RowContext(
        merchant_id=merchant_id,
        mapping=mapping,
        timezone=ZoneInfo(merchant.timezone),
        stores=stores,
        default_time=now,
        vault=vault,
    )
    return RowBuilder(kind, context)


def start_run(
    session: Session,
    merchant_id: str,
    mapping: ColumnMapping,
    *,
    origin: str,
    actor: str,
    file_name: str,
    file_format: str,
    rejected_file: str | None,
    now: datetime,
) -> ImportRun:
    run = ImportRun(
        merchant_id=merchant_id,
        id=new_id(IdKind.IMPORT),
        kind=mapping.kind.value,
        origin=origin,
        actor=actor[:200],
        file_name=file_name[-255:],
        file_format=file_format,
        status=ImportStatus.RUNNING,
        rows_read=0,
        accepted=0,
        duplicates=0,
        rejected=0,
        columns=list(mapping.header),
        mapping=mapping.as_dict(),
        rejected_file=rejected_file,
        started_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    return run


def import_chunk(
    session: Session, vault: IdentifierVault, builder: RowBuilder, rows: Sequence[SourceRow], *, now: datetime
) -> ChunkResult:
    """Build, ingest and tag one chunk of rows; one status per row."""
    result = ChunkResult(rows=len(rows))
    built: list[RowEvents] = []
    for row in rows:
        item = builder.build(row)
        if isinstance(item, Rejection):
            result.rejections.append(item)
        else:
            built.append(item)
    events = [event for item in built for event in item.events]
    verdicts = ingest(session, vault, builder.ctx.merchant_id, events, now=now) if events else []
    position = 0
    to_tag: list[tuple[RowEvents, str | None]] = []
    for item in built:
        mine = verdicts[position : position + len(item.events)]
        pointers = item.pointers
        position += len(item.events)
        rejected = next(((v, p) for v, p in zip(mine, pointers, strict=True) if v.status == "rejected"), None)
        if rejected is not None:
            result.rejections.append(_ingestion_rejection(builder.ctx.mapping, item, *rejected))
        elif any(v.status == "accepted" for v in mine):
            result.accepted += 1
            to_tag.append((item, mine[0].member_id))
        else:
            result.duplicates += 1
            to_tag.append((item, None))
    _apply_tags(session, vault, builder.ctx.merchant_id, to_tag, now=now)
    result.rejections.sort(key=lambda r: r.line)
    return result


def _ingestion_rejection(
    mapping: ColumnMapping, item: RowEvents, verdict: Verdict, pointers: dict[str, str]
) -> Rejection:
    field_name = field_of_pointer(pointers, verdict.pointer)
    column = mapping.column_of(field_name) if field_name else None
    reason = verdict.reason or "rejected"
    if field_name and not reason.startswith(field_name):
        reason = f"{field_name}: {reason}"
    return Rejection(item.row.line, reason, column, item.row.values)


def _apply_tags(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    rows: Sequence[tuple[RowEvents, str | None]],
    *,
    now: datetime,
) -> None:
    """Tags of the file's rows, on new and already-imported members alike (adding is idempotent)."""
    for item, member_id in rows:
        if not item.tags:
            continue
        if member_id is None:
            member_id = _member_of(session, vault, merchant_id, item.identities)
        if member_id is not None:
            add_tags(session, merchant_id, member_id, item.tags, now=now)


def _member_of(
    session: Session, vault: IdentifierVault, merchant_id: str, identities: dict[str, str]
) -> str | None:
    for kind, value in identities.items():
        try:
            found = find_by_identity(session, vault, merchant_id, kind, value)
        except IdentityError:
            continue
        if found is not None:
            return found
    return None


def record_chunk(
    session: Session, merchant_id: str, import_id: str, result: ChunkResult, *, now: datetime
) -> None:
    repo.add_counts(
        session,
        merchant_id,
        import_id,
        rows=result.rows,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=len(result.rejections),
        now=now,
    )


def store_rejections(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    import_id: str,
    rejections: Sequence[Rejection],
    *,
    already: int,
    now: datetime,
) -> int:
    """Keep rejected rows (sealed) for download, up to :data:`MAX_STORED_REJECTIONS`; returns how many."""
    room = max(0, MAX_STORED_REJECTIONS - already)
    kept = rejections[:room]
    for rejection in kept:
        session.add(
            ImportRejection(
                merchant_id=merchant_id,
                import_id=import_id,
                line=rejection.line,
                reason=rejection.reason[:500],
                column=rejection.column[:255] if rejection.column else None,
                sealed_row=vault.seal(
                    merchant_id, SEAL_PURPOSE, json.dumps(rejection.values, ensure_ascii=False)
                ),
                created_at=now,
            )
        )
    session.flush()
    return len(kept)


def unseal_row(vault: IdentifierVault, merchant_id: str, rejection: ImportRejection) -> list[str]:
    values = json.loads(vault.unseal(merchant_id, SEAL_PURPOSE, rejection.sealed_row))
    return [str(v) for v in values]


def finish_run(
    session: Session,
    merchant_id: str,
    import_id: str,
    *,
    status: ImportStatus,
    error: str | None,
    now: datetime,
) -> ImportRun:
    run = repo.get_run(session, merchant_id, import_id)
    if run is None:  # pragma: no cover - created at the start of the import
        raise NotFound(f"no import {import_id}")
    session.refresh(run)
    run.status = status
    run.error = error[:1000] if error else None
    if run.rejected == 0:
        run.rejected_file = None  # nothing was written there
    run.finished_at = now
    run.updated_at = now
    session.flush()
    return run


def purge_expired_rejections(session: Session, now: datetime) -> int:
    """Rejected rows of uploads are kept :data:`REJECTION_RETENTION`, then deleted."""
    return repo.purge_rejections(session, now - REJECTION_RETENTION)
