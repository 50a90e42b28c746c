"""Discount arithmetic: each kind, thresholds at the boundary, rounding at half a fen, caps, the
order amount as ceiling, stacking. The one rounding rule is ``siyu.kit.money.apply_basis_points``."""

from __future__ import annotations

import pytest

from siyu.coupons.models import CouponKind, Stacking
from siyu.coupons.rules import NotApplicable, Terms, discounts

CASH_10 = Terms(CouponKind.CASH, value_fen=1000, stacking=Stacking.COMBINABLE)
FULL_30_OFF_10 = Terms(CouponKind.THRESHOLD, value_fen=1000, threshold_fen=3000, stacking=Stacking.COMBINABLE)
TWENTY_PERCENT = Terms(CouponKind.DISCOUNT, discount_bp=2000, stacking=Stacking.COMBINABLE)
COFFEE = Terms(CouponKind.EXCHANGE, value_fen=1500, stacking=Stacking.COMBINABLE)


class TestEachKind:
    @pytest.mark.parametrize(
        ("terms", "amount", "expected"),
        [
            (CASH_10, 5000, 1000),
            (CASH_10, 600, 600),  # never more than the order
            (CASH_10, 0, 0),
            (FULL_30_OFF_10, 3000, 1000),  # exactly the threshold
            (FULL_30_OFF_10, 9999, 1000),
            (TWENTY_PERCENT, 10000, 2000),
            (TWENTY_PERCENT, 1, 0),  # 0.2 fen → 0
            (TWENTY_PERCENT, 3, 1),  # 0.6 fen → 1
            (Terms(CouponKind.DISCOUNT, discount_bp=5000), 1, 1),  # 0.5 fen → 1 (half up)
            (Terms(CouponKind.DISCOUNT, discount_bp=5000), 3, 2),  # 1.5 fen → 2
            (Terms(CouponKind.DISCOUNT, discount_bp=2500), 10, 3),  # 2.5 fen → 3
            (Terms(CouponKind.DISCOUNT, discount_bp=2500), 6, 2),  # 1.5 fen → 2
            (Terms(CouponKind.DISCOUNT, discount_bp=3333), 3, 1),  # 0.9999 → 1
            (Terms(CouponKind.DISCOUNT, discount_bp=9999), 100, 100),  # 99.99 → 100, capped at amount
            (Terms(CouponKind.DISCOUNT, discount_bp=2000, cap_fen=500), 10000, 500),  # cap
            (Terms(CouponKind.DISCOUNT, discount_bp=2000, cap_fen=500), 2000, 400),  # under the cap
            (COFFEE, 5000, 1500),
            (COFFEE, 1000, 1000),
            (Terms(CouponKind.EXCHANGE), 5000, 0),  # no accounting value
        ],
    )
    def test_discount(self, terms: Terms, amount: int, expected: int) -> None:
        # when
        (off,) = discounts(amount, [terms])
        # then
        assert off == expected

    @pytest.mark.parametrize(
        "terms",
        [
            FULL_30_OFF_10,
            Terms(CouponKind.CASH, value_fen=500, min_spend_fen=3000),
            Terms(CouponKind.DISCOUNT, discount_bp=1000, min_spend_fen=3000),
        ],
    )
    def test_one_fen_below_the_minimum_spend_is_refused(self, terms: Terms) -> None:
        # given / when
        assert discounts(3000, [terms]) != []
        with pytest.raises(NotApplicable) as refused:
            discounts(2999, [terms])
        # then
        assert refused.value.reason == "below_threshold"

    def test_a_negative_amount_is_refused(self) -> None:
        with pytest.raises(NotApplicable):
            discounts(-1, [CASH_10])


class TestStacking:
    def test_combinable_coupons_apply_fixed_values_first_then_percentages_on_what_is_left(self) -> None:
        # given: 20 % off listed first, then 满30减10 and 10 off
        # when
        offs = discounts(5000, [TWENTY_PERCENT, FULL_30_OFF_10, CASH_10])
        # then: 5000 − 1000 − 1000 = 3000, 20 % of that = 600
        assert offs == [600, 1000, 1000]

    def test_the_total_never_exceeds_the_order_amount(self) -> None:
        # when
        offs = discounts(3000, [FULL_30_OFF_10, CASH_10, COFFEE, TWENTY_PERCENT])
        # then
        assert sum(offs) == 3000
        assert offs == [1000, 500, 1500, 0]

    def test_thresholds_look_at_the_order_amount_before_discounts(self) -> None:
        # 3000 reaches the 满30 threshold even though the cash coupon takes 1000 first
        assert discounts(3000, [CASH_10, FULL_30_OFF_10]) == [1000, 1000]

    def test_an_exclusive_coupon_cannot_share_an_order(self) -> None:
        # given
        exclusive = Terms(CouponKind.CASH, value_fen=1000, stacking=Stacking.EXCLUSIVE)
        # when / then
        assert discounts(5000, [exclusive]) == [1000]
        with pytest.raises(NotApplicable) as refused:
            discounts(5000, [CASH_10, exclusive])
        assert refused.value.reason == "not_combinable"
        assert refused.value.index == 1
