"""Points API: balances, ledger, adjustments, spends, settings, rules, liability, the mall (thin handlers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, make_page, page_params
from siyu.kit.problems import NotFound
from siyu.members import facade as members
from siyu.points import facade, mall, service
from siyu.points import repository as repo
from siyu.points.facade import LiabilityView, PointsEntryView
from siyu.points.models import GoodsVoucher, MallItem, PointsRule
from siyu.points.rules import Settings
from siyu.points.schemas import (
    AdjustmentIn,
    BalanceOut,
    ExchangeIn,
    ExchangeOut,
    ItemIn,
    ItemOut,
    ItemPatch,
    PostedOut,
    RuleIn,
    RuleOut,
    RulePatch,
    SettingsIO,
    SpendIn,
    VoucherOut,
)
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["points"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.POINTS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.POINTS_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]
CREATED = status.HTTP_201_CREATED


def _member_id(ctx: MerchantCtx, member_id: str, *, writing: bool = False) -> str:
    return members.require_member(ctx.session, ctx.merchant_id, member_id, writing=writing)


def _source(ctx: MerchantCtx) -> str:
    return f"api:{ctx.principal.key_id}"


def _posted(ctx: MerchantCtx, posted: service.Posted, response: Response) -> PostedOut:
    if posted.replayed:
        response.status_code = status.HTTP_200_OK
    balance = repo.balance_of(ctx.session, ctx.merchant_id, posted.entry.member_id)
    return PostedOut(entry=facade.entry_view(posted.entry), balance=balance, replayed=posted.replayed)


def _rule(rule: PointsRule) -> RuleOut:
    return RuleOut.model_validate(rule, from_attributes=True)


def _item(item: MallItem) -> ItemOut:
    return ItemOut.model_validate(item, from_attributes=True)


def _voucher(voucher: GoodsVoucher) -> VoucherOut:
    return VoucherOut.model_validate(voucher, from_attributes=True)


# ---------------------------------------------------------------- balances and the ledger


@router.get("/members/{member_id}/points", summary="A member's points balance and lots by expiry (积分)")
def get_points(member_id: str, ctx: Reader) -> BalanceOut:
    current = _member_id(ctx, member_id)
    view = facade.balance_of(ctx.session, ctx.merchant_id, current, now=utcnow())
    lots = facade.lots_of(ctx.session, ctx.merchant_id, current)
    return BalanceOut(member_id=current, balance=view.balance, expiring=list(view.expiring), lots=lots)


@router.get("/members/{member_id}/points/entries", summary="A member's points ledger, oldest first")
def list_entries(member_id: str, ctx: Reader, page: Paging) -> Page[PointsEntryView]:
    rows = repo.list_entries(ctx.session, ctx.merchant_id, _member_id(ctx, member_id), page)
    items, cursor = make_page(rows, page, lambda e: e.id)
    return Page[PointsEntryView](items=[facade.entry_view(e) for e in items], next_cursor=cursor)


@router.post(
    "/members/{member_id}/points/adjustments",
    status_code=CREATED,
    summary="Adjust points by hand, with a reason",
)
def adjust(member_id: str, body: AdjustmentIn, ctx: Writer, response: Response) -> PostedOut:
    posted = service.adjust(
        ctx.session,
        ctx.merchant_id,
        _member_id(ctx, member_id, writing=True),
        points=body.points,
        reason=body.reason,
        key=body.key,
        source=_source(ctx),
        now=utcnow(),
    )
    return _posted(ctx, posted, response)


@router.post(
    "/members/{member_id}/points/spends", status_code=CREATED, summary="Spend points (never below zero)"
)
def spend(member_id: str, body: SpendIn, ctx: Writer, response: Response) -> PostedOut:
    posted = service.spend(
        ctx.session,
        ctx.merchant_id,
        _member_id(ctx, member_id, writing=True),
        points=body.points,
        reason=body.reason,
        key=body.key,
        source=_source(ctx),
        now=utcnow(),
    )
    return _posted(ctx, posted, response)


# ---------------------------------------------------------------- settings, rules, liability


def _settings_io(settings: Settings) -> SettingsIO:
    return SettingsIO(
        points_per_yuan=settings.points_per_yuan,
        expiry_policy=settings.expiry_policy,
        expiry_days=settings.expiry_days,
        allow_negative=settings.allow_negative,
    )


@router.get("/points/settings", summary="The merchant's points settings (earn rate, expiry, negatives)")
def get_settings(ctx: Reader) -> SettingsIO:
    return _settings_io(service.settings_of(ctx.session, ctx.merchant_id))


@router.put("/points/settings", summary="Replace the merchant's points settings")
def put_settings(body: SettingsIO, ctx: Writer) -> SettingsIO:
    settings = Settings(
        points_per_yuan=body.points_per_yuan,
        expiry_policy=body.expiry_policy,
        expiry_days=body.expiry_days,
        allow_negative=body.allow_negative,
    )
    return _settings_io(service.save_settings(ctx.session, ctx.merchant_id, settings, now=utcnow()))


@router.get("/points/rules", summary="Action rules: points per event type")
def list_rules(ctx: Reader) -> list[RuleOut]:
    return [_rule(r) for r in repo.list_rules(ctx.session, ctx.merchant_id)]


@router.post(
    "/points/rules", status_code=CREATED, summary="Add an action rule (checkin 5, custom.review 20, …)"
)
def create_rule(body: RuleIn, ctx: Writer) -> RuleOut:
    rule = service.create_rule(ctx.session, ctx.merchant_id, **body.model_dump(), now=utcnow())
    return _rule(rule)


@router.get("/points/rules/{rule_id}", summary="One action rule")
def get_rule(rule_id: str, ctx: Reader) -> RuleOut:
    rule = repo.get_rule(ctx.session, ctx.merchant_id, rule_id)
    if rule is None:
        raise NotFound(f"no points rule {rule_id}")
    return _rule(rule)


@router.patch("/points/rules/{rule_id}", summary="Change an action rule")
def patch_rule(rule_id: str, body: RulePatch, ctx: Writer) -> RuleOut:
    changes = body.model_dump(exclude_unset=True)
    return _rule(service.update_rule(ctx.session, ctx.merchant_id, rule_id, changes, now=utcnow()))


@router.delete(
    "/points/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an action rule"
)
def delete_rule(rule_id: str, ctx: Writer) -> Response:
    service.delete_rule(ctx.session, ctx.merchant_id, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/points/liability", summary="Outstanding points by expiry month, total, shortfall (积分负债)")
def get_liability(ctx: Reader) -> LiabilityView:
    return facade.liability(ctx.session, ctx.merchant_id, now=utcnow())


# ---------------------------------------------------------------- the mall


@router.post("/mall/items", status_code=CREATED, summary="Add a points-mall item (积分商城)")
def create_item(body: ItemIn, ctx: Writer) -> ItemOut:
    return _item(mall.create_item(ctx.session, ctx.merchant_id, body.model_dump(), now=utcnow()))


@router.get("/mall/items", summary="Points-mall items")
def list_items(ctx: Reader, page: Paging) -> Page[ItemOut]:
    rows = repo.list_items(ctx.session, ctx.merchant_id, page)
    items, cursor = make_page(rows, page, lambda i: i.id)
    return Page[ItemOut](items=[_item(i) for i in items], next_cursor=cursor)


@router.get("/mall/items/{item_id}", summary="One points-mall item")
def get_item(item_id: str, ctx: Reader) -> ItemOut:
    item = repo.get_item(ctx.session, ctx.merchant_id, item_id)
    if item is None:
        raise NotFound(f"no mall item {item_id}")
    return _item(item)


@router.patch("/mall/items/{item_id}", summary="Change an item; add_stock changes the stock relatively")
def patch_item(item_id: str, body: ItemPatch, ctx: Writer) -> ItemOut:
    changes = body.model_dump(exclude_unset=True)
    return _item(mall.update_item(ctx.session, ctx.merchant_id, item_id, changes, now=utcnow()))


@router.post(
    "/mall/items/{item_id}/exchanges",
    status_code=CREATED,
    summary="Exchange points for an item (one transaction)",
)
def exchange(item_id: str, body: ExchangeIn, ctx: Writer, response: Response) -> ExchangeOut:
    member_id = _member_id(ctx, body.member_id, writing=True)
    done = mall.exchange(
        ctx.session, ctx.merchant_id, item_id, member_id, key=body.key, source=_source(ctx), now=utcnow()
    )
    if done.replayed:
        response.status_code = status.HTTP_200_OK
    x = done.exchange
    return ExchangeOut(
        id=x.id,
        item_id=x.item_id,
        member_id=x.member_id,
        points=x.points,
        entry_id=x.entry_id,
        coupon_id=x.coupon_id,
        coupon_code=x.coupon_code,
        voucher=_voucher(done.voucher) if done.voucher else None,
        balance=repo.balance_of(ctx.session, ctx.merchant_id, member_id),
        at=x.at,
        replayed=done.replayed,
    )


@router.get("/members/{member_id}/vouchers", summary="A member's goods vouchers from the mall")
def list_vouchers(member_id: str, ctx: Reader, page: Paging) -> Page[VoucherOut]:
    rows = repo.vouchers_of(ctx.session, ctx.merchant_id, _member_id(ctx, member_id), page)
    items, cursor = make_page(rows, page, lambda v: v.id)
    return Page[VoucherOut](items=[_voucher(v) for v in items], next_cursor=cursor)


@router.post("/vouchers/{code}/use", summary="Mark a goods voucher used (核销); a second use is 409")
def use_voucher(code: str, ctx: Writer) -> VoucherOut:
    return _voucher(mall.use_voucher(ctx.session, ctx.merchant_id, code, by=_source(ctx), now=utcnow()))
