"""Coupons API bodies. Answers reuse the frozen views (``views.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from siyu.coupons.models import CodeMode, CouponKind, CouponSource, LimitPeriod, Stacking

MAX_FEN = 100_000_000_000
"""One billion yuan: anything larger is a typo."""
Fen = Annotated[int, Field(strict=True, ge=1, le=MAX_FEN)]
FenOrZero = Annotated[int, Field(strict=True, ge=0, le=MAX_FEN)]
Count = Annotated[int, Field(strict=True, ge=1, le=1_000_000_000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
MemberId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
CodeText = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class TemplateIn(BaseModel):
    """A coupon template (商家券). Kind-specific fields are checked together (422 with pointers)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: CouponKind
    value_fen: Fen | None = Field(default=None, description="cash/threshold: off; exchange: accounting value")
    discount_bp: Annotated[int, Field(strict=True, ge=1, le=9999)] | None = Field(
        default=None, description="discount: basis points off (2000 = 20 % off, 八折)"
    )
    cap_fen: Fen | None = Field(default=None, description="discount: at most this much off")
    item_name: Name | None = Field(default=None, description="exchange: the item given")
    threshold_fen: Fen | None = Field(default=None, description="threshold (满减): spend at least this")
    min_spend_fen: FenOrZero | None = Field(default=None, description="any kind: minimum order amount")
    code_mode: CodeMode = CodeMode.ISSUED
    shared_code: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    total_stock: Count
    budget_fen: Fen | None = Field(default=None, description="cap on the total discount granted")
    per_member_limit: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] | None = None
    period: LimitPeriod | None = None
    period_limit: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    valid_days: Annotated[int, Field(strict=True, ge=1, le=3650)] | None = None
    store_ids: list[Ref] = Field(default_factory=list, max_length=500, description="empty: every store")
    channels: list[Ref] = Field(default_factory=list, max_length=50, description="empty: every channel")
    stacking: Stacking = Stacking.EXCLUSIVE
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None


class TemplatePatch(BaseModel):
    """What may change on a template at any status (the money terms may not)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    budget_fen: Fen | None = None
    valid_until: AwareDatetime | None = None
    store_ids: list[Ref] | None = Field(default=None, max_length=500)
    channels: list[Ref] | None = Field(default=None, max_length=50)
    stacking: Stacking | None = None


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: Count = Field(description="coupons to add to the stock")


class CodesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: Annotated[int, Field(strict=True, ge=1, le=10_000)]


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: MemberId
    source: CouponSource = CouponSource.API
    source_ref: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="makes the claim idempotent: the same ref returns the first coupon"
    )


class CodeClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: MemberId
    code: CodeText


class RedemptionIn(BaseModel):
    """Coupons used on one order (核销); idempotent by ``order_id``."""

    model_config = ConfigDict(extra="forbid")

    member_id: MemberId
    order_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    codes: list[CodeText] = Field(min_length=1, max_length=10)
    amount_fen: FenOrZero = Field(description="the order amount before discounts, in fen")
    store_id: Ref | None = None
    channel: Ref | None = None
    at: AwareDatetime | None = Field(default=None, description="when the order was placed; default: now")
