"""Funnels (漏斗) over any ordered list of event types within a conversion window.

A member enters the funnel with their **first** event of step 1 in the period (the anchor); they
reach step *k* when, after reaching step *k − 1*, they have an event of step *k*'s type strictly
later than the event that took them to step *k − 1* and at most ``window_days`` × 24 h after the
anchor. Each step takes the earliest such event (which leaves the most room for the next).
Later steps may fall after the period's end, as long as they are inside the window.
Definition (dated): docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from siyu.analytics.relations import Relations
from siyu.analytics.scope import Scope, event_filter, rate_bp

MAX_STEPS = 10
MAX_WINDOW_DAYS = 366


class plus_days(FunctionElement[Any]):
    """A timestamp ``days`` × 24 h later (``days`` is a validated int, rendered inline)."""

    name = "siyu_plus_days"
    inherit_cache = False

    def __init__(self, timestamp: Any, days: int) -> None:
        super().__init__(timestamp)
        self.days = int(days)
        self.type = timestamp.type


@compiles(plus_days, "sqlite")
def _plus_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    # SQLite keeps timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text: shift the seconds part and
    # keep the stored fraction verbatim, so the bound compares exactly with other stored times.
    (ts,) = list(element.clauses)
    x = compiler.process(ts, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%S', {x}, '+{element.days} days') || substr({x}, 20))"


@compiles(plus_days, "postgresql")
@compiles(plus_days, "duckdb")
def _plus_interval(element: Any, compiler: Any, **kw: Any) -> str:
    (ts,) = list(element.clauses)
    return f"({compiler.process(ts, **kw)} + INTERVAL '{element.days * 24} hours')"


@dataclass(frozen=True)
class FunnelStep:
    type: str
    members: int
    from_first_bp: int | None
    """Members at this step ÷ members at step 1, basis points."""
    from_previous_bp: int | None


@dataclass(frozen=True)
class Funnel:
    window_days: int
    steps: tuple[FunnelStep, ...]


def funnel(rel: Relations, scope: Scope, steps: Sequence[str], window_days: int) -> Select[Any]:
    """Rows ``(step_index, members)`` for every step (0-based)."""
    if not 1 <= len(steps) <= MAX_STEPS:
        raise ValueError(f"a funnel has 1 to {MAX_STEPS} steps")
    if not 0 <= window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"the window is 0 to {MAX_WINDOW_DAYS} days")
    e = rel.events.c
    reached = (
        select(
            e.member_id.label("member_id"),
            func.min(e.occurred_at).label("anchor"),
            func.min(e.occurred_at).label("at"),
        )
        .where(event_filter(rel, scope), e.type == steps[0])
        .group_by(e.member_id)
        .subquery("step_0")
    )
    counts = [select(literal(0).label("step"), func.count().label("members")).select_from(reached)]
    for k, step in enumerate(steps[1:], start=1):
        prev = reached
        reached = (
            select(prev.c.member_id, prev.c.anchor, func.min(e.occurred_at).label("at"))
            .select_from(
                prev.join(
                    rel.events,
                    and_(
                        e.member_id == prev.c.member_id,
                        e.type == step,
                        e.occurred_at > prev.c.at,
                        e.occurred_at <= plus_days(prev.c.anchor, window_days),
                    ),
                )
            )
            .where(event_filter(rel, scope, period=False))
            .group_by(prev.c.member_id, prev.c.anchor)
            .subquery(f"step_{k}")
        )
        counts.append(select(literal(k).label("step"), func.count().label("members")).select_from(reached))
    statement = counts[0]
    return statement.union_all(*counts[1:]) if len(counts) > 1 else statement  # type: ignore[return-value]


def funnel_view(steps: Sequence[str], window_days: int, rows: Iterable[Sequence[Any]]) -> Funnel:
    by_step = {int(k): int(n) for k, n in rows}
    counts = [by_step.get(k, 0) for k in range(len(steps))]
    return Funnel(
        window_days=window_days,
        steps=tuple(
            FunnelStep(
                type=step,
                members=counts[k],
                from_first_bp=rate_bp(counts[k], counts[0]),
                from_previous_bp=rate_bp(counts[k], counts[k - 1]) if k else rate_bp(counts[0], counts[0]),
            )
            for k, step in enumerate(steps)
        ),
    )
