"""Points API bodies and answers. Points are integers; amounts are never floats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from siyu.points.facade import ExpiringView, LotView, PointsEntryView
from siyu.points.models import ExpiryPolicy, MallItemKind, MallItemStatus

Points = Annotated[int, Field(strict=True, ge=1, le=100_000_000)]
SignedPoints = Annotated[int, Field(strict=True, ge=-100_000_000, le=100_000_000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
Count = Annotated[int, Field(strict=True, ge=0, le=100_000_000)]
Limit = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]


class AdjustmentIn(BaseModel):
    """A manual adjustment (人工调整): positive adds a lot, negative takes points; a reason is required."""

    model_config = ConfigDict(extra="forbid")

    points: SignedPoints = Field(description="not zero; negative takes points", examples=[100])
    reason: Reason
    key: Key = Field(description="idempotency key: a retry with it returns the first entry")


class SpendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Points
    reason: Reason
    key: Key = Field(description="idempotency key: a retry with it returns the first entry")


class PostedOut(BaseModel):
    entry: PointsEntryView
    balance: int
    replayed: bool


class BalanceOut(BaseModel):
    member_id: str
    balance: int
    expiring: list[ExpiringView]
    lots: list[LotView]


class SettingsIO(BaseModel):
    """Earn rule: ``floor(amount_fen × points_per_yuan × tier multiplier_bp / 1 000 000)`` points."""

    model_config = ConfigDict(extra="forbid")

    points_per_yuan: Annotated[int, Field(strict=True, ge=0, le=10_000)] = Field(
        default=1, description="points per 100 fen paid, before the tier multiplier; rounded down"
    )
    expiry_policy: ExpiryPolicy = ExpiryPolicy.END_OF_NEXT_YEAR
    expiry_days: Annotated[int, Field(strict=True, ge=1, le=36_500)] | None = None
    allow_negative: bool = Field(
        default=False, description="a refund reversal may take the balance below zero (else: shortfall)"
    )


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: EventType = Field(examples=["checkin", "custom.review"])
    points: Points
    daily_cap: Limit | None = Field(default=None, description="awards per member per local day")
    active: bool = True


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Points | None = None
    daily_cap: Limit | None = None
    active: bool | None = None


class RuleOut(BaseModel):
    id: str
    event_type: str
    points: int
    daily_cap: int | None
    active: bool
    created_at: datetime
    updated_at: datetime


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: MallItemKind
    cost_points: Points
    coupon_template_id: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    stock: Count
    per_member_limit: Limit | None = None
    status: MallItemStatus = MallItemStatus.ACTIVE
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None


class ItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    cost_points: Points | None = None
    add_stock: Annotated[int, Field(strict=True, ge=-100_000_000, le=100_000_000)] | None = Field(
        default=None, description="change the stock by this many (negative removes)"
    )
    per_member_limit: Limit | None = None
    status: MallItemStatus | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None


class ItemOut(BaseModel):
    id: str
    name: str
    kind: str
    cost_points: int
    coupon_template_id: str | None
    stock: int
    per_member_limit: int | None
    status: str
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    updated_at: datetime


class ExchangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    key: Key = Field(description="idempotency key: a retry with it returns the first exchange")


class VoucherOut(BaseModel):
    id: str
    code: str
    member_id: str
    item_id: str
    item_name: str
    status: str
    issued_at: datetime
    used_at: datetime | None


class ExchangeOut(BaseModel):
    id: str
    item_id: str
    member_id: str
    points: int
    entry_id: str
    coupon_id: str | None
    coupon_code: str | None
    voucher: VoucherOut | None
    balance: int
    at: datetime
    replayed: bool
