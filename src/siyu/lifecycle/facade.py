"""What other modules may use of lifecycle: a member's stage and history, members by stage,
the sweep for the upkeep loop; the PIPL export hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from siyu.lifecycle import repository as repo
from siyu.lifecycle import service
from siyu.lifecycle.models import MemberStage, StageTransition
from siyu.lifecycle.rules import STAGE_ORDER, Stage, StageRules
from siyu.members.rights import on_export
from siyu.tenancy import facade as tenancy


@dataclass(frozen=True, slots=True)
class TransitionView:
    seq: int
    from_stage: Stage | None
    to_stage: Stage | None
    effective_on: date
    recorded_at: datetime
    cause: str


@dataclass(frozen=True, slots=True)
class StageView:
    stage: Stage | None
    """``None``: not classified yet (the next sweep does it)."""
    since: date | None
    history: list[TransitionView]
    """Ledger entries, newest first."""


def _stage(value: str | None) -> Stage | None:
    return None if value is None else Stage(value)


def transition_view(t: StageTransition) -> TransitionView:
    return TransitionView(
        t.seq, _stage(t.from_stage), _stage(t.to_stage), t.effective_on, t.recorded_at, t.cause
    )


def stage_of(session: Session, merchant_id: str, member_id: str, *, history: int = 10) -> StageView:
    row = session.get(MemberStage, (merchant_id, member_id))
    entries = repo.history(session, merchant_id, member_id, limit=history) if history else []
    return StageView(
        stage=_stage(row.stage) if row else None,
        since=row.since if row else None,
        history=[transition_view(t) for t in entries],
    )


def member_ids_in_stage(merchant_id: str, stage: Stage) -> Select[Any]:
    """Ids of the members currently in ``stage`` (for list filters and segments)."""
    return repo.member_ids_in_stage(merchant_id, stage.value)


@dataclass(frozen=True, slots=True)
class StageEntry:
    member_id: str
    effective_on: date
    recorded_at: datetime


def entered_stage(
    session: Session,
    merchant_id: str,
    stage: Stage,
    *,
    recorded_after: datetime,
    after_member: str = "",
    since_day: date,
    limit: int = 5000,
) -> list[StageEntry]:
    """Members who entered ``stage`` in ledger entries after the cursor (``recorded_after``,
    ``after_member``: pass the last entry seen), effective on or after ``since_day``, in
    (recorded_at, member) order. For reactions to stage changes (a campaign triggered by
    "became dormant")."""
    rows = repo.entries_into(
        session, merchant_id, stage.value, since_day=since_day, recorded_after=recorded_after,
        after_member=after_member, limit=limit,
    )  # fmt: skip
    return [StageEntry(m, d, at) for m, d, at in rows]


def sweep(
    session: Session,
    merchant_id: str,
    *,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
    max_members: int | None = None,
) -> service.SweepResult:
    """The daily job for one merchant (idempotent; see :func:`siyu.lifecycle.service.sweep`)."""
    return service.sweep(session, merchant_id, now=now, progress=progress, max_members=max_members)


SWEEP_SLICE = 5_000
"""Members per transaction when the daily job runs in the background or from the CLI."""


def rebuild(
    session: Session,
    merchant_id: str,
    *,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> service.SweepResult:
    """Rewrite the merchant's ledger from its event history (:func:`siyu.lifecycle.service.rebuild`)."""
    return service.rebuild(session, merchant_id, now=now, progress=progress)


def today(session: Session, merchant_id: str, now: datetime) -> date:
    """The merchant's local day at ``now``."""
    return service.local_day(now, tenancy.merchant_zone(session, merchant_id))


def stage_counts(session: Session, merchant_id: str, on: date) -> dict[Stage, int]:
    """Members per stage at the end of ``on`` (every stage, zeros included, in lifecycle order)."""
    counts = repo.stage_counts(session, merchant_id, on)
    return {s: counts.get(s.value, 0) for s in STAGE_ORDER}


@dataclass(frozen=True, slots=True)
class FlowView:
    from_stage: Stage | None
    """``None``: not a member yet on the first day."""
    to_stage: Stage | None
    """``None``: merged into another member by the second day."""
    members: int


def flows(session: Session, merchant_id: str, start: date, end: date) -> list[FlowView]:
    """Members by (stage on ``start``, stage on ``end``), in lifecycle order."""
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    views = [FlowView(_stage(a), _stage(b), n) for a, b, n in repo.flows(session, merchant_id, start, end)]
    return sorted(
        views,
        key=lambda f: (
            order[f.from_stage] if f.from_stage else -1,
            order[f.to_stage] if f.to_stage else len(order),
        ),
    )


def _export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    view = stage_of(session, merchant_id, member_id, history=10_000)
    return {
        "stage": view.stage,
        "stage_since": view.since.isoformat() if view.since else None,
        "stage_history": [
            {
                "from_stage": t.from_stage,
                "to_stage": t.to_stage,
                "effective_on": t.effective_on.isoformat(),
                "recorded_at": t.recorded_at.isoformat(),
                "cause": t.cause,
            }
            for t in view.history
        ],
    }


on_export(_export)


def rules_of(session: Session, merchant_id: str) -> StageRules:
    """The merchant's stage rules (the defaults until changed)."""
    return service.rules_of(session, merchant_id)


def set_rules(
    session: Session, merchant_id: str, values: Mapping[str, Any], *, actor: str, now: datetime
) -> StageRules:
    """Replace the stage rules (validated: pydantic ``ValidationError``) and re-classify the
    members (a few at once, the rest at the next sweep); returns the stored rules."""
    rules = StageRules.model_validate(dict(values))
    service.set_rules(session, merchant_id, rules, actor=actor, now=now)
    return rules
