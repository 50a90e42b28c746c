"""The stage rules written the plain way (lists and loops), to check the real ones against."""

from __future__ import annotations

from datetime import date

from siyu.lifecycle.rules import Happening, Stage, StageRules


def stage_from_scratch(events: list[Happening], day: date, rules: StageRules) -> Stage | None:
    """The stage at the end of ``day`` given every event of the member (any day)."""
    seen = [e for e in events if e.day <= day]
    if not seen:
        return None
    first = min(e.day for e in seen)
    active = [e.day for e in seen if e.type not in rules.inactive_types] + [first]
    idle = (day - max(active)).days
    if idle >= rules.lost_after_days:
        return Stage.LOST
    if idle >= rules.dormant_after_days:
        return Stage.DORMANT
    orders = [e for e in seen if e.type == "order_paid"]
    if orders:
        recent = [e for e in seen if (day - e.day).days < rules.super_window_days]
        recent_orders = sum(1 for e in recent if e.type == "order_paid")
        net = sum((e.amount_fen or 0) for e in recent if e.type == "order_paid") - sum(
            (e.amount_fen or 0) for e in recent if e.type == "order_refunded"
        )
        if recent_orders >= rules.super_orders and net >= rules.super_net_spend_fen:
            return Stage.SUPER
        return Stage.REPEAT if len(orders) >= rules.repeat_orders else Stage.FIRST_ORDER
    engaged = sum(
        1
        for e in seen
        if e.type in rules.engagement_types and (day - e.day).days < rules.high_potential_window_days
    )
    return Stage.HIGH_POTENTIAL if engaged >= rules.high_potential_engagements else Stage.STRANGER
