"""Member API: the 360° view (profile, identities, rollups, tags, reachability, stage), lookup, list, tags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime
from sqlalchemy import Select
from sqlalchemy.orm import Session

from siyu.coupons import facade as coupons
from siyu.events import facade as events
from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, make_page, page_params
from siyu.kit.pii import IdentifierVault, IdentityKind
from siyu.kit.problems import NotFound, UnprocessableEntity
from siyu.lifecycle import facade as lifecycle
from siyu.lifecycle.rules import Stage
from siyu.members import facade, rights, service
from siyu.members import repository as repo
from siyu.members.schemas import (
    BirthdayIn,
    IdentityOut,
    LookupIn,
    MemberOut,
    MemberSummary,
    RollupOut,
    TagsIn,
)
from siyu.points import facade as points
from siyu.reachability import facade as reachability
from siyu.tenancy import facade as tenancy
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope
from siyu.tiers import facade as tiers

router = APIRouter(tags=["members"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.MEMBERS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.EVENTS_WRITE))]


def member_view(session: Session, merchant_id: str, member_id: str) -> MemberOut:
    """The member (following a merged id to its survivor), or 404."""
    current = service.current_member_id(session, merchant_id, member_id)
    member = repo.get_member(session, merchant_id, current) if current else None
    if member is None:
        raise NotFound(f"no member {member_id}")
    rollup = events.rollup_of(session, merchant_id, member.id)
    return MemberOut(
        id=member.id,
        status=member.status,
        created_at=member.created_at,
        birthday=member.birthday,
        identities=[
            IdentityOut(
                kind=IdentityKind(i.kind),
                masked=i.masked_value,
                source=i.source,
                first_seen_at=i.first_seen_at,
            )
            for i in repo.identities_of(session, merchant_id, member.id)
        ],
        tags=repo.tags_of(session, merchant_id, member.id),
        rollup=RollupOut.model_validate(rollup) if rollup else None,
        reachability=reachability.reachability_of(session, merchant_id, member.id, recent_changes=5),
        lifecycle=lifecycle.stage_of(session, merchant_id, member.id, history=10),
        coupons=coupons.coupons_of(session, merchant_id, member.id, limit=10),
        points=points.balance_of(session, merchant_id, member.id, now=utcnow()),
        points_history=points.history_of(session, merchant_id, member.id, limit=10),
        tier=tiers.tier_of(session, merchant_id, member.id, now=utcnow()),
        tier_history=tiers.history_of(session, merchant_id, member.id, limit=10),
    )


@router.get(
    "/members", summary="Members (active), filtered by tag, stage, orders, last seen, acquisition, operable"
)
def list_members(
    ctx: Reader,
    page: Annotated[PageRequest, Depends(page_params)],
    tag: Annotated[str | None, Query()] = None,
    min_orders: Annotated[int | None, Query(ge=0)] = None,
    max_orders: Annotated[int | None, Query(ge=0)] = None,
    last_seen_after: Annotated[AwareDatetime | None, Query()] = None,
    last_seen_before: Annotated[AwareDatetime | None, Query()] = None,
    acquisition_channel: Annotated[str | None, Query(max_length=64)] = None,
    operable: Annotated[bool | None, Query(description="reachable through an owned channel")] = None,
    stage: Annotated[Stage | None, Query(description="current lifecycle stage")] = None,
) -> Page[MemberSummary]:
    within: list[Select[Any]] = []
    outside: list[Select[Any]] = []
    by_rollup = events.members_by_rollup(
        ctx.merchant_id,
        min_orders=min_orders,
        max_orders=max_orders,
        last_seen_after=last_seen_after,
        last_seen_before=last_seen_before,
        acquisition_channel=acquisition_channel,
    )
    if by_rollup is not None:
        within.append(by_rollup)
    if operable is not None:
        (within if operable else outside).append(reachability.operable_member_ids(ctx.merchant_id))
    if stage is not None:
        within.append(lifecycle.member_ids_in_stage(ctx.merchant_id, stage))
    rows = repo.list_members(ctx.session, ctx.merchant_id, page, tag=tag, within=within, outside=outside)
    items, cursor = make_page(rows, page, lambda m: m.id)
    return Page(items=[MemberSummary.model_validate(m) for m in items], next_cursor=cursor)


@router.get("/members/{member_id}", summary="A member's 360° view (a merged id answers with its survivor)")
def get_member(member_id: str, ctx: Reader) -> MemberOut:
    return member_view(ctx.session, ctx.merchant_id, member_id)


@router.post("/members/lookup", summary="Find a member by one identity")
def lookup_member(body: LookupIn, request: Request, ctx: Reader) -> MemberOut:
    vault: IdentifierVault = request.app.state.vault
    try:
        member_id = service.find_by_identity(ctx.session, vault, ctx.merchant_id, body.kind.value, body.value)
    except service.IdentityError as exc:
        raise UnprocessableEntity(
            exc.detail, extra={"errors": [{"pointer": "/value", "detail": exc.detail}]}
        ) from None
    if member_id is None:
        raise NotFound("no member has this identity")
    return member_view(ctx.session, ctx.merchant_id, member_id)


@router.post("/members/{member_id}/tags", summary="Add tags (idempotent)")
def add_tags(member_id: str, body: TagsIn, ctx: Writer) -> MemberOut:
    view = member_view(ctx.session, ctx.merchant_id, member_id)
    service.add_tags(ctx.session, ctx.merchant_id, view.id, body.tags, now=utcnow())
    return member_view(ctx.session, ctx.merchant_id, view.id)


@router.delete("/members/{member_id}/tags/{tag}", summary="Remove a tag")
def remove_tag(member_id: str, tag: str, ctx: Writer) -> MemberOut:
    view = member_view(ctx.session, ctx.merchant_id, member_id)
    repo.remove_tag(ctx.session, ctx.merchant_id, view.id, tag)
    return member_view(ctx.session, ctx.merchant_id, view.id)


@router.put("/members/{member_id}/birthday", summary="Record a member's birthday (MM-DD) for birthday gifts")
def put_birthday(member_id: str, body: BirthdayIn, ctx: Writer) -> MemberOut:
    view = member_view(ctx.session, ctx.merchant_id, member_id)
    if view.status != "active":
        raise NotFound(f"no active member {member_id}")
    try:
        facade.set_birthday(ctx.session, ctx.merchant_id, view.id, body.birthday, now=utcnow())
    except ValueError:
        detail = f"{body.birthday} is not a day of any year"
        raise UnprocessableEntity(
            detail, extra={"errors": [{"pointer": "/birthday", "detail": detail}]}
        ) from None
    return member_view(ctx.session, ctx.merchant_id, view.id)


@router.get(
    "/members/{member_id}/export", summary="Everything held on a member, identifiers decrypted (PIPL)"
)
def export_member(
    member_id: str,
    request: Request,
    ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.MEMBERS_EXPORT))],
) -> dict[str, Any]:
    vault: IdentifierVault = request.app.state.vault
    data = rights.export_member(ctx.session, vault, ctx.merchant_id, member_id)
    _record_in_read_request(request, ctx, member_id)
    return data


def _record_in_read_request(request: Request, ctx: MerchantCtx, member_id: str) -> None:
    """GET requests roll back: write the export's audit entry in a transaction of its own."""
    db = request.app.state.db
    with db.unit_of_work() as session:
        tenancy.record_audit(
            session, ctx.merchant_id, actor=ctx.actor, action="member.exported", target=member_id
        )


@router.post("/members/{member_id}/erase", summary="Erase a member (PIPL): identifiers and profile removed")
def erase_member(
    member_id: str, ctx: Annotated[MerchantCtx, Depends(merchant_context(Scope.MEMBERS_ERASE))]
) -> dict[str, str]:
    rights.erase_member(ctx.session, ctx.merchant_id, member_id, now=utcnow())
    tenancy.record_audit(
        ctx.session, ctx.merchant_id, actor=ctx.actor, action="member.erased", target=member_id
    )
    return {"id": member_id, "status": "erased"}
