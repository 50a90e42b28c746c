"""The frozen views and refusals of the coupons module (re-exported by ``facade.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from siyu.kit.problems import Conflict


class CouponRefused(Conflict):
    """A coupon was not issued; ``reason`` says why (the API answers 409 with it).

    ``out_of_stock``, ``member_limit``, ``period_limit``, ``budget_exhausted``, ``not_active``,
    ``expired_template``; also ``member_erased`` (an erased member cannot claim), ``code_used``
    (a unique promo code already claimed) and ``busy`` (stock is left but every bucket holding
    it stayed locked by claims in flight for ~0.1 s, in the last moments of a drop: retry).
    """

    slug, title = "coupon-refused", "Coupon refused"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason


class CouponNotUsable(Conflict):
    """Coupons cannot be redeemed on an order; ``reason`` says why, ``code`` which coupon."""

    slug, title = "coupon-not-usable", "Coupon not usable"

    def __init__(self, reason: str, detail: str, code: str | None = None) -> None:
        extra: dict[str, Any] = {"reason": reason}
        if code is not None:
            extra["code"] = code
        super().__init__(detail, extra=extra)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class IssuedCoupon:
    """A coupon just issued (or, with ``replayed``, the one an identical earlier call issued)."""

    id: str
    code: str
    template_id: str
    member_id: str
    valid_from: datetime
    valid_until: datetime
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class CouponView:
    id: str
    code: str
    template_id: str
    template_name: str
    kind: str
    member_id: str
    status: str
    source: str
    source_ref: str | None
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime
    redeemed_at: datetime | None
    redemption_id: str | None
    value_fen: int | None = None
    discount_bp: int | None = None
    cap_fen: int | None = None
    threshold_fen: int | None = None
    item_name: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateView:
    id: str
    name: str
    kind: str
    status: str
    code_mode: str
    shared_code: str | None
    value_fen: int | None
    discount_bp: int | None
    cap_fen: int | None
    item_name: str | None
    threshold_fen: int | None
    min_spend_fen: int | None
    stock: int
    issued: int
    remaining: int
    redeemed: int
    budget_fen: int | None
    budget_used_fen: int
    per_member_limit: int | None
    period: str | None
    period_limit: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    store_ids: list[str]
    channels: list[str]
    stacking: str
    currency: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RedemptionLine:
    coupon_id: str
    code: str
    template_id: str
    kind: str
    discount_fen: int
    item_name: str | None = None


@dataclass(frozen=True, slots=True)
class RedemptionView:
    """The coupons used on one order and what each took off (``payable_fen`` = amount − discount)."""

    id: str | None
    order_id: str
    member_id: str
    status: str
    amount_fen: int
    discount_fen: int
    payable_fen: int
    lines: list[RedemptionLine]
    store_id: str | None
    channel: str | None
    at: datetime
    reversed_at: datetime | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class PromoCodeView:
    code: str
    template_id: str
    claimed: bool
    coupon_id: str | None
    claimed_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CodesGenerated:
    template_id: str
    generated: int
    total: int
    codes: list[str] = field(default_factory=list)
