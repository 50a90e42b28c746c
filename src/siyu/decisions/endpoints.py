"""Payment-success-page decisions (支付成功页): ask, accept, decline (thin handlers)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from siyu.campaigns import facade as campaigns
from siyu.coupons import facade as coupons
from siyu.db import Database
from siyu.decisions import service
from siyu.decisions.models import DecisionStatus
from siyu.decisions.schemas import DecisionOut, OfferOut, PaymentIn, SettingsIO
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import NotFound
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["decisions"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.DECISIONS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.DECISIONS_WRITE))]
SHOWS_OFFER = (DecisionStatus.OFFERED, DecisionStatus.ACCEPTED)


def _out(ctx: MerchantCtx, decision: service.DecisionView) -> DecisionOut:
    offer = None
    if decision.status in SHOWS_OFFER and decision.template_id and decision.campaign_id:
        template = decision.template or coupons.get_template(
            ctx.session, ctx.merchant_id, decision.template_id
        )
        offer = OfferOut(
            campaign_id=decision.campaign_id,
            variant=decision.variant,
            template_id=decision.template_id,
            template_name=template.name if template else None,
            kind=template.kind if template else None,
            value_fen=template.value_fen if template else None,
            discount_bp=template.discount_bp if template else None,
            threshold_fen=template.threshold_fen if template else None,
        )
    return DecisionOut(
        id=decision.id,
        status=decision.status,
        member_id=decision.member_id,
        campaign_id=decision.campaign_id,
        variant=decision.variant,
        group=decision.group,
        offer=offer,
        coupon_id=decision.coupon_id,
        reason=decision.reason,
        amount_fen=decision.amount_fen,
        store_id=decision.store_id,
        order_id=decision.order_id,
        created_at=decision.created_at,
        accepted_at=decision.accepted_at,
        closed_at=decision.closed_at,
        replayed=decision.replayed,
    )


@router.post(
    "/decisions/payment-success",
    summary="The offer to show on the payment-success page now (or none), recorded",
)
async def payment_success(request: Request, body: PaymentIn, ctx: Writer) -> DecisionOut:
    """Resolves (or creates) the payer from its identities, then picks the first running
    payment-success campaign whose conditions, audience, holdout, cap, stock and budget allow
    an offer. ``status`` is ``offered`` (show ``offer``), ``holdout`` or ``none`` (show nothing)."""
    vault: IdentifierVault = request.app.state.vault
    payment = service.Payment(body.identities, body.amount_fen, body.store_id, body.order_id, body.channel)

    def decide(commit: bool) -> DecisionOut:
        answer = _out(ctx, service.decide(ctx.session, vault, ctx.merchant_id, payment, now=utcnow()))
        if commit:
            ctx.session.commit()
        return answer

    if ctx.session.get_bind().dialect.name == "postgresql":
        return await run_in_threadpool(decide, False)
    # SQLite has one writer. Concurrent decisions wait here, on the event loop (holding neither a
    # thread nor a SQLite lock: what authentication may have written is committed first), and
    # run one at a time, committing before the next starts — instead of each holding a thread
    # in SQLite's busy handler, which sleeps in steps of up to 100 ms.
    if ctx.session.in_transaction():
        await run_in_threadpool(ctx.session.commit)
    async with _sqlite_turn():
        return await run_in_threadpool(decide, True)


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _sqlite_turn() -> asyncio.Lock:
    """This event loop's queue of SQLite decisions."""
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()
    return lock


@router.get("/decisions/{decision_id}", summary="One decision")
def get_decision(decision_id: str, ctx: Reader) -> DecisionOut:
    found = service.get(ctx.session, ctx.merchant_id, decision_id)
    if found is None:
        raise NotFound(f"no decision {decision_id}")
    return _out(ctx, found)


@router.post(
    "/decisions/{decision_id}/accept", summary="The payer takes the offer: issue its coupon (idempotent)"
)
def accept(request: Request, decision_id: str, ctx: Writer) -> DecisionOut:
    """A retry returns the same coupon. Out of stock (or any other refusal) → 409
    ``offer-refused`` with the ``reason``; the campaign's budget is given back."""
    now = utcnow()
    decision = service.accept(ctx.session, ctx.merchant_id, decision_id, now=now)
    if decision.status == DecisionStatus.REFUSED:
        reason = decision.reason or "refused"
        ctx.session.rollback()  # the error answer rolls the request back: record the refusal apart
        db: Database = request.app.state.db
        with db.unit_of_work() as session:
            service.refuse(session, ctx.merchant_id, decision_id, reason, now=now)
        raise service.OfferRefused(reason, f"the coupon could not be issued: {reason}", decision)
    return _out(ctx, decision)


@router.post(
    "/decisions/{decision_id}/decline", summary="The payer declines the offer (its budget goes back)"
)
def decline(decision_id: str, ctx: Writer) -> DecisionOut:
    return _out(ctx, service.decline(ctx.session, ctx.merchant_id, decision_id, now=utcnow()))


@router.get(
    "/campaigns/{campaign_id}/decision-settings",
    summary="A payment-success campaign's page conditions (minimum amount, stores, channels, per-day cap)",
)
def get_settings(campaign_id: str, ctx: Reader) -> SettingsIO:
    if campaigns.get_campaign(ctx.session, ctx.merchant_id, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")
    found = service.conditions_of(ctx.session, ctx.merchant_id, campaign_id)
    return SettingsIO(
        min_amount_fen=found.min_amount_fen,
        store_ids=list(found.store_ids),
        channels=list(found.channels),
        per_member_per_day=found.per_member_per_day,
    )


@router.put(
    "/campaigns/{campaign_id}/decision-settings", summary="Set a payment-success campaign's page conditions"
)
def put_settings(campaign_id: str, body: SettingsIO, ctx: Writer) -> SettingsIO:
    conditions = service.Conditions(
        body.min_amount_fen, tuple(body.store_ids), tuple(body.channels), body.per_member_per_day
    )
    service.put_conditions(ctx.session, ctx.merchant_id, campaign_id, conditions, now=utcnow())
    return body
