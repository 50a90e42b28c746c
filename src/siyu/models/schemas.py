"""Member-models API bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from siyu.models.churn import ChurnBand
from siyu.models.models import FitStatus


class FitOut(BaseModel):
    """One refit: ``queued`` → ``running`` → ``succeeded``, ``partial`` (one model could not be fitted)
    or ``failed`` (none could; ``error`` says why, and the previous scores stay in place)."""

    id: str
    status: FitStatus
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    as_of: date | None = Field(description="the merchant-local day the features run to (included)")
    n_customers: int | None = Field(description="members with a purchase (BG/NBD customers)")
    n_repeat: int | None = Field(description="of them, members with a repeat purchase day")
    n_prospects: int | None = Field(description="members without an order (high-potential scored)")
    log_likelihood: float | None = Field(description="the BG/NBD's maximised log-likelihood")
    auc: float | None = Field(description="the high-potential model's held-out AUC")
    params: dict[str, Any] = Field(description="bgnbd, gamma_gamma, clv and high_potential figures")
    members_scored: int
    error: str | None


class FitList(BaseModel):
    items: list[FitOut]


class MemberScoresOut(BaseModel):
    member_id: str
    clv_fen: int | None = Field(description="discounted value of the next 12 months' purchases, fen")
    scores: dict[str, float] = Field(
        description="p_alive, expected_purchases_30d, churn_risk, high_potential (CLV is clv_fen)"
    )
    computed_at: datetime | None
    churn_band: ChurnBand | None = Field(description="low, medium, high or critical (docs/models.md)")
