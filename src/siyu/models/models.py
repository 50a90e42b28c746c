"""The record of every model refit (``model_fits``): what was fitted, on how many members, how well.

The scores themselves live with segments (``member_scores``, written through
:func:`siyu.segments.facade.record_scores`) so that segment rules can select on them.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)


class FitStatus(StrEnum):
    QUEUED = "queued"
    """Requested; the refit job has not started yet."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    """Every model fitted and every score written."""
    PARTIAL = "partial"
    """One model could not be fitted (``error`` says which and why); the other's scores were written."""
    FAILED = "failed"
    """No model could be fitted; no score was written (``error`` says why)."""


class ModelFit(Base):
    """One refit of a merchant's member models (CLV, P(alive), churn risk, high-potential)."""

    __tablename__ = "model_fits"
    __table_args__ = (Index(None, "merchant_id", "requested_at"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=FitStatus.QUEUED)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    as_of: Mapped[date | None] = mapped_column(Date)
    """The merchant-local day the features were computed to (included)."""
    n_customers: Mapped[int | None] = mapped_column(Integer)
    """Members with at least one purchase (the BG/NBD's customers)."""
    n_repeat: Mapped[int | None] = mapped_column(Integer)
    """Of them, members with a repeat purchase day (what the Gamma-Gamma fits on)."""
    n_prospects: Mapped[int | None] = mapped_column(Integer)
    """Members without an order, scored by the high-potential model."""
    log_likelihood: Mapped[float | None] = mapped_column(Float)
    """The BG/NBD's maximised log-likelihood."""
    auc: Mapped[float | None] = mapped_column(Float)
    """The high-potential model's AUC on its held-out members."""
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """``bgnbd`` (r, alpha, a, b, …), ``gamma_gamma`` (p, q, v, …), ``high_potential`` (AUC, Brier, …)."""
    members_scored: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
