"""Analytics API answers: the metric's frozen dataclass inside an envelope saying what was
computed (period, grain, filters) and where (state store or mirror, with its watermark)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from siyu.analytics.scope import Grain
from siyu.analytics.service import Source

T = TypeVar("T")


class Filters(BaseModel):
    store_id: str | None = None
    channel: str | None = None
    tier: str | None = None


class AnalyticsOut(BaseModel, Generic[T]):
    source: Source = Field(description="where the figures were computed: 'state' or 'mirror'")
    watermark: datetime | None = Field(
        None, description="the mirror's watermark (data up to this time); null on the state store"
    )
    timezone: str = Field(description="the merchant's time zone: the local days of the period")
    start: date
    end: date
    grain: Grain
    filters: Filters
    data: T


class DashboardOut(BaseModel):
    source: Source
    watermark: datetime | None = None
    timezone: str
    start: date
    end: date
    grain: Grain
    filters: Filters
    sections: dict[str, Any] = Field(description="every registered section by name (customer, scale, …)")
