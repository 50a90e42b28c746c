"""What other modules may use of lifecycle: a member's stage and history, members by stage,
the sweep for the upkeep loop; the PIPL export hook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from siyu.lifecycle import repository as repo
from siyu.lifecycle import service
from siyu.lifecycle.models import MemberStage, StageTransition
from siyu.lifecycle.rules import Stage
from siyu.members.rights import on_export


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


def sweep(session: Session, merchant_id: str, *, now: datetime) -> service.SweepResult:
    """The daily job for one merchant (idempotent; see :func:`siyu.lifecycle.service.sweep`)."""
    return service.sweep(session, merchant_id, now=now)


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
