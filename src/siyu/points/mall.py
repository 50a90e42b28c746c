"""The points mall (积分商城): items bought with points, each exchange one atomic transaction.

An exchange takes, in this order and in the caller's one transaction: one unit of stock (a
conditional ``UPDATE … WHERE stock > 0``), one more of the member's count for the item (an
``INSERT … ON CONFLICT DO UPDATE … WHERE n < limit RETURNING``), the points (a spend, never
below zero), and then issues the coupon (``siyu.coupons.facade.issue_coupon`` with
``source="points_mall"`` and the exchange id as ``source_ref``) or a goods voucher. Any refusal
raises, and the caller's unit of work rolls everything back: nothing changed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.coupons import facade as coupons
from siyu.kit.ids import IdKind, new_id
from siyu.kit.problems import Conflict, NotFound, invalid_field
from siyu.points import repository as repo
from siyu.points import service
from siyu.points.models import (
    GoodsVoucher,
    MallExchange,
    MallItem,
    MallItemKind,
    MallItemStatus,
    VoucherStatus,
)

VOUCHER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
VOUCHER_LENGTH = 12


class ExchangeRefused(Conflict):
    """An exchange that did not happen; ``reason`` says why (409, nothing changed)."""

    slug, title = "exchange-refused", "Exchange refused"

    def __init__(self, reason: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, extra={"reason": reason, **extra})
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Exchanged:
    exchange: MallExchange
    voucher: GoodsVoucher | None
    replayed: bool


def _check_window(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from and valid_until and valid_until <= valid_from:
        raise invalid_field("/valid_until", "valid_until must be after valid_from")


def create_item(session: Session, merchant_id: str, values: dict[str, Any], *, now: datetime) -> MallItem:
    kind = MallItemKind(values["kind"])
    template_id = values.get("coupon_template_id")
    if kind is MallItemKind.COUPON:
        if not template_id:
            raise invalid_field("/coupon_template_id", "a coupon item needs the coupon template it gives")
        if coupons.get_template(session, merchant_id, template_id) is None:
            raise invalid_field("/coupon_template_id", f"no coupon template {template_id}")
    elif template_id:
        raise invalid_field("/coupon_template_id", "a goods item gives a voucher, not a coupon")
    _check_window(values.get("valid_from"), values.get("valid_until"))
    item = MallItem(
        merchant_id=merchant_id,
        id=new_id(IdKind.MALL_ITEM),
        name=values["name"],
        kind=kind.value,
        cost_points=values["cost_points"],
        coupon_template_id=template_id,
        stock=values["stock"],
        per_member_limit=values.get("per_member_limit"),
        status=MallItemStatus(values.get("status") or MallItemStatus.ACTIVE).value,
        valid_from=values.get("valid_from"),
        valid_until=values.get("valid_until"),
        created_at=now,
        updated_at=now,
    )
    session.add(item)
    session.flush()
    return item


def update_item(
    session: Session, merchant_id: str, item_id: str, changes: dict[str, Any], *, now: datetime
) -> MallItem:
    """Change an item; stock changes by ``add_stock`` (relative, safe while exchanges run)."""
    item = repo.get_item(session, merchant_id, item_id)
    if item is None:
        raise NotFound(f"no mall item {item_id}")
    for name in ("name", "cost_points", "status"):
        if name in changes and changes[name] is None:
            raise invalid_field(f"/{name}", f"{name} cannot be null")
    add = changes.pop("add_stock", None)
    if add:
        if not repo.add_stock(session, merchant_id, item_id, add, now):
            raise Conflict(f"stock cannot go below zero (it is {item.stock})")
        session.refresh(item)
    for name in ("name", "cost_points", "per_member_limit", "status", "valid_from", "valid_until"):
        if name in changes:
            value = changes[name]
            setattr(item, name, MallItemStatus(value).value if name == "status" else value)
    _check_window(item.valid_from, item.valid_until)
    item.updated_at = now
    session.flush()
    return item


def exchange(
    session: Session,
    merchant_id: str,
    item_id: str,
    member_id: str,
    *,
    key: str,
    source: str,
    now: datetime,
) -> Exchanged:
    """Exchange points for an item (one transaction; a refusal raises and changes nothing)."""
    key = key.strip()
    if not key or len(key) > 255:
        raise invalid_field("/key", "give a key of 1–255 characters")
    found = repo.exchange_by_key(session, merchant_id, key)
    if found is not None:
        if (found.item_id, found.member_id) != (item_id, member_id):
            problem = Conflict("this key was used for another exchange; use a new key")
            problem.slug = "idempotency-key-reused"
            raise problem
        given = repo.voucher_by_code(session, merchant_id, found.voucher_code) if found.voucher_code else None
        return Exchanged(found, given, replayed=True)
    item = repo.get_item(session, merchant_id, item_id)
    if item is None:
        raise NotFound(f"no mall item {item_id}")
    if item.status != MallItemStatus.ACTIVE:
        raise ExchangeRefused("not_active", f"{item.name} is {item.status}")
    if (item.valid_from and now < item.valid_from) or (item.valid_until and now >= item.valid_until):
        raise ExchangeRefused("not_valid_now", f"{item.name} cannot be exchanged at this time")
    cost = item.cost_points
    if not repo.take_stock(session, merchant_id, item_id, now):
        raise ExchangeRefused("out_of_stock", f"{item.name} is out of stock")
    if not repo.count_exchange(session, merchant_id, item_id, member_id, item.per_member_limit):
        raise ExchangeRefused(
            "member_limit", f"the member has exchanged {item.name} {item.per_member_limit} time(s), the limit"
        )
    exchange_id = new_id(IdKind.MALL_EXCHANGE)
    try:
        posted = service.spend(
            session,
            merchant_id,
            member_id,
            points=cost,
            reason=f"mall: {item.name}",
            key=key,
            source=f"mall:{exchange_id}",
            now=now,
            ledger_key=f"mall:{exchange_id}",
        )
    except service.InsufficientPoints as exc:
        raise ExchangeRefused("insufficient_points", f"too few points: {exc.detail}", **exc.extra) from None
    row = MallExchange(
        merchant_id=merchant_id,
        id=exchange_id,
        key=key,
        item_id=item_id,
        member_id=member_id,
        points=cost,
        entry_id=posted.entry.id,
        at=now,
    )
    voucher: GoodsVoucher | None = None
    if item.kind == MallItemKind.COUPON:
        assert item.coupon_template_id is not None
        issued = coupons.issue_coupon(
            session,
            merchant_id,
            item.coupon_template_id,
            member_id,
            source="points_mall",
            source_ref=exchange_id,
            now=now,
        )
        row.coupon_id, row.coupon_code = issued.id, issued.code
    else:
        voucher = GoodsVoucher(
            merchant_id=merchant_id,
            id=new_id(IdKind.VOUCHER),
            code="".join(secrets.choice(VOUCHER_ALPHABET) for _ in range(VOUCHER_LENGTH)),
            member_id=member_id,
            item_id=item_id,
            exchange_id=exchange_id,
            item_name=item.name,
            status=VoucherStatus.ISSUED.value,
            issued_at=now,
        )
        session.add(voucher)
        row.voucher_code = voucher.code
    session.add(row)
    session.flush()
    return Exchanged(row, voucher, replayed=False)


def use_voucher(session: Session, merchant_id: str, code: str, *, by: str, now: datetime) -> GoodsVoucher:
    """Mark a goods voucher used (核销); a second use is a 409."""
    code = code.strip().upper()
    voucher = repo.voucher_by_code(session, merchant_id, code)
    if voucher is None:
        raise NotFound(f"no voucher {code}")
    if not repo.use_voucher(session, merchant_id, code, now, by):
        raise Conflict(f"voucher {code} was already used at {voucher.used_at}")
    session.refresh(voucher)
    return voucher
