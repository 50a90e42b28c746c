"""What other modules (API, CLI, console) use of the member models: refits and scores, as frozen views."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.members import facade as members
from siyu.models import repository as repo
from siyu.models import tasks
from siyu.models.churn import ChurnBand, band_of
from siyu.models.models import FitStatus, ModelFit
from siyu.models.scoring import ScoreName
from siyu.segments import facade as segments

__all__ = ["FitView", "MemberScores", "fit", "latest_fits", "member_scores", "request_refit"]


@dataclass(frozen=True)
class FitView:
    id: str
    merchant_id: str
    status: FitStatus
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    as_of: date | None
    n_customers: int | None
    n_repeat: int | None
    n_prospects: int | None
    log_likelihood: float | None
    auc: float | None
    params: dict[str, Any]
    members_scored: int
    error: str | None


@dataclass(frozen=True)
class MemberScores:
    """A member's current scores (only those the latest successful fits gave them)."""

    member_id: str
    scores: dict[str, float]
    computed_at: datetime | None
    churn_band: ChurnBand | None


def _view(f: ModelFit) -> FitView:
    return FitView(
        id=f.id,
        merchant_id=f.merchant_id,
        status=FitStatus(f.status),
        requested_at=f.requested_at,
        started_at=f.started_at,
        finished_at=f.finished_at,
        as_of=f.as_of,
        n_customers=f.n_customers,
        n_repeat=f.n_repeat,
        n_prospects=f.n_prospects,
        log_likelihood=f.log_likelihood,
        auc=f.auc,
        params=dict(f.params or {}),
        members_scored=f.members_scored,
        error=f.error,
    )


def request_refit(session: Session, merchant_id: str, *, now: datetime) -> FitView:
    """Queue a refit of the merchant's models (runs as an outbox job after commit)."""
    return _view(tasks.request_refit(session, merchant_id, now=now))


def fit(session: Session, merchant_id: str, fit_id: str) -> FitView | None:
    found = repo.get_fit(session, merchant_id, fit_id)
    return _view(found) if found else None


def latest_fits(session: Session, merchant_id: str, *, limit: int = 20) -> list[FitView]:
    """The merchant's most recent fits, newest first."""
    return [_view(f) for f in repo.latest_fits(session, merchant_id, limit=limit)]


def member_scores(session: Session, merchant_id: str, member_id: str) -> MemberScores | None:
    """The member's scores (following a merge to the survivor); ``None`` for no such member."""
    found = members.find_member(session, merchant_id, member_id)
    if found is None or found.erased:
        return None
    views = segments.scores_of(session, merchant_id, found.id)
    scores = {v.model: v.score for v in views}
    risk = scores.get(ScoreName.CHURN_RISK)
    return MemberScores(
        member_id=found.id,
        scores=scores,
        computed_at=max((v.computed_at for v in views), default=None),
        churn_band=band_of(risk) if risk is not None else None,
    )
