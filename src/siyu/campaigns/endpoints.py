"""Campaigns API (营销活动): drafts, the state machine, members' place and treatments, runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from siyu.campaigns import repository as repo
from siyu.campaigns import service
from siyu.campaigns.models import CampaignKind, CampaignStatus
from siyu.campaigns.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    MemberInCampaignOut,
    RunOut,
    TreatmentOut,
)
from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, page_params
from siyu.kit.problems import NotFound
from siyu.members import facade as members
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["campaigns"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.CAMPAIGNS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.CAMPAIGNS_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]


@router.post("/campaigns", status_code=status.HTTP_201_CREATED, summary="Create a campaign (a draft)")
def create_campaign(body: CampaignIn, ctx: Writer) -> CampaignOut:
    row = service.create(ctx.session, ctx.merchant_id, body.model_dump(mode="json"), now=utcnow())
    return CampaignOut.model_validate(row)


@router.get("/campaigns", summary="List campaigns (oldest first), optionally by status or kind")
def list_campaigns(
    ctx: Reader,
    page: Paging,
    status_: Annotated[CampaignStatus | None, Query(alias="status")] = None,
    kind: CampaignKind | None = None,
) -> Page[CampaignOut]:
    rows, cursor = service.list_campaigns(ctx.session, ctx.merchant_id, page, status=status_, kind=kind)
    return Page(items=[CampaignOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/campaigns/{campaign_id}", summary="One campaign, with what it has spent of its budgets")
def get_campaign(campaign_id: str, ctx: Reader) -> CampaignOut:
    return CampaignOut.model_validate(service.require(ctx.session, ctx.merchant_id, campaign_id))


@router.patch("/campaigns/{campaign_id}", summary="Change a draft (409 once it is scheduled or started)")
def update_campaign(campaign_id: str, body: CampaignPatch, ctx: Writer) -> CampaignOut:
    changes = body.model_dump(mode="json", exclude_unset=True)
    row = service.update_draft(ctx.session, ctx.merchant_id, campaign_id, changes, now=utcnow())
    return CampaignOut.model_validate(row)


def _transition(action: str, summary: str) -> None:
    def move(campaign_id: str, ctx: Writer) -> CampaignOut:
        row = service.transition(ctx.session, ctx.merchant_id, campaign_id, action, now=utcnow())
        return CampaignOut.model_validate(row)

    move.__name__ = f"{action}_campaign"
    router.add_api_route(
        f"/campaigns/{{campaign_id}}/{action}",
        move,
        methods=["POST"],
        summary=summary,
        response_model=CampaignOut,
    )


_transition("schedule", "Schedule a draft: it starts by itself at schedule.start_at")
_transition("start", "Start now (a draft or a scheduled campaign): the audience is frozen")
_transition("pause", "Pause a running campaign: runs and due trigger entries wait")
_transition("resume", "Resume a paused campaign")
_transition("cancel", "Cancel: unfinished runs stop, waiting trigger entries are skipped")
_transition("complete", "Complete a running or paused campaign now")


@router.get(
    "/campaigns/{campaign_id}/runs", summary="The campaign's runs (broadcast occurrences), newest first"
)
def list_runs(campaign_id: str, ctx: Reader) -> list[RunOut]:
    service.require(ctx.session, ctx.merchant_id, campaign_id)
    return [RunOut.model_validate(r) for r in repo.runs_of(ctx.session, ctx.merchant_id, campaign_id)]


@router.get(
    "/campaigns/{campaign_id}/members/{member_id}",
    summary="A member's group (treatment or holdout), variant and treatments in the campaign",
)
def member_in_campaign(campaign_id: str, member_id: str, ctx: Reader) -> MemberInCampaignOut:
    service.require(ctx.session, ctx.merchant_id, campaign_id)
    found = members.require_member(ctx.session, ctx.merchant_id, member_id)
    row = repo.members_of(ctx.session, ctx.merchant_id, campaign_id, [found]).get(found)
    if row is None:
        raise NotFound(f"member {found} is not in campaign {campaign_id}")
    given = repo.treatments_of_member(ctx.session, ctx.merchant_id, campaign_id, found)
    return MemberInCampaignOut(
        member_id=found,
        group=row.group,
        variant=row.variant,
        assigned_at=row.assigned_at,
        treated_at=row.treated_at,
        source=row.source,
        treatments=[TreatmentOut.model_validate(t) for t in given],
    )
