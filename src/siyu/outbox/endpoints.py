"""Outbox API for operators: list items by status, one item with its attempts, requeue a dead one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, make_page, page_params
from siyu.kit.problems import Conflict, NotFound
from siyu.outbox import repository
from siyu.outbox.models import ItemStatus
from siyu.outbox.schemas import AttemptOut, ItemDetailOut, ItemOut
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["outbox"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.OUTBOX_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.OUTBOX_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]


def _detail(ctx: MerchantCtx, item_id: str) -> ItemDetailOut:
    item = repository.get_item(ctx.session, ctx.merchant_id, item_id)
    if item is None:
        raise NotFound(f"no outbox item {item_id}")
    attempts = repository.attempts_of(ctx.session, ctx.merchant_id, item_id)
    return ItemDetailOut(
        **ItemOut.model_validate(item).model_dump(),
        payload=item.payload,
        attempt_log=[AttemptOut.model_validate(a) for a in attempts],
    )


@router.get("/outbox/items", summary="Outbox items (side effects to deliver), oldest first, by status")
def list_items(
    ctx: Reader,
    page: Paging,
    status: Annotated[ItemStatus | None, Query(description="pending, in_flight, done or dead")] = None,
    kind: Annotated[str | None, Query(max_length=64, description="e.g. webhook.event")] = None,
) -> Page[ItemOut]:
    rows = repository.list_items(ctx.session, ctx.merchant_id, status=status, kind=kind, page=page)
    items, cursor = make_page(rows, page, lambda r: r.id)
    return Page(items=[ItemOut.model_validate(r) for r in items], next_cursor=cursor)


@router.get("/outbox/items/{item_id}", summary="One outbox item with its payload and every attempt")
def get_item(item_id: str, ctx: Reader) -> ItemDetailOut:
    return _detail(ctx, item_id)


@router.post(
    "/outbox/items/{item_id}/retry",
    summary="Requeue a dead item: pending, due now, with a fresh attempt budget (same key)",
)
def retry_item(item_id: str, ctx: Writer) -> ItemDetailOut:
    if not repository.requeue(ctx.session, ctx.merchant_id, item_id, now=utcnow()):
        if repository.get_item(ctx.session, ctx.merchant_id, item_id) is None:
            raise NotFound(f"no outbox item {item_id}")
        raise Conflict("only a dead item can be requeued; this one is still pending, in flight or done")
    return _detail(ctx, item_id)
