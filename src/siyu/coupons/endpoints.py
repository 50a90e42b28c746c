"""Coupons API (thin handlers): templates, stock, promo codes, claims, coupons, redemptions (核销)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import TypeAdapter

from siyu.coupons import redemption, service
from siyu.coupons.models import CouponStatus, TemplateStatus
from siyu.coupons.schemas import (
    ClaimIn,
    CodeClaimIn,
    CodesIn,
    RedemptionIn,
    StockIn,
    TemplateIn,
    TemplatePatch,
)
from siyu.coupons.views import (
    CodesGenerated,
    CouponView,
    IssuedCoupon,
    PromoCodeView,
    RedemptionView,
    TemplateView,
)
from siyu.db import AsyncStatements
from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, page_params
from siyu.kit.problems import NotFound
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["coupons"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.COUPONS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.COUPONS_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]
CREATED = status.HTTP_201_CREATED
T = TypeVar("T")


def _found(value: T | None, what: str) -> T:
    if value is None:
        raise NotFound(f"no {what}")
    return value


@router.post("/coupon-templates", status_code=CREATED, summary="Create a coupon template (商家券), as draft")
def create_template(body: TemplateIn, ctx: Writer) -> TemplateView:
    return service.create_template(ctx.session, ctx.merchant_id, body, now=utcnow())


@router.get("/coupon-templates", summary="List coupon templates")
def list_templates(
    ctx: Reader, page: Paging, status: Annotated[TemplateStatus | None, Query()] = None
) -> Page[TemplateView]:
    return service.list_templates(ctx.session, ctx.merchant_id, page, status=status)


@router.get(
    "/coupon-templates/{template_id}", summary="A template with stock, issued, remaining, redeemed, budget"
)
def get_template(template_id: str, ctx: Reader) -> TemplateView:
    return _found(
        service.get_template(ctx.session, ctx.merchant_id, template_id), f"coupon template {template_id}"
    )


@router.patch("/coupon-templates/{template_id}", summary="Edit name, budget, end, stores, channels, stacking")
def update_template(template_id: str, body: TemplatePatch, ctx: Writer) -> TemplateView:
    return service.update_template(ctx.session, ctx.merchant_id, template_id, body, now=utcnow())


@router.post("/coupon-templates/{template_id}/activate", summary="draft/paused → active (issues coupons)")
def activate(template_id: str, ctx: Writer) -> TemplateView:
    return service.change_status(ctx.session, ctx.merchant_id, template_id, "activate", now=utcnow())


@router.post("/coupon-templates/{template_id}/pause", summary="active → paused (stops issuing)")
def pause(template_id: str, ctx: Writer) -> TemplateView:
    return service.change_status(ctx.session, ctx.merchant_id, template_id, "pause", now=utcnow())


@router.post("/coupon-templates/{template_id}/end", summary="→ ended (for good)")
def end(template_id: str, ctx: Writer) -> TemplateView:
    return service.change_status(ctx.session, ctx.merchant_id, template_id, "end", now=utcnow())


@router.post("/coupon-templates/{template_id}/stock", summary="Add stock (safe while claims run)")
def add_stock(template_id: str, body: StockIn, ctx: Writer) -> TemplateView:
    return service.add_stock(ctx.session, ctx.merchant_id, template_id, body.count, now=utcnow())


@router.post(
    "/coupon-templates/{template_id}/codes", status_code=CREATED, summary="Generate unique promo codes"
)
def generate_codes(template_id: str, body: CodesIn, ctx: Writer) -> CodesGenerated:
    return service.generate_codes(ctx.session, ctx.merchant_id, template_id, body.count, now=utcnow())


@router.get("/coupon-templates/{template_id}/codes", summary="A template's promo codes (for export)")
def list_codes(template_id: str, ctx: Reader, page: Paging) -> Page[PromoCodeView]:
    return service.list_codes(ctx.session, ctx.merchant_id, template_id, page)


_ISSUED_JSON = TypeAdapter(IssuedCoupon)
CLAIM_THREADS = 16
"""Claims run at once per process, in threads of their own: a claim holds a pooled connection
only while its one statement runs, so this many keep the database busy; more only add threads
contending for the GIL and connections beyond the pool (opened and closed per request)."""
_claim_limiter: anyio.CapacityLimiter | None = None


def _claiming() -> anyio.CapacityLimiter:
    global _claim_limiter
    if _claim_limiter is None:
        _claim_limiter = anyio.CapacityLimiter(CLAIM_THREADS)
    return _claim_limiter


@router.post(
    "/coupon-templates/{template_id}/claims",
    status_code=CREATED,
    response_model=IssuedCoupon,
    summary="Issue a coupon to a member",
)
async def claim(template_id: str, body: ClaimIn, ctx: Writer, request: Request) -> Response:
    """The hot path of a coupon drop. On PostgreSQL under a server (the app's lifespan opened
    ``loop_statements``) the usual claim is one statement run from the event loop: no worker
    thread. Anything else — a refusal to explain, SQLite, ``source_ref``, an
    ``Idempotency-Key`` — goes on in one worker thread (its own limiter). The answer is
    serialised here once, without FastAPI's response validation."""
    statements: AsyncStatements | None = getattr(request.app.state, "loop_statements", None)
    if statements is not None and not statements.usable_here():
        statements = None
    source, source_ref, now = body.source.value, body.source_ref, utcnow()
    if statements is not None:
        issued = await service.claim_from_loop(
            ctx.session,
            statements,
            ctx.merchant_id,
            template_id,
            body.member_id,
            source=source,
            source_ref=source_ref,
            now=now,
        )
        if issued is not None:
            return _created(issued)
    # the one statement already ran (and issued nothing), or cannot: the stepwise path
    run = service.issue if statements is not None else service.claim
    issued = await anyio.to_thread.run_sync(
        partial(
            run,
            ctx.session,
            ctx.merchant_id,
            template_id,
            body.member_id,
            source=source,
            source_ref=source_ref,
            now=now,
        ),
        limiter=_claiming(),
    )
    return _created(issued)


def _created(issued: IssuedCoupon) -> Response:
    return Response(_ISSUED_JSON.dump_json(issued), status_code=CREATED, media_type="application/json")


@router.post(
    "/coupons/claim-by-code", status_code=CREATED, summary="Claim with a shared or unique promo code"
)
def claim_by_code(body: CodeClaimIn, ctx: Writer) -> IssuedCoupon:
    return service.claim_by_code(ctx.session, ctx.merchant_id, body.member_id, body.code, now=utcnow())


@router.get("/coupons/{id_or_code}", summary="A coupon by id (cpn_…) or code")
def get_coupon(id_or_code: str, ctx: Reader) -> CouponView:
    return _found(service.get_coupon(ctx.session, ctx.merchant_id, id_or_code), f"coupon {id_or_code}")


@router.get("/members/{member_id}/coupons", summary="A member's coupons")
def member_coupons(
    member_id: str, ctx: Reader, page: Paging, status: Annotated[CouponStatus | None, Query()] = None
) -> Page[CouponView]:
    return service.member_coupons(ctx.session, ctx.merchant_id, member_id, page, status=status)


@router.post(
    "/redemptions/preview", summary="Validate coupons on an order and compute the discount, no change"
)
def preview(body: RedemptionIn, ctx: Reader) -> RedemptionView:
    return redemption.preview(ctx.session, ctx.merchant_id, body, now=utcnow())


@router.post(
    "/redemptions", status_code=CREATED, summary="Redeem coupons on an order (核销); idempotent by order"
)
def redeem(body: RedemptionIn, ctx: Writer) -> RedemptionView:
    return redemption.redeem(
        ctx.session, ctx.merchant_id, body, now=utcnow(), source=f"api:{ctx.principal.key_id}"
    )


@router.post("/redemptions/{order_id}/reverse", summary="Reverse an order's redemption (refund); idempotent")
def reverse(order_id: str, ctx: Writer) -> RedemptionView:
    return redemption.reverse(ctx.session, ctx.merchant_id, order_id, now=utcnow())


@router.get("/redemptions/{order_id}", summary="An order's redemption")
def get_redemption(order_id: str, ctx: Reader) -> RedemptionView:
    return _found(
        redemption.get_redemption(ctx.session, ctx.merchant_id, order_id), f"redemption for order {order_id}"
    )
