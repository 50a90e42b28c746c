"""Every query of the imports module; all take the merchant id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from siyu.kit.pagination import PageRequest, paginate

from .models import ImportRejection, ImportRun


def get_run(session: Session, merchant_id: str, import_id: str) -> ImportRun | None:
    return session.get(ImportRun, (merchant_id, import_id))


def list_runs(session: Session, merchant_id: str, page: PageRequest) -> Sequence[ImportRun]:
    statement = select(ImportRun).where(ImportRun.merchant_id == merchant_id)
    return session.execute(paginate(statement, ImportRun.id, page)).scalars().all()


def add_counts(
    session: Session,
    merchant_id: str,
    import_id: str,
    *,
    rows: int,
    accepted: int,
    duplicates: int,
    rejected: int,
    now: datetime,
) -> None:
    """Counters change in one statement (ARCHITECTURE rule 4)."""
    session.execute(
        update(ImportRun)
        .where(ImportRun.merchant_id == merchant_id, ImportRun.id == import_id)
        .values(
            rows_read=ImportRun.rows_read + rows,
            accepted=ImportRun.accepted + accepted,
            duplicates=ImportRun.duplicates + duplicates,
            rejected=ImportRun.rejected + rejected,
            updated_at=now,
        )
    )


def count_rejections(session: Session, merchant_id: str, import_id: str) -> int:
    statement = select(func.count()).where(
        ImportRejection.merchant_id == merchant_id, ImportRejection.import_id == import_id
    )
    return int(session.execute(statement).scalar_one())


def rejections_after(
    session: Session, merchant_id: str, import_id: str, after_line: int, limit: int
) -> Sequence[ImportRejection]:
    """Rejected rows in line order, a page at a time (keyset on the line number)."""
    statement = (
        select(ImportRejection)
        .where(
            ImportRejection.merchant_id == merchant_id,
            ImportRejection.import_id == import_id,
            ImportRejection.line > after_line,
        )
        .order_by(ImportRejection.line)
        .limit(limit)
    )
    return session.execute(statement).scalars().all()


def purge_rejections(session: Session, before: datetime) -> int:
    result = session.execute(delete(ImportRejection).where(ImportRejection.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
