"""Redemption (核销) rules: coupons used on an order, reversal on refund, order events.

Idempotent by order id; each coupon goes ``available`` → ``redeemed`` in one conditional
UPDATE; budgets grow in one conditional UPDATE. No HTTP, never commits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.coupons import codes as codes_
from siyu.coupons import repository as repo
from siyu.coupons import rules
from siyu.coupons.models import (
    Coupon,
    CouponKind,
    CouponRedemption,
    CouponStatus,
    CouponTemplate,
    RedemptionStatus,
    Stacking,
)
from siyu.coupons.schemas import RedemptionIn
from siyu.coupons.service import MAX_CLOCK_SKEW, UnknownCode, invalid
from siyu.coupons.views import CouponNotUsable, RedemptionLine, RedemptionView
from siyu.kit.clock import as_utc
from siyu.kit.ids import IdKind, new_id
from siyu.kit.orders import OrderFact, OrderFactKind
from siyu.kit.problems import Conflict, NotFound, Problem
from siyu.members import facade as members

# --- redemption -------------------------------------------------------------------------------


def normalised_codes(texts: list[str]) -> list[str]:
    """Each code normalised and checked (422 naming the bad one, before any query); no repeats."""
    found: list[str] = []
    for index, text in enumerate(texts):
        code = codes_.normalise(text)
        if not codes_.is_valid(code):
            raise invalid(f"/codes/{index}", f"{text!r} is not a valid coupon code (a typo?)", "invalid_code")
        if code in found:
            raise invalid(f"/codes/{index}", f"the code {text!r} is given twice", "duplicate_code")
        found.append(code)
    return found


@dataclass(frozen=True, slots=True)
class _Plan:
    member_id: str
    at: datetime
    coupons: list[Coupon]
    templates: dict[str, CouponTemplate]
    discounts: list[int]


def _terms(t: CouponTemplate) -> rules.Terms:
    return rules.Terms(
        kind=CouponKind(t.kind),
        value_fen=t.value_fen,
        discount_bp=t.discount_bp,
        cap_fen=t.cap_fen,
        threshold_fen=t.threshold_fen,
        min_spend_fen=t.min_spend_fen,
        stacking=Stacking(t.stacking),
    )


def _check_usable(c: Coupon, t: CouponTemplate, member_id: str, body: RedemptionIn, at: datetime) -> None:
    shown = codes_.display(c.code)

    def refuse(reason: str, detail: str) -> CouponNotUsable:
        return CouponNotUsable(reason, f"coupon {shown}: {detail}", c.code)

    if c.member_id != member_id:
        raise refuse("not_owner", "belongs to another member")
    if c.status != CouponStatus.AVAILABLE:
        reason = "already_redeemed" if c.status == CouponStatus.REDEEMED else c.status
        raise refuse(reason, f"is {c.status}")
    if at < c.valid_from:
        raise refuse("not_yet_valid", f"is valid from {c.valid_from.isoformat()}")
    if at >= c.valid_until:
        raise refuse("expired", f"expired at {c.valid_until.isoformat()}")
    if t.store_ids and body.store_id not in t.store_ids:
        raise refuse("wrong_store", "cannot be used in this store")
    if t.channels and body.channel not in t.channels:
        raise refuse("wrong_channel", "cannot be used on this channel")


def _plan(
    session: Session, merchant_id: str, body: RedemptionIn, codes: list[str], *, now: datetime
) -> _Plan:
    at = as_utc(body.at) if body.at else now
    member = members.find_member(session, merchant_id, body.member_id)
    if member is None:
        raise NotFound(f"no member {body.member_id}")
    found = repo.coupons_by_codes(session, merchant_id, codes)
    templates = repo.templates_by_ids(session, merchant_id, [c.template_id for c in found.values()])
    coupons: list[Coupon] = []
    for code in codes:
        coupon = found.get(code)
        if coupon is None:
            raise UnknownCode(code)
        _check_usable(coupon, templates[coupon.template_id], member.id, body, at)
        coupons.append(coupon)
    try:
        offs = rules.discounts(body.amount_fen, [_terms(templates[c.template_id]) for c in coupons])
    except rules.NotApplicable as exc:
        culprit = codes[exc.index] if exc.index is not None else None
        raise CouponNotUsable(exc.reason, exc.detail, culprit) from None
    return _Plan(member.id, at, coupons, templates, offs)


def _lines(plan: _Plan) -> list[dict[str, Any]]:
    return [
        {
            "coupon_id": c.id,
            "code": c.code,
            "template_id": c.template_id,
            "kind": plan.templates[c.template_id].kind,
            "discount_fen": off,
            "item_name": plan.templates[c.template_id].item_name,
        }
        for c, off in zip(plan.coupons, plan.discounts, strict=True)
    ]


def _line(data: dict[str, Any]) -> RedemptionLine:
    return RedemptionLine(
        coupon_id=data["coupon_id"],
        code=codes_.display(data["code"]),
        template_id=data["template_id"],
        kind=data["kind"],
        discount_fen=int(data["discount_fen"]),
        item_name=data.get("item_name"),
    )


def redemption_view(r: CouponRedemption, *, replayed: bool = False) -> RedemptionView:
    return RedemptionView(
        id=r.id,
        order_id=r.order_id,
        member_id=r.member_id,
        status=r.status,
        amount_fen=r.amount_fen,
        discount_fen=r.discount_fen,
        payable_fen=r.amount_fen - r.discount_fen,
        lines=[_line(line) for line in r.lines],
        store_id=r.store_id,
        channel=r.channel,
        at=r.at,
        reversed_at=r.reversed_at,
        replayed=replayed,
    )


def _check_time(body: RedemptionIn, now: datetime) -> None:
    if body.at is not None and as_utc(body.at) > now + MAX_CLOCK_SKEW:
        raise invalid("/at", "the order time is in the future", "future_time")


def preview(session: Session, merchant_id: str, body: RedemptionIn, *, now: datetime) -> RedemptionView:
    """What :func:`redeem` would do, without doing it."""
    codes = normalised_codes(body.codes)
    _check_time(body, now)
    plan = _plan(session, merchant_id, body, codes, now=now)
    total = sum(plan.discounts)
    return RedemptionView(
        id=None,
        order_id=body.order_id,
        member_id=plan.member_id,
        status="preview",
        amount_fen=body.amount_fen,
        discount_fen=total,
        payable_fen=body.amount_fen - total,
        lines=[_line(line) for line in _lines(plan)],
        store_id=body.store_id,
        channel=body.channel,
        at=plan.at,
    )


def _replay(existing: CouponRedemption, codes: list[str]) -> RedemptionView:
    if existing.codes_key != ",".join(sorted(codes)):
        raise CouponNotUsable(
            "order_conflict", f"order {existing.order_id} was already redeemed with other coupons"
        )
    return redemption_view(existing, replayed=True)


def redeem(
    session: Session,
    merchant_id: str,
    body: RedemptionIn,
    *,
    now: datetime,
    source: str,
    check_time: bool = True,
) -> RedemptionView:
    """Redeem (核销) the coupons of one order; idempotent by order id.

    Each coupon goes ``available`` → ``redeemed`` in one conditional UPDATE and each template's
    budget grows in one conditional UPDATE; if any fails, the caller's transaction must roll
    back (the API does; :func:`redeem_for_orders` uses a savepoint per order).
    """
    codes = normalised_codes(body.codes)
    if check_time:
        _check_time(body, now)
    existing = repo.redemption_by_order(session, merchant_id, body.order_id)
    if existing is not None:
        return _replay(existing, codes)
    plan = _plan(session, merchant_id, body, codes, now=now)
    lines = _lines(plan)
    row: dict[str, Any] = {
        "merchant_id": merchant_id,
        "id": new_id(IdKind.REDEMPTION),
        "order_id": body.order_id,
        "member_id": plan.member_id,
        "codes_key": ",".join(sorted(codes)),
        "amount_fen": body.amount_fen,
        "discount_fen": sum(plan.discounts),
        "store_id": body.store_id,
        "channel": body.channel,
        "at": plan.at,
        "status": RedemptionStatus.REDEEMED.value,
        "lines": lines,
        "source": source[:200],
        "created_at": now,
        "reversed_at": None,
    }
    if not repo.insert_redemption(session, row):
        concurrent = repo.redemption_by_order(session, merchant_id, body.order_id)
        if concurrent is None:  # pragma: no cover - a unique key other than the order's
            raise Conflict("a concurrent redemption changed the same data; retry")
        return _replay(concurrent, codes)
    for coupon in plan.coupons:
        if not repo.mark_redeemed(session, merchant_id, coupon.id, row["id"], plan.at, now):
            raise CouponNotUsable(
                "already_redeemed",
                f"coupon {codes_.display(coupon.code)} was redeemed meanwhile",
                coupon.code,
            )
    spent: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        spent[line["template_id"]][0] += line["discount_fen"]
        spent[line["template_id"]][1] += 1
    for template_id, (fen, count) in sorted(spent.items()):
        if not repo.spend_budget(session, merchant_id, template_id, fen, count, now):
            raise CouponNotUsable(
                "budget_exhausted", f"the budget of coupon template {template_id} is used up"
            )
    created = repo.redemption_by_order(session, merchant_id, body.order_id)
    assert created is not None
    return redemption_view(created)


def get_redemption(session: Session, merchant_id: str, order_id: str) -> RedemptionView | None:
    found = repo.redemption_by_order(session, merchant_id, order_id)
    return redemption_view(found) if found else None


def reverse(session: Session, merchant_id: str, order_id: str, *, now: datetime) -> RedemptionView:
    """Undo an order's redemption (refund): each coupon back to ``available`` if still valid,
    else ``expired``; the budget and redeemed count go back. Idempotent."""
    found = repo.redemption_by_order(session, merchant_id, order_id)
    if found is None:
        raise NotFound(f"no redemption for order {order_id}")
    if found.status == RedemptionStatus.REVERSED or not repo.mark_reversed(
        session, merchant_id, found.id, now
    ):
        again = repo.redemption_by_order(session, merchant_id, order_id)
        assert again is not None
        return redemption_view(again, replayed=True)
    spent: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in found.lines:
        repo.restore_coupon(session, merchant_id, line["coupon_id"], found.id, now)
        spent[line["template_id"]][0] += int(line["discount_fen"])
        spent[line["template_id"]][1] += 1
    for template_id, (fen, count) in sorted(spent.items()):
        repo.refund_budget(session, merchant_id, template_id, fen, count, now)
    done = repo.redemption_by_order(session, merchant_id, order_id)
    assert done is not None
    return redemption_view(done)


def _failure(merchant_id: str, fact: OrderFact, code: str, reason: str, now: datetime) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "order_id": fact.order_id[:128],
        "code": code[:32] or "?",
        "member_id": fact.member_id,
        "event_id": fact.event_id[:128],
        "reason": reason[:64],
        "at": fact.occurred_at,
        "recorded_at": now,
    }


def _redeem_fact(session: Session, merchant_id: str, fact: OrderFact, now: datetime) -> list[dict[str, Any]]:
    """Redeem a paid order's codes; the codes that cannot be are answered as failure rows.

    A code that fails on its own (typo, unknown, not the member's, used, expired, wrong store…)
    is dropped and the rest tried again; a failure of the whole set (stacking, budget, the order
    already redeemed with other codes) fails every remaining code.
    """
    failures: list[dict[str, Any]] = []
    pending: list[str] = []
    for text in dict.fromkeys(fact.coupon_codes):
        code = codes_.normalise(text)
        if codes_.is_valid(code) and code not in pending:
            pending.append(code)
        elif not codes_.is_valid(code):
            failures.append(_failure(merchant_id, fact, code, "invalid_code", now))
    existing = repo.redemption_by_order(session, merchant_id, fact.order_id)
    if existing is not None:  # delivered again (or redeemed at the till first): confirm, never redo
        confirmed = set(existing.codes_key.split(","))
        failures.extend(
            _failure(merchant_id, fact, c, "order_conflict", now) for c in pending if c not in confirmed
        )
        return failures
    while pending:
        body = RedemptionIn.model_construct(
            member_id=fact.member_id,
            order_id=fact.order_id,
            codes=list(pending),
            amount_fen=max(0, fact.amount_fen),
            store_id=fact.store_id,
            channel=fact.channel,
            at=fact.occurred_at,
        )
        try:
            with session.begin_nested():
                redeem(session, merchant_id, body, now=now, source=f"event:{fact.event_id}", check_time=False)
            break
        except Problem as exc:
            reason = str(getattr(exc, "reason", None) or exc.slug)
            culprit = getattr(exc, "code", None)
            if culprit in pending and len(pending) > 1:
                failures.append(_failure(merchant_id, fact, culprit, reason, now))
                pending.remove(culprit)
                continue
            failures.extend(_failure(merchant_id, fact, code, reason, now) for code in pending)
            break
    return failures


def redeem_for_orders(session: Session, merchant_id: str, orders: list[OrderFact], *, now: datetime) -> None:
    failures: list[dict[str, Any]] = []
    for fact in orders:
        if fact.kind is OrderFactKind.PAID and fact.coupon_codes:
            failures.extend(_redeem_fact(session, merchant_id, fact, now))
    if failures:
        repo.record_failures(session, failures)


def reverse_for_refunds(
    session: Session, merchant_id: str, refunds: list[OrderFact], *, now: datetime
) -> None:
    """Any refund of a redeemed order reverses its redemption (once; later refunds change nothing)."""
    for fact in refunds:
        if fact.kind is not OrderFactKind.REFUNDED:
            continue
        found = repo.redemption_by_order(session, merchant_id, fact.order_id)
        if found is not None and found.status == RedemptionStatus.REDEEMED:
            reverse(session, merchant_id, fact.order_id, now=now)
