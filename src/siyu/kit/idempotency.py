"""``Idempotency-Key`` for POST requests: a retry gets the first response, never a second write.

The record is inserted in the *same transaction* as the request's own writes, before the
handler runs. A concurrent request with the same key therefore blocks on the unique key
(PostgreSQL) or on the write lock (SQLite, ``BEGIN IMMEDIATE``) until the first one commits or
rolls back, and then either replays the stored response or runs as the first. A crash can never
leave a committed write without its record, or a record without its write.

* same key, same body → the first response, with ``Idempotent-Replayed: true``;
* same key, other body (or other method/path) → 409 ``idempotency-key-reused``;
* only successful (2xx) responses are kept: a request that failed wrote nothing, so a retry runs.

Keys are scoped to the caller (the hash of its bearer secret) and kept for
:data:`RETENTION`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, LargeBinary, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from siyu.db import Base, UTCDateTime

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
RETENTION = timedelta(days=7)


class IdempotencyRecord(Base):
    """The first successful response to one (caller, key)."""

    __tablename__ = "idempotency_records"

    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    content_type: str
    body: bytes


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same": method, path and exact body bytes."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def principal_of(authorization: str | None) -> str:
    """Scope keys per caller without storing its secret: SHA-256 of the Authorization header."""
    return hashlib.sha256((authorization or "anonymous").encode()).hexdigest()


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()


def reserve(session: Session, principal: str, key: str, fingerprint: str, now: datetime) -> None:
    """Insert the in-flight record; raises ``IntegrityError`` if the key is taken."""
    session.add(IdempotencyRecord(principal=principal, key=key, request_hash=fingerprint, created_at=now))
    session.flush()


def complete(session: Session, principal: str, key: str, response: StoredResponse) -> None:
    """Attach the response to the reserved record (committed with the request's writes)."""
    record = session.get(IdempotencyRecord, (principal, key))
    if record is None:  # pragma: no cover - reserved in the same transaction
        raise RuntimeError("idempotency record vanished inside its own transaction")
    record.status_code = response.status_code
    record.content_type = response.content_type
    record.response_body = response.body
    session.flush()


def find(session: Session, principal: str, key: str) -> IdempotencyRecord | None:
    return session.execute(
        select(IdempotencyRecord).where(
            IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
        )
    ).scalar_one_or_none()


def purge_expired(session: Session, now: datetime) -> int:
    """Delete records older than the retention window; returns how many went."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - RETENTION))
    return int(getattr(result, "rowcount", 0) or 0)
