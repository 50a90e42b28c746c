"""What other modules (loyalty glue, points mall, tiers, campaigns, CLI, console) may use of coupons.

Every function takes the caller's session (the caller owns the unit of work) and returns frozen
views. Listeners for member merges, exports and erasures are registered in ``service.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.coupons import redemption, service
from siyu.coupons.models import TemplateStatus
from siyu.coupons.schemas import TemplateIn, TemplatePatch
from siyu.coupons.views import (
    CodesGenerated,
    CouponNotUsable,
    CouponRefused,
    CouponView,
    IssuedCoupon,
    PromoCodeView,
    RedemptionLine,
    RedemptionView,
    TemplateView,
)
from siyu.kit.orders import OrderFact
from siyu.kit.pagination import Page, PageRequest
from siyu.kit.problems import NotFound

__all__ = [
    "CodesGenerated",
    "CouponNotUsable",
    "CouponRefused",
    "CouponView",
    "IssuedCoupon",
    "PromoCodeView",
    "RedemptionLine",
    "RedemptionView",
    "TemplateIn",
    "TemplatePatch",
    "TemplateView",
    "coupons_of",
    "create_template",
    "expire_due",
    "generate_codes",
    "get_template",
    "issue_coupon",
    "issue_coupons",
    "list_codes",
    "list_templates",
    "redeem_for_orders",
    "reverse_for_refunds",
]


def issue_coupon(
    session: Session,
    merchant_id: str,
    template_id: str,
    member_id: str,
    *,
    source: str,
    source_ref: str | None,
    now: datetime,
) -> IssuedCoupon:
    """Issue one coupon of a template to a member (status, stock, budget and limits enforced).

    With ``source_ref``, idempotent: the same (template, member, source, source_ref) again
    returns the first coupon with ``replayed=True``. Refusals raise :class:`CouponRefused`
    (``.reason``) having changed nothing; an unknown template or member raises ``NotFound``.
    """
    return service.issue(
        session, merchant_id, template_id, member_id, source=source, source_ref=source_ref, now=now
    )


def issue_coupons(
    session: Session,
    merchant_id: str,
    template_id: str,
    requests: Sequence[tuple[str, str]],
    *,
    source: str,
    now: datetime,
) -> list[IssuedCoupon | CouponRefused | NotFound]:
    """:func:`issue_coupon` for many ``(member_id, source_ref)`` at once (a campaign's fan-out):
    the same checks and idempotency, in a few multi-row statements; each request's coupon or
    refusal (returned, not raised), in order — when stock runs out the earliest requests win."""
    return service.issue_many(session, merchant_id, template_id, requests, source=source, now=now)


def update_template(
    session: Session, merchant_id: str, template_id: str, patch: TemplatePatch, *, now: datetime
) -> TemplateView:
    """Change what may change at any status: name, budget (not below what was granted), end of
    validity, stores, channels, stacking; a 409 for an ended template."""
    return service.update_template(session, merchant_id, template_id, patch, now=now)


def add_stock(
    session: Session, merchant_id: str, template_id: str, count: int, *, now: datetime
) -> TemplateView:
    """``count`` more coupons in stock (total and buckets in one transaction); a 409 once ended."""
    return service.add_stock(session, merchant_id, template_id, count, now=now)


def redeem_for_orders(
    session: Session, merchant_id: str, orders: Sequence[OrderFact], *, now: datetime
) -> None:
    """Redeem the codes of paid orders (ingested ``order_paid`` events); a code that cannot be
    redeemed is recorded as a failed attempt, never raised. Idempotent by (order id, coupon)."""
    redemption.redeem_for_orders(session, merchant_id, list(orders), now=now)


def reverse_for_refunds(
    session: Session, merchant_id: str, refunds: Sequence[OrderFact], *, now: datetime
) -> None:
    """Reverse the redemption of each refunded order (coupons back if still valid). Idempotent."""
    redemption.reverse_for_refunds(session, merchant_id, list(refunds), now=now)


def coupons_of(session: Session, merchant_id: str, member_id: str, *, limit: int = 20) -> list[CouponView]:
    """The member's latest coupons, newest first (member 360° view)."""
    return service.latest_coupons(session, merchant_id, member_id, limit)


def expire_due(session: Session, *, now: datetime, limit: int = 5000) -> int:
    """Expire up to ``limit`` available coupons whose validity ended, across merchants."""
    return service.expire_due(session, now=now, limit=limit)


def create_template(session: Session, merchant_id: str, spec: TemplateIn, *, now: datetime) -> TemplateView:
    return service.create_template(session, merchant_id, spec, now=now)


def get_template(session: Session, merchant_id: str, template_id: str) -> TemplateView | None:
    return service.get_template(session, merchant_id, template_id)


def list_templates(
    session: Session, merchant_id: str, page: PageRequest, *, status: TemplateStatus | None = None
) -> Page[TemplateView]:
    return service.list_templates(session, merchant_id, page, status=status)


def generate_codes(
    session: Session, merchant_id: str, template_id: str, count: int, *, now: datetime
) -> CodesGenerated:
    return service.generate_codes(session, merchant_id, template_id, count, now=now)


def list_codes(
    session: Session, merchant_id: str, template_id: str, page: PageRequest
) -> Page[PromoCodeView]:
    return service.list_codes(session, merchant_id, template_id, page)


def change_template_status(
    session: Session, merchant_id: str, template_id: str, action: str, *, now: datetime
) -> TemplateView:
    """``activate`` (draft/paused → active), ``pause`` (active → paused) or ``end``; a 409 otherwise."""
    return service.change_status(session, merchant_id, template_id, action, now=now)
