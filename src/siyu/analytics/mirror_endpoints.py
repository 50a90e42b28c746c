"""``GET /api/v1/analytics/mirror``: how current the merchant's analytics mirror is (read-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from siyu.analytics.mirror_status import mirror_status
from siyu.config import Settings
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["analytics"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.MERCHANT_READ))]


class MirrorStatusOut(BaseModel):
    watermark: datetime | None = Field(description="received_at of the newest mirrored event")
    synced_at: datetime | None = Field(description="when the last sync of this merchant ran")
    files: int
    bytes: int
    events: int
    members: int = Field(description="rows of the latest daily member snapshot")
    snapshot_days: int
    transitions: int = Field(description="user-asset ledger entries mirrored")
    pending_events: int = Field(description="events received after the watermark (not mirrored yet)")
    lag_seconds: float = Field(description="how far the watermark is behind the newest event received")
    facts: int = Field(description="rows of member_months, the period figures' pre-aggregate (0: none)")
    facts_through: datetime | None = Field(description="member_months covers events received up to here")


@router.get("/analytics/mirror", summary="How current the analytics mirror of the merchant is")
def get_mirror_status(ctx: Reader, request: Request) -> MirrorStatusOut:
    settings: Settings = request.app.state.settings
    found = mirror_status(ctx.session, settings.resolved_analytics_dir, ctx.merchant_id)
    return MirrorStatusOut(
        watermark=found.watermark,
        synced_at=found.synced_at,
        files=found.files,
        bytes=found.bytes,
        events=found.events,
        members=found.members,
        snapshot_days=found.snapshot_days,
        transitions=found.transitions,
        pending_events=found.pending_events,
        lag_seconds=found.lag_seconds,
        facts=found.facts,
        facts_through=found.facts_through,
    )
