"""Discount arithmetic (pure): what each coupon on an order takes off, in integer fen.

The one rounding rule is :func:`siyu.kit.money.apply_basis_points` (``round_half_up_div``:
half a fen rounds away from zero). On an order with several coupons:

* every coupon's minimum spend (``threshold_fen`` of a 满减, ``min_spend_fen`` of any kind) is
  checked against the order amount before any discount;
* an ``exclusive`` coupon must be alone on its order;
* discounts apply in a fixed order — exchange, threshold, cash, then percentage discounts on
  what is left — and each is capped at what is left, so the total never exceeds the order amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from siyu.coupons.models import CouponKind, Stacking
from siyu.kit.money import apply_basis_points

APPLY_ORDER = {CouponKind.EXCHANGE: 0, CouponKind.THRESHOLD: 1, CouponKind.CASH: 2, CouponKind.DISCOUNT: 3}


@dataclass(frozen=True, slots=True)
class Terms:
    """What the arithmetic needs of a template."""

    kind: CouponKind
    value_fen: int | None = None
    discount_bp: int | None = None
    cap_fen: int | None = None
    threshold_fen: int | None = None
    min_spend_fen: int | None = None
    stacking: Stacking = Stacking.COMBINABLE

    @property
    def minimum_spend(self) -> int:
        return max(self.threshold_fen or 0, self.min_spend_fen or 0)


class NotApplicable(Exception):
    """The coupons cannot be used on this order; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str, index: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.index = index


def discount_of(terms: Terms, left_fen: int) -> int:
    """What one coupon takes off ``left_fen`` (already capped at ``left_fen``)."""
    if terms.kind is CouponKind.DISCOUNT:
        off = apply_basis_points(left_fen, terms.discount_bp or 0)
        if terms.cap_fen is not None:
            off = min(off, terms.cap_fen)
    else:
        off = terms.value_fen or 0
    return max(0, min(off, left_fen))


def discounts(amount_fen: int, coupons: Sequence[Terms]) -> list[int]:
    """The discount of each coupon (in the given order) on an order of ``amount_fen``."""
    if amount_fen < 0:
        raise NotApplicable("negative_amount", "the order amount cannot be negative")
    if len(coupons) > 1:
        for index, terms in enumerate(coupons):
            if terms.stacking is Stacking.EXCLUSIVE:
                raise NotApplicable(
                    "not_combinable", "an exclusive coupon cannot be combined with others", index
                )
    for index, terms in enumerate(coupons):
        if amount_fen < terms.minimum_spend:
            raise NotApplicable(
                "below_threshold",
                f"the order amount {amount_fen} fen is below the coupon's minimum spend of "
                f"{terms.minimum_spend} fen",
                index,
            )
    result = [0] * len(coupons)
    left = amount_fen
    for index in sorted(range(len(coupons)), key=lambda i: (APPLY_ORDER[coupons[i].kind], i)):
        off = discount_of(coupons[index], left)
        result[index] = off
        left -= off
    return result
