"""Merges as sets: the groups of one identity resolution, and moving rows to their survivors.

:mod:`siyu.members.service` resolves identities and calls every merge listener once with all the
groups of a resolution (see its docstring); these are the pieces the listeners share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, case, update
from sqlalchemy.orm import Session

from siyu.kit.sql import chunked


@dataclass(frozen=True, slots=True)
class MergeGroup:
    """One person's merge: ``merged`` (never empty) fold into ``survivor``. The groups of one call
    are disjoint: no id is in two groups, and no survivor is merged."""

    survivor: str
    merged: tuple[str, ...]


def survivors_of(groups: Sequence[MergeGroup]) -> dict[str, str]:
    """Merged id → its survivor."""
    return {m: g.survivor for g in groups for m in g.merged}


def people_of(groups: Sequence[MergeGroup]) -> dict[str, str]:
    """Every id of ``groups`` (merged or survivor) → the survivor it ends as."""
    return survivors_of(groups) | {g.survivor: g.survivor for g in groups}


def survivor_case(column: Any, survivor_of: dict[str, str], ids: Sequence[str]) -> Any:
    """``CASE column WHEN merged THEN survivor … END`` for these merged ``ids``."""
    return case({m: survivor_of[m] for m in ids}, value=column)


REASSIGN_CHUNK = 400


def reassign(
    session: Session,
    table: Table | Any,
    merchant_id: str,
    groups: Sequence[MergeGroup],
    column: str = "member_id",
    *,
    by: str | None = None,
    values: dict[str, Any] | None = None,
    synchronize: bool = True,
) -> None:
    """``UPDATE table SET column = CASE by WHEN merged THEN survivor … END WHERE by IN (merged)``
    for every merged id of ``groups`` (``by`` defaults to ``column``), in statements of
    :data:`REASSIGN_CHUNK` ids; ``values`` are set on the same rows. ``table`` is a Core table or
    a mapped class; for a mapped class the objects already in the session are updated too unless
    ``synchronize`` is false (as ``update(Model)`` does)."""
    mapped = hasattr(table, "__table__")
    target: Table = getattr(table, "__table__", table)
    match = target.c[by or column]
    survivor_of = survivors_of(groups)
    for chunk in chunked(sorted(survivor_of), REASSIGN_CHUNK):
        statement = (
            update(table if mapped else target)
            .where(target.c.merchant_id == merchant_id, match.in_(list(chunk)))
            .values({column: survivor_case(match, survivor_of, chunk), **(values or {})})
        )
        if mapped:
            statement = statement.execution_options(synchronize_session="fetch" if synchronize else False)
        session.execute(statement)
