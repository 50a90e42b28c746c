"""Channels API: configure the webhook, the Alipay mini-program, SMS and life account; the delivery log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from siyu.channels import repository, service
from siyu.channels.models import ChannelKind
from siyu.channels.schemas import ChannelOut, DeliveryOut, NamedIn, RotateIn, SubscriptionIn, WebhookIn
from siyu.kit.clock import utcnow
from siyu.kit.pagination import Page, PageRequest, make_page, page_params
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import NotFound
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["channels"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.CHANNELS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.CHANNELS_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]


def _vault(request: Request) -> IdentifierVault:
    vault: IdentifierVault = request.app.state.vault
    return vault


def _out(view: service.ChannelView) -> ChannelOut:
    return ChannelOut.model_validate(view)


@router.get("/channels", summary="The merchant's configured channels (secrets never shown)")
def list_channels(ctx: Reader) -> list[ChannelOut]:
    now = utcnow()
    return [_out(service.view(row, now=now)) for row in repository.configs_of(ctx.session, ctx.merchant_id)]


@router.get("/channels/{channel}", summary="One channel's configuration")
def get_channel(channel: ChannelKind, ctx: Reader) -> ChannelOut:
    row = repository.get_config(ctx.session, ctx.merchant_id, channel)
    if row is None:
        raise NotFound(f"the {channel} channel is not configured")
    return _out(service.view(row, now=utcnow()))


@router.put(
    "/channels/webhook",
    summary="Set the webhook URL; the first time, the signing secret is generated and shown once",
)
def put_webhook(body: WebhookIn, ctx: Writer, request: Request) -> ChannelOut:
    return _out(
        service.put_webhook(ctx.session, _vault(request), ctx.merchant_id, url=body.url, now=utcnow())
    )


@router.post(
    "/channels/webhook/rotate-secret",
    summary="A new signing secret (shown once); the previous one keeps signing for the grace period",
)
def rotate_secret(ctx: Writer, request: Request, body: RotateIn | None = None) -> ChannelOut:
    grace = timedelta(seconds=(body or RotateIn()).grace_seconds)
    return _out(
        service.rotate_webhook_secret(
            ctx.session, _vault(request), ctx.merchant_id, now=utcnow(), grace=grace
        )
    )


@router.put("/channels/subscription", summary="The Alipay mini-program for subscription messages (订阅消息)")
def put_subscription(body: SubscriptionIn, ctx: Writer, request: Request) -> ChannelOut:
    view = service.put_subscription(
        ctx.session,
        _vault(request),
        ctx.merchant_id,
        app_id=body.app_id,
        private_key=body.private_key,
        alipay_public_key=body.alipay_public_key,
        gateway_url=body.gateway_url,
        now=utcnow(),
    )
    return _out(view)


@router.put("/channels/sms", summary="SMS sign (短信签名) — record-only channel for now")
def put_sms(body: NamedIn, ctx: Writer) -> ChannelOut:
    return _out(
        service.put_named(ctx.session, ctx.merchant_id, ChannelKind.SMS, name=body.name, now=utcnow())
    )


@router.put("/channels/life_account", summary="Life account (生活号) name — record-only channel for now")
def put_life_account(body: NamedIn, ctx: Writer) -> ChannelOut:
    view = service.put_named(
        ctx.session, ctx.merchant_id, ChannelKind.LIFE_ACCOUNT, name=body.name, now=utcnow()
    )
    return _out(view)


@router.delete(
    "/channels/{channel}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a channel's configuration"
)
def delete_channel(channel: ChannelKind, ctx: Writer) -> Response:
    if not repository.delete_config(ctx.session, ctx.merchant_id, channel):
        raise NotFound(f"the {channel} channel is not configured")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/channel-deliveries", summary="The delivery log: every attempt to hand something to a channel")
def list_deliveries(
    ctx: Reader,
    page: Paging,
    channel: Annotated[ChannelKind | None, Query()] = None,
    key: Annotated[str | None, Query(max_length=255, description="one delivery's idempotency key")] = None,
) -> Page[DeliveryOut]:
    rows = repository.deliveries(ctx.session, ctx.merchant_id, channel=channel, key=key, page=page)
    items, cursor = make_page(rows, page, lambda r: r.id)
    return Page(items=[DeliveryOut.model_validate(r) for r in items], next_cursor=cursor)
