"""``POST /events`` and ``POST /events/batch``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from siyu.events import service
from siyu.events.schemas import MAX_BATCH, BatchIn, BatchOut, EventResult
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import UnprocessableEntity
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["events"])
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.EVENTS_WRITE))]


def _vault(request: Request) -> IdentifierVault:
    vault: IdentifierVault = request.app.state.vault
    return vault


def _result(verdict: service.Verdict) -> EventResult:
    return EventResult(
        index=verdict.index,
        event_id=verdict.event_id,
        status=verdict.status,
        member_id=verdict.member_id,
        reason=verdict.reason,
        pointer=verdict.pointer,
    )


@router.post("/events", summary="Record one event (idempotent by event_id)")
def post_event(request: Request, ctx: Writer, event: Annotated[dict[str, Any], Body()]) -> EventResult:
    """Accepted or duplicate → 200 with the member; a bad event → 422 with the pointer of the bad field."""
    (verdict,) = service.ingest(ctx.session, _vault(request), ctx.merchant_id, [event], now=utcnow())
    if verdict.status == "rejected":
        pointer = (verdict.pointer or "").removeprefix("/events/0")
        raise UnprocessableEntity(
            verdict.reason or "invalid event",
            extra={"errors": [{"pointer": pointer, "detail": verdict.reason}]},
        )
    return _result(verdict)


@router.post(
    "/events/batch",
    summary=f"Record up to {MAX_BATCH} events; a verdict for each",
    response_model=BatchOut,
)
def post_batch(request: Request, ctx: Writer, batch: BatchIn) -> Response:
    """Valid events are accepted even when others in the batch are rejected."""
    verdicts = service.ingest(ctx.session, _vault(request), ctx.merchant_id, batch.events, now=utcnow())
    # Serialised by hand: building and re-validating 5,000 response models costs more than
    # storing the events. The shape is BatchOut's (a test compares it with the model).
    body = {
        "accepted": sum(v.status == "accepted" for v in verdicts),
        "duplicates": sum(v.status == "duplicate" for v in verdicts),
        "rejected": sum(v.status == "rejected" for v in verdicts),
        "results": [
            {
                "index": v.index,
                "event_id": v.event_id,
                "status": v.status,
                "member_id": v.member_id,
                "reason": v.reason,
                "pointer": v.pointer,
            }
            for v in verdicts
        ],
    }
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(content, media_type="application/json")
