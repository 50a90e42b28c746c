"""Every query of the outbox; merchant-owned rows are always addressed with their ``merchant_id``.

The claim is the one statement that spans merchants (workers drain everyone's due items). On
PostgreSQL it locks the due rows it picks with ``FOR UPDATE SKIP LOCKED`` inside a CTE and
updates them in the same statement, so several workers claim disjoint batches without waiting
on each other. On SQLite the same statement runs under the database's single write lock
(``BEGIN IMMEDIATE``), which makes it a conditional update taking a lease.

A claimed row carries a *claim token*: the worker's name and the attempt number. Every later write
about the attempt (finish, lease renewal) matches the token, so a worker whose lease ran out and
whose item was reclaimed by another cannot overwrite the newer attempt's state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, func, select, tuple_, update
from sqlalchemy.orm import Session

from siyu.db import is_postgres
from siyu.kit.bulk import execute_many
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pagination import PageRequest, paginate
from siyu.kit.sql import chunked, dialect_insert
from siyu.outbox.models import AttemptOutcome, ItemStatus, OutboxAttempt, OutboxItem

ITEMS = cast(Table, OutboxItem.__table__)
ATTEMPTS = cast(Table, OutboxAttempt.__table__)
CLAIMABLE = (ItemStatus.PENDING.value, ItemStatus.IN_FLIGHT.value)
ERROR_LIMIT = 2000
"""Characters of an error kept (a handler's message, not a whole response body)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """An item claimed by a worker for one attempt."""

    merchant_id: str
    id: str
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    worker: str
    attempt_id: str
    lease_until: datetime


def _insert_ignoring_known_keys(dialect: str) -> Any:
    return dialect_insert(dialect, ITEMS).on_conflict_do_nothing()


def insert_items(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """``INSERT … ON CONFLICT DO NOTHING`` (the ``(merchant_id, key)`` unique key); how many were new.

    Through :func:`siyu.kit.bulk.execute_many` (one ``unnest`` statement on PostgreSQL, one prepared
    statement on SQLite): a campaign fan-out writes thousands of items per transaction."""
    if not rows:
        return 0
    return execute_many(session, ITEMS, "outbox_items.insert", _insert_ignoring_known_keys, rows)


def any_due(session: Session, *, now: datetime) -> bool:
    """Whether anything is due: a read, so an idle worker's poll takes no write lock (SQLite)."""
    due = and_(ITEMS.c.status.in_(CLAIMABLE), ITEMS.c.available_at <= now)
    return session.execute(select(ITEMS.c.id).where(due).limit(1)).first() is not None


def claim(session: Session, *, now: datetime, limit: int, lease_until: datetime, worker: str) -> list[Claim]:
    """Take up to ``limit`` due items — in flight with an expired lease first, then pending and
    due, each in due order — lease them to ``worker`` until ``lease_until``, and open an attempt
    for each.

    One statement per status, so each is an ordered range scan of ``(status, available_at)`` that
    stops after ``limit`` rows (``status IN (…) ORDER BY available_at`` would sort every due item:
    a million after a campaign fan-out)."""
    rows: list[Any] = []
    for status in (ItemStatus.IN_FLIGHT, ItemStatus.PENDING):
        if len(rows) < limit:
            rows += _claim_status(
                session, status, now=now, limit=limit - len(rows), lease_until=lease_until, worker=worker
            )
    if not rows:
        return []
    claims = [
        Claim(
            merchant_id=r.merchant_id,
            id=r.id,
            kind=r.kind,
            key=r.key,
            payload=dict(r.payload or {}),
            attempts=r.attempts,
            created_at=r.created_at,
            worker=worker,
            attempt_id=new_id(IdKind.OUTBOX_ATTEMPT),
            lease_until=lease_until,
        )
        for r in rows
    ]
    claims.sort(key=lambda c: c.id)  # RETURNING has no order; deliver oldest first
    _abandon_open_attempts(session, claims, now=now)
    session.execute(
        ATTEMPTS.insert(),
        [
            {
                "merchant_id": c.merchant_id,
                "id": c.attempt_id,
                "item_id": c.id,
                "number": c.attempts,
                "worker": worker,
                "started_at": now,
            }
            for c in claims
        ],
    )
    return claims


def _claim_status(
    session: Session, status: ItemStatus, *, now: datetime, limit: int, lease_until: datetime, worker: str
) -> list[Any]:
    due = and_(ITEMS.c.status == status.value, ITEMS.c.available_at <= now)
    picked_query = (
        select(ITEMS.c.merchant_id, ITEMS.c.id).where(due).order_by(ITEMS.c.available_at).limit(limit)
    )
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        picked_query = picked_query.with_for_update(skip_locked=True)
    picked = picked_query.cte("picked")
    statement = (
        update(ITEMS)
        .where(ITEMS.c.merchant_id == picked.c.merchant_id, ITEMS.c.id == picked.c.id, due)
        .values(
            status=ItemStatus.IN_FLIGHT.value,
            attempts=ITEMS.c.attempts + 1,
            lease_until=lease_until,
            available_at=lease_until,
            worker=worker,
            updated_at=now,
        )
        .returning(
            ITEMS.c.merchant_id,
            ITEMS.c.id,
            ITEMS.c.kind,
            ITEMS.c.key,
            ITEMS.c.payload,
            ITEMS.c.attempts,
            ITEMS.c.created_at,
        )
    )
    return list(session.execute(statement).all())


def _abandon_open_attempts(session: Session, claims: Sequence[Claim], *, now: datetime) -> None:
    """Attempts of reclaimed items that never reported (their worker died or overran its lease)."""
    by_merchant: dict[str, list[str]] = {}
    for c in claims:
        if c.attempts > 1:
            by_merchant.setdefault(c.merchant_id, []).append(c.id)
    for merchant_id, item_ids in by_merchant.items():
        session.execute(
            update(ATTEMPTS)
            .where(
                ATTEMPTS.c.merchant_id == merchant_id,
                ATTEMPTS.c.item_id.in_(item_ids),
                ATTEMPTS.c.outcome.is_(None),
            )
            .values(
                outcome=AttemptOutcome.ABANDONED.value,
                finished_at=now,
                error="the lease ran out before the worker reported",
            )
        )


def _token(c: Claim) -> Any:
    return and_(
        ITEMS.c.merchant_id == c.merchant_id,
        ITEMS.c.id == c.id,
        ITEMS.c.status == ItemStatus.IN_FLIGHT.value,
        ITEMS.c.worker == c.worker,
        ITEMS.c.attempts == c.attempts,
    )


def renew_lease(session: Session, c: Claim, *, now: datetime, lease_until: datetime) -> bool:
    """Extend the lease of a claim still held; False when it was lost (reclaimed by another)."""
    result = session.execute(
        update(ITEMS)
        .where(_token(c))
        .values(lease_until=lease_until, available_at=lease_until, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    session: Session,
    c: Claim,
    outcome: AttemptOutcome,
    *,
    now: datetime,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """Record the attempt's outcome and move the item on; False when the claim was lost meanwhile
    (the item was reclaimed after the lease ran out: the newer attempt decides)."""
    error = error[:ERROR_LIMIT] if error else None
    values: dict[str, Any] = {"updated_at": now, "lease_until": None, "last_error": error}
    if outcome == AttemptOutcome.DONE:
        values.update(status=ItemStatus.DONE.value, done_at=now)
    elif outcome == AttemptOutcome.RETRY:
        assert retry_at is not None
        values.update(status=ItemStatus.PENDING.value, available_at=retry_at)
    else:
        values.update(status=ItemStatus.DEAD.value)
    held = bool(session.execute(update(ITEMS).where(_token(c)).values(**values)).rowcount)  # type: ignore[attr-defined]
    session.execute(
        update(ATTEMPTS)
        .where(ATTEMPTS.c.merchant_id == c.merchant_id, ATTEMPTS.c.id == c.attempt_id)
        .values(
            outcome=outcome.value if held else AttemptOutcome.ABANDONED.value,
            finished_at=now,
            error=error if held else f"reported {outcome.value} after the lease was lost: {error or ''}",
        )
    )
    return held


def finish_done(session: Session, claims: Sequence[Claim], *, now: datetime) -> set[str]:
    """:func:`finish` with ``DONE`` for many claims of one worker, a few statements per slice of
    500 instead of two per item; the ids of the claims still held (recorded ``done``). The rest
    were lost meanwhile: the caller records them with :func:`finish` (their attempt abandoned)."""
    held: set[str] = set()
    by_merchant: dict[str, list[Claim]] = {}
    for c in claims:
        by_merchant.setdefault(c.merchant_id, []).append(c)
    for merchant_id, group in by_merchant.items():
        workers = {c.worker for c in group}
        assert len(workers) == 1, "finish_done is for one worker's claims"
        for part in chunked(group, 500):
            done = session.execute(
                update(ITEMS)
                .where(
                    ITEMS.c.merchant_id == merchant_id,
                    tuple_(ITEMS.c.id, ITEMS.c.attempts).in_([(c.id, c.attempts) for c in part]),
                    ITEMS.c.status == ItemStatus.IN_FLIGHT.value,
                    ITEMS.c.worker == part[0].worker,
                )
                .values(
                    status=ItemStatus.DONE.value,
                    done_at=now,
                    updated_at=now,
                    lease_until=None,
                    last_error=None,
                )
                .returning(ITEMS.c.id)
            )
            kept = {str(row[0]) for row in done}
            held |= kept
            session.execute(
                update(ATTEMPTS)
                .where(
                    ATTEMPTS.c.merchant_id == merchant_id,
                    ATTEMPTS.c.id.in_([c.attempt_id for c in part if c.id in kept]),
                )
                .values(outcome=AttemptOutcome.DONE.value, finished_at=now, error=None)
            )
    return held


def list_items(
    session: Session, merchant_id: str, *, status: str | None, kind: str | None, page: PageRequest
) -> list[OutboxItem]:
    statement = select(OutboxItem).where(OutboxItem.merchant_id == merchant_id)
    if status is not None:
        statement = statement.where(OutboxItem.status == status)
    if kind is not None:
        statement = statement.where(OutboxItem.kind == kind)
    return list(session.execute(paginate(statement, OutboxItem.id, page)).scalars())


def get_item(session: Session, merchant_id: str, item_id: str) -> OutboxItem | None:
    return session.get(OutboxItem, (merchant_id, item_id))


def item_by_key(session: Session, merchant_id: str, key: str) -> OutboxItem | None:
    return session.execute(
        select(OutboxItem).where(OutboxItem.merchant_id == merchant_id, OutboxItem.key == key)
    ).scalar_one_or_none()


def attempts_of(session: Session, merchant_id: str, item_id: str) -> list[OutboxAttempt]:
    return list(
        session.execute(
            select(OutboxAttempt)
            .where(OutboxAttempt.merchant_id == merchant_id, OutboxAttempt.item_id == item_id)
            .order_by(OutboxAttempt.id)
        ).scalars()
    )


def requeue(session: Session, merchant_id: str, item_id: str, *, now: datetime) -> bool:
    """A dead item back to pending, due now, with a fresh attempt budget (one statement)."""
    result = session.execute(
        update(ITEMS)
        .where(
            ITEMS.c.merchant_id == merchant_id,
            ITEMS.c.id == item_id,
            ITEMS.c.status == ItemStatus.DEAD.value,
        )
        .values(status=ItemStatus.PENDING.value, attempts=0, available_at=now, updated_at=now, worker=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def counts_by_status(session: Session, merchant_id: str | None = None) -> dict[str, int]:
    statement = select(ITEMS.c.status, func.count()).group_by(ITEMS.c.status)
    if merchant_id is not None:
        statement = statement.where(ITEMS.c.merchant_id == merchant_id)
    return {status: int(n) for status, n in session.execute(statement).all()}
