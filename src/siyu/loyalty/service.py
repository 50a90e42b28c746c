"""Order and action events drive coupons, tier progress and points, in the events' transaction.

One :func:`siyu.events.service.on_ingest` listener turns a batch's accepted ``order_paid`` and
``order_refunded`` events into :class:`~siyu.kit.orders.OrderFact` values and every other event
into a points :class:`~siyu.points.facade.ActionFact`, then calls each module's facade once for
the whole batch, in this order:

1. coupons — redeem the codes a paid order carries (idempotent by order id: a POS that already
   redeemed them through ``POST /redemptions`` is confirmed, not charged twice); reverse the
   coupons of refunded orders;
2. the points multiplier of each member's tier, read *before* this batch's orders count — an
   order that lifts a member to a higher tier earns at the tier the member held when paying;
3. tiers — paid and refunded orders count towards growth value or rolling 365-day spend;
   upgrades happen at once (downgrades only at a period end, by the job);
4. points — earned for paid orders (× the tier multiplier), reversed for refunds, earned for
   actions (check-in, review, …) by the merchant's action rules.

The modules never import each other for this; each only knows ``OrderFact``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session

from siyu.coupons import facade as coupons
from siyu.events.service import AcceptedEvent, on_ingest
from siyu.kit.orders import OrderFact, OrderFactKind
from siyu.points import facade as points
from siyu.tiers import facade as tiers

ORDER_TYPES = {"order_paid": OrderFactKind.PAID, "order_refunded": OrderFactKind.REFUNDED}


def order_fact(event: AcceptedEvent) -> OrderFact | None:
    """The order an accepted event reports, or ``None`` for any other event."""
    kind = ORDER_TYPES.get(event.type)
    if kind is None:
        return None
    properties = event.properties
    codes = properties.get("coupon_codes") or () if kind is OrderFactKind.PAID else ()
    return OrderFact(
        kind=kind,
        member_id=event.member_id,
        order_id=str(properties["order_id"]),
        event_id=event.event_id,
        amount_fen=int(event.amount_fen or 0),
        occurred_at=event.occurred_at,
        store_id=event.store_id,
        channel=event.channel,
        coupon_codes=tuple(str(code) for code in codes),
    )


def coupon_basis(fact: OrderFact, event: AcceptedEvent) -> OrderFact:
    """The order as coupons judge it: ``original_amount_fen`` (before discounts) when the event
    carries it, else the paid amount — a 满减 coupon's threshold is about the price, not what was
    left to pay after the coupon."""
    original = event.properties.get("original_amount_fen")
    if isinstance(original, int) and not isinstance(original, bool) and original >= fact.amount_fen:
        return replace(fact, amount_fen=original)
    return fact


@on_ingest
def drive_loyalty(
    session: Session, merchant_id: str, accepted: Sequence[AcceptedEvent], now: datetime
) -> None:
    by_event = {event.event_id: event for event in accepted}
    paid: list[OrderFact] = []
    refunds: list[OrderFact] = []
    actions: list[points.ActionFact] = []
    for event in accepted:
        fact = order_fact(event)
        if fact is None:
            actions.append(points.ActionFact(event.member_id, event.event_id, event.type, event.occurred_at))
        elif fact.kind is OrderFactKind.PAID:
            paid.append(fact)
        else:
            refunds.append(fact)
    with_codes = [coupon_basis(fact, by_event[fact.event_id]) for fact in paid if fact.coupon_codes]
    if with_codes:
        coupons.redeem_for_orders(session, merchant_id, with_codes, now=now)
    if refunds:
        coupons.reverse_for_refunds(session, merchant_id, refunds, now=now)
    actions = points.rewarded_actions(session, merchant_id, actions)
    earning = {fact.member_id for fact in paid} | {action.member_id for action in actions}
    multipliers = tiers.multipliers_of(session, merchant_id, earning, now=now) if earning else {}
    if paid or refunds:
        tiers.record_orders(session, merchant_id, paid, refunds, now=now)
    if paid:
        points.earn_for_orders(session, merchant_id, paid, multipliers_bp=multipliers, now=now)
    if refunds:
        points.reverse_for_refunds(session, merchant_id, refunds, now=now)
    if actions:
        points.earn_for_actions(session, merchant_id, actions, multipliers_bp=multipliers, now=now)
