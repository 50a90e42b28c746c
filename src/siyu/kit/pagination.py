"""Cursor pagination over time-ordered ids.

A list endpoint takes ``limit`` (1–200, default 50) and an opaque ``cursor``; it answers
``{"items": [...], "next_cursor": "…" | null}``. The cursor encodes the last id returned, so
pages stay stable while rows are inserted (new rows sort after the cursor) and the query is an
index range scan, not an ``OFFSET``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from siyu.kit.problems import BadRequest

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What the client asked for: at most ``limit`` items after ``after_id``."""

    limit: int = DEFAULT_LIMIT
    after_id: str | None = None


def encode_cursor(last_id: str) -> str:
    raw = json.dumps({"after": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API issued; start again without it") from None
    if not isinstance(after, str):
        raise BadRequest("cursor is not one this API issued; start again without it")
    return after


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> PageRequest:
    """FastAPI dependency for the two paging query parameters."""
    return PageRequest(limit=limit, after_id=decode_cursor(cursor) if cursor else None)


def paginate(statement: Select[Any], id_column: InstrumentedAttribute[str], page: PageRequest) -> Select[Any]:
    """Restrict ``statement`` to one page (fetches one extra row to know if more exist)."""
    if page.after_id is not None:
        statement = statement.where(id_column > page.after_id)
    return statement.order_by(id_column).limit(page.limit + 1)


def make_page(rows: Sequence[T], page: PageRequest, id_of: Any) -> tuple[list[T], str | None]:
    """Split the extra row off and compute the next cursor."""
    items = list(rows[: page.limit])
    next_cursor = encode_cursor(id_of(items[-1])) if len(rows) > page.limit and items else None
    return items, next_cursor
