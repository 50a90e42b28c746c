"""Every query of the model-fit record; always addressed with the merchant id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.kit.ids import IdKind, new_id
from siyu.models.models import FitStatus, ModelFit


def create_fit(session: Session, merchant_id: str, *, now: datetime) -> ModelFit:
    fit = ModelFit(
        merchant_id=merchant_id,
        id=new_id(IdKind.MODEL_FIT),
        status=FitStatus.QUEUED,
        requested_at=now,
        params={},
        members_scored=0,
    )
    session.add(fit)
    session.flush()
    return fit


def get_fit(session: Session, merchant_id: str, fit_id: str) -> ModelFit | None:
    return session.get(ModelFit, (merchant_id, fit_id))


def latest_fits(session: Session, merchant_id: str, *, limit: int) -> list[ModelFit]:
    statement = (
        select(ModelFit)
        .where(ModelFit.merchant_id == merchant_id)
        .order_by(ModelFit.requested_at.desc(), ModelFit.id.desc())
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def start_fit(session: Session, merchant_id: str, fit_id: str, *, now: datetime) -> bool:
    """Queued (or left running by a worker that died) → running; False once finished."""
    result = session.execute(
        update(ModelFit)
        .where(
            ModelFit.merchant_id == merchant_id,
            ModelFit.id == fit_id,
            ModelFit.status.in_([FitStatus.QUEUED, FitStatus.RUNNING]),
        )
        .values(status=FitStatus.RUNNING, started_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def finish_fit(session: Session, merchant_id: str, fit_id: str, **values: Any) -> None:
    session.execute(
        update(ModelFit).where(ModelFit.merchant_id == merchant_id, ModelFit.id == fit_id).values(**values)
    )
