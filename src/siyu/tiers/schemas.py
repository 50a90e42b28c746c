"""Tier API bodies and answers. Thresholds are integers: growth value, or fen of spend."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from siyu.tiers.facade import TierChangeView, TierView
from siyu.tiers.models import Basis

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Level = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Amount = Annotated[int, Field(strict=True, ge=0, le=2_000_000_000)]
Rank = Annotated[int, Field(strict=True, ge=0, le=100)]
Multiplier = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
Count = Annotated[int, Field(strict=True, ge=1, le=100)]
Days = Annotated[int, Field(strict=True, ge=1, le=3660)]
OrderId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class SettingsIO(BaseModel):
    """How members qualify. ``growth``: growth value (成长值) earned in the assessment period,
    ``growth_per_yuan`` per 100 fen paid; ``spend_365``: net spend in fen over the rolling 365 days."""

    model_config = ConfigDict(extra="forbid")

    basis: Basis = Basis.GROWTH
    growth_per_yuan: Annotated[int, Field(strict=True, ge=0, le=10_000)] = 1
    period_months: Annotated[int, Field(strict=True)] = Field(
        default=12, description="assessment period in local calendar months: 1, 2, 3, 4, 6 or 12"
    )


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["金卡"])
    rank: Rank = Field(description="0 is the entry tier; a higher rank is a better tier")
    threshold: Amount = Field(description="qualifying value needed: growth value, or fen of 365-day spend")
    points_multiplier_bp: Multiplier = Field(default=10_000, description="10 000 = 1×, 15 000 = 1.5×")
    monthly_coupon_template_id: str | None = Field(default=None, description="privilege coupon (月度特权)")
    monthly_coupon_count: Count = 1
    birthday_coupon_template_id: str | None = None
    birthday_points: Annotated[int, Field(strict=True, ge=0, le=1_000_000)] = 0
    price_fen: Amount | None = Field(default=None, description="purchasable (paid membership) at this price")
    paid_days: Days | None = Field(default=None, description="how long a purchase holds the tier")


class TierPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    rank: Rank | None = None
    threshold: Amount | None = None
    points_multiplier_bp: Multiplier | None = None
    monthly_coupon_template_id: str | None = None
    monthly_coupon_count: Count | None = None
    birthday_coupon_template_id: str | None = None
    birthday_points: Annotated[int, Field(strict=True, ge=0, le=1_000_000)] | None = None
    price_fen: Amount | None = None
    paid_days: Days | None = None


class TierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    rank: int
    threshold: int
    points_multiplier_bp: int
    monthly_coupon_template_id: str | None
    monthly_coupon_count: int
    birthday_coupon_template_id: str | None
    birthday_points: int
    price_fen: int | None
    paid_days: int | None
    created_at: datetime
    updated_at: datetime


class LinkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    platform: str
    external_level: str
    active: bool
    valid_until: datetime | None
    linked_at: datetime


class MemberTierOut(BaseModel):
    member_id: str
    tier: TierView
    links: list[LinkOut]
    history: list[TierChangeView] = Field(description="newest first")


class PurchaseIn(BaseModel):
    """A paid membership bought: the payment happened elsewhere; ``order_id`` makes it idempotent."""

    model_config = ConfigDict(extra="forbid")

    tier_id: str
    order_id: OrderId
    amount_fen: Amount | None = Field(default=None, description="paid; defaults to the tier's price")


class PurchaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_id: str
    member_id: str
    tier_id: str
    amount_fen: int
    days: int
    starts_at: datetime
    ends_at: datetime
    cancelled_at: datetime | None


class MappingIn(BaseModel):
    """The platform's levels and the tier each maps onto (replaces the platform's whole map)."""

    model_config = ConfigDict(extra="forbid")

    levels: dict[Level, str] = Field(examples=[{"gold": "tir_…", "platinum": "tir_…"}], max_length=100)


class MappingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    platform: str
    external_level: str
    tier_id: str


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_level: Level
    valid_until: AwareDatetime | None = Field(default=None, description="the link lapses by itself then")


class RunOut(BaseModel):
    assessed: int
    changed: int
    privilege_coupons: int
    birthday_gifts: int
    refused: dict[str, int]
