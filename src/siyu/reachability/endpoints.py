"""Reachability API: a member's channels, consents and guide; the operable summary (thin handlers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, make_page, page_params
from siyu.members import facade as members
from siyu.reachability import facade, service
from siyu.reachability import repository as repo
from siyu.reachability.facade import ChangeView, ReachabilityView, SummaryView
from siyu.reachability.schemas import ConsentIn, ConsentRecorded, ConsentsPage, GuideIn, GuideOut
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["reachability"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.REACHABILITY_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.REACHABILITY_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]


def _member_id(ctx: MerchantCtx, member_id: str, *, writing: bool = False) -> str:
    return members.require_member(ctx.session, ctx.merchant_id, member_id, writing=writing)


def _source(ctx: MerchantCtx) -> str:
    return f"api:{ctx.principal.key_id}"


@router.get("/members/{member_id}/reachability", summary="A member's reachability per channel (可触达)")
def get_reachability(member_id: str, ctx: Reader) -> ReachabilityView:
    return facade.reachability_of(ctx.session, ctx.merchant_id, _member_id(ctx, member_id))


@router.get("/members/{member_id}/reachability/changes", summary="A member's reachability change log")
def list_changes(member_id: str, ctx: Reader, page: Paging) -> Page[ChangeView]:
    rows = repo.list_changes(ctx.session, ctx.merchant_id, _member_id(ctx, member_id), page)
    items, cursor = make_page(rows, page, lambda c: c.id)
    return Page[ChangeView](items=[facade.change_view(c) for c in items], next_cursor=cursor)


@router.post(
    "/members/{member_id}/consents",
    status_code=status.HTTP_201_CREATED,
    summary="Record a consent given or withdrawn (append-only)",
)
def record_consent(member_id: str, body: ConsentIn, ctx: Writer) -> ConsentRecorded:
    current_id = _member_id(ctx, member_id, writing=True)
    now = utcnow()
    record = service.record_consent(
        ctx.session,
        ctx.merchant_id,
        current_id,
        purpose=body.purpose,
        action=body.action,
        at=body.at or now,
        now=now,
        source=_source(ctx),
        method=body.method,
        notice_version=body.notice_version,
        evidence=body.evidence,
    )
    current = {c.purpose: c for c in facade.current_consents(ctx.session, ctx.merchant_id, current_id)}
    return ConsentRecorded(record=facade.consent_view(record), current=current[record.purpose])


@router.get("/members/{member_id}/consents", summary="A member's consent log and the consent in force")
def list_consents(member_id: str, ctx: Reader, page: Paging) -> ConsentsPage:
    current_id = _member_id(ctx, member_id)
    rows = repo.list_consents(ctx.session, ctx.merchant_id, current_id, page)
    items, cursor = make_page(rows, page, lambda r: r.id)
    return ConsentsPage(
        items=[facade.consent_view(r) for r in items],
        next_cursor=cursor,
        current=facade.current_consents(ctx.session, ctx.merchant_id, current_id),
    )


@router.put("/members/{member_id}/guide", summary="Assign a shopping guide (导购)")
def assign_guide(member_id: str, body: GuideIn, ctx: Writer) -> GuideOut:
    current_id = _member_id(ctx, member_id, writing=True)
    service.assign_guide(
        ctx.session, ctx.merchant_id, current_id, body.staff_id, now=utcnow(), source=_source(ctx)
    )
    return GuideOut(member_id=current_id, staff_id=body.staff_id, assigned=True)


@router.delete("/members/{member_id}/guide", summary="Unassign the member's guide")
def unassign_guide(member_id: str, ctx: Writer) -> GuideOut:
    current_id = _member_id(ctx, member_id, writing=True)
    service.unassign_guide(ctx.session, ctx.merchant_id, current_id, now=utcnow(), source=_source(ctx))
    return GuideOut(member_id=current_id, staff_id=None, assigned=False)


@router.get("/reachability/summary", summary="Operable user assets: reachable members, all and per channel")
def get_summary(ctx: Reader) -> SummaryView:
    return facade.summary(ctx.session, ctx.merchant_id, now=utcnow())
