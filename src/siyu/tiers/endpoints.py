"""Tiers API: settings, the ladder, members' tiers, paid and joint membership, the jobs (thin handlers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from siyu.kit.clock import utcnow
from siyu.members import facade as members
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope
from siyu.tiers import facade, membership, service
from siyu.tiers.models import TierSettings
from siyu.tiers.schemas import (
    LinkIn,
    LinkOut,
    MappingIn,
    MappingOut,
    MemberTierOut,
    PurchaseIn,
    PurchaseOut,
    RunOut,
    SettingsIO,
    TierIn,
    TierOut,
    TierPatch,
)

router = APIRouter(tags=["tiers"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.TIERS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.TIERS_WRITE))]
CREATED = status.HTTP_201_CREATED
Platform = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="the external platform (`app`, `alipay`…)"
    ),
]


def _member_id(ctx: MerchantCtx, member_id: str, *, writing: bool = False) -> str:
    return members.require_member(ctx.session, ctx.merchant_id, member_id, writing=writing)


def _settings(row: TierSettings | None) -> SettingsIO:
    values = service.settings_of_row(row)
    return SettingsIO(
        basis=values.basis, growth_per_yuan=values.growth_per_yuan, period_months=values.period_months
    )


@router.get("/tier-settings", summary="How members qualify for tiers (growth value or 365-day spend)")
def get_settings(ctx: Reader) -> SettingsIO:
    return _settings(ctx.session.get(TierSettings, ctx.merchant_id))


@router.put("/tier-settings", summary="Change how members qualify (members are re-assessed by the job)")
def put_settings(body: SettingsIO, ctx: Writer) -> SettingsIO:
    row = membership.put_settings(ctx.session, ctx.merchant_id, body.model_dump(), now=utcnow())
    return _settings(row)


@router.get("/tiers", summary="The tier ladder (会员等级), lowest first")
def list_tiers(ctx: Reader) -> list[TierOut]:
    return [TierOut.model_validate(t) for t in service.tiers_of(ctx.session, ctx.merchant_id)]


@router.post("/tiers", status_code=CREATED, summary="Add a tier to the ladder")
def create_tier(body: TierIn, ctx: Writer) -> TierOut:
    tier = membership.create_tier(ctx.session, ctx.merchant_id, body.model_dump(), now=utcnow())
    return TierOut.model_validate(tier)


@router.get("/tiers/{tier_id}", summary="One tier")
def get_tier(tier_id: str, ctx: Reader) -> TierOut:
    return TierOut.model_validate(membership.get_tier(ctx.session, ctx.merchant_id, tier_id))


@router.patch("/tiers/{tier_id}", summary="Change a tier (a raised threshold bites at the next period end)")
def update_tier(tier_id: str, body: TierPatch, ctx: Writer) -> TierOut:
    changes = body.model_dump(exclude_unset=True)
    tier = membership.update_tier(ctx.session, ctx.merchant_id, tier_id, changes, now=utcnow())
    return TierOut.model_validate(tier)


@router.post("/tiers/run", summary="Run the tier jobs now: due re-assessments, monthly privileges, birthdays")
def run_jobs(ctx: Writer) -> RunOut:
    report = facade.run_due(ctx.session, ctx.merchant_id, now=utcnow())
    return RunOut(
        assessed=report.assessed,
        changed=report.changed,
        privilege_coupons=report.privilege_coupons,
        birthday_gifts=report.birthday_gifts,
        refused=report.refused,
    )


@router.get("/tier-joint-mappings", summary="Joint membership (联合会员): external levels mapped onto tiers")
def list_mappings(ctx: Reader) -> list[MappingOut]:
    return [MappingOut.model_validate(m) for m in membership.mappings(ctx.session, ctx.merchant_id)]


@router.put("/tier-joint-mappings/{platform}", summary="Map a platform's member levels onto tiers (replaces)")
def put_mapping(platform: Platform, body: MappingIn, ctx: Writer) -> list[MappingOut]:
    rows = membership.put_mapping(ctx.session, ctx.merchant_id, platform, body.levels, now=utcnow())
    return [MappingOut.model_validate(m) for m in rows]


def member_tier(ctx: MerchantCtx, member_id: str, history: int) -> MemberTierOut:
    session, merchant_id = ctx.session, ctx.merchant_id
    return MemberTierOut(
        member_id=member_id,
        tier=facade.tier_of(session, merchant_id, member_id, now=utcnow()),
        links=[LinkOut.model_validate(x) for x in membership.links_of(session, merchant_id, member_id)],
        history=facade.history_of(session, merchant_id, member_id, limit=history),
    )


@router.get("/members/{member_id}/tier", summary="A member's tier, progress to the next, links and history")
def get_member_tier(
    member_id: str, ctx: Reader, history: Annotated[int, Query(ge=1, le=500)] = 50
) -> MemberTierOut:
    return member_tier(ctx, _member_id(ctx, member_id), history)


@router.post(
    "/members/{member_id}/tier/purchases",
    status_code=CREATED,
    summary="Record a paid membership bought (idempotent by order id; a renewal extends)",
)
def purchase(member_id: str, body: PurchaseIn, ctx: Writer, response: Response) -> PurchaseOut:
    found = _member_id(ctx, member_id, writing=True)
    bought = membership.purchase(
        ctx.session, ctx.merchant_id, found, body.tier_id, order_id=body.order_id,
        amount_fen=body.amount_fen, now=utcnow(),
    )  # fmt: skip
    if bought.replayed:
        response.status_code = status.HTTP_200_OK
    return PurchaseOut.model_validate(bought.purchase)


@router.post("/tier-purchases/{order_id}/cancel", summary="A paid membership refunded: it ends now")
def cancel_purchase(order_id: str, ctx: Writer) -> PurchaseOut:
    return PurchaseOut.model_validate(
        membership.cancel_purchase(ctx.session, ctx.merchant_id, order_id, now=utcnow())
    )


@router.put(
    "/members/{member_id}/joint-links/{platform}", summary="Link a member's external level (floor at once)"
)
def put_link(member_id: str, platform: Platform, body: LinkIn, ctx: Writer) -> MemberTierOut:
    found = _member_id(ctx, member_id, writing=True)
    membership.link(
        ctx.session,
        ctx.merchant_id,
        found,
        platform,
        body.external_level,
        valid_until=body.valid_until,
        now=utcnow(),
    )
    return member_tier(ctx, found, 10)


@router.delete("/members/{member_id}/joint-links/{platform}", summary="Unlink: the floor no longer applies")
def delete_link(member_id: str, platform: Platform, ctx: Writer) -> MemberTierOut:
    found = _member_id(ctx, member_id, writing=True)
    membership.unlink(ctx.session, ctx.merchant_id, found, platform, now=utcnow())
    return member_tier(ctx, found, 10)
