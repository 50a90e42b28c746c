"""Time is aware UTC everywhere; day boundaries use the merchant's time zone.

Rules take ``now`` as an argument so tests never patch a clock. Only edges of the system
(request handlers, CLI commands, jobs) call :func:`utcnow`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def utcnow() -> datetime:
    """The current instant as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse naive ones (they are ambiguous)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: give a time zone (for example 2026-01-01T08:00:00+08:00)")
    return value.astimezone(UTC)


def iso_or_none(value: datetime | None) -> str | None:
    """ISO 8601 text of ``value``, ``None`` kept (exports)."""
    return value.isoformat() if value else None


def is_valid_timezone(name: str) -> bool:
    """True for an IANA time-zone name this machine knows (``Asia/Shanghai``)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
