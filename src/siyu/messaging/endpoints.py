"""Messaging API: templates, fatigue settings, sending one message, messages, guide tasks (thin handlers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, status
from sqlalchemy import select

from siyu.kit.clock import utcnow
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pagination import Page, PageRequest, make_page, page_params, paginate
from siyu.kit.problems import NotFound, invalid_field
from siyu.members import facade as members
from siyu.messaging import facade, service
from siyu.messaging.models import FatigueSettings, GuideTask, GuideTaskStatus, Message, MessageTemplate
from siyu.messaging.schemas import (
    FatigueIO,
    GuideTaskOut,
    MessageOut,
    SendIn,
    SendOut,
    TemplateIn,
    TemplateOut,
    TemplatePatch,
)
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["messaging"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.MESSAGES_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.MESSAGES_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]
CREATED = status.HTTP_201_CREATED


def _template(row: MessageTemplate) -> TemplateOut:
    view = facade.template_view(row)
    return TemplateOut(
        id=row.id,
        name=row.name,
        channel=row.channel,
        kind=row.kind,
        title=row.title,
        body=row.body,
        platform_template_id=row.platform_template_id,
        sms_template_code=row.sms_template_code,
        page=row.page,
        variables=list(view.variables),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/message-templates", summary="Message templates")
def list_templates(ctx: Reader, page: Paging) -> Page[TemplateOut]:
    statement = select(MessageTemplate).where(MessageTemplate.merchant_id == ctx.merchant_id)
    rows = ctx.session.execute(paginate(statement, MessageTemplate.id, page)).scalars().all()
    items, cursor = make_page(rows, page, lambda r: r.id)
    return Page(items=[_template(r) for r in items], next_cursor=cursor)


@router.post("/message-templates", status_code=CREATED, summary="Create a message template")
def create_template(body: TemplateIn, ctx: Writer) -> TemplateOut:
    row = service.create_template(ctx.session, ctx.merchant_id, body.model_dump(mode="json"), now=utcnow())
    return _template(row)


@router.get("/message-templates/{template_id}", summary="One message template")
def get_template(template_id: str, ctx: Reader) -> TemplateOut:
    row = ctx.session.get(MessageTemplate, (ctx.merchant_id, template_id))
    if row is None:
        raise NotFound(f"no message template {template_id}")
    return _template(row)


@router.patch("/message-templates/{template_id}", summary="Change a message template (later sends use it)")
def update_template(template_id: str, body: TemplatePatch, ctx: Writer) -> TemplateOut:
    changes = body.model_dump(mode="json", exclude_unset=True)
    return _template(
        service.update_template(ctx.session, ctx.merchant_id, template_id, changes, now=utcnow())
    )


def _fatigue(row: FatigueSettings | None) -> FatigueIO:
    if row is None:
        return FatigueIO()
    return FatigueIO.model_validate(
        {
            "marketing_per_day": row.marketing_per_day,
            "marketing_per_week": row.marketing_per_week,
            "channel_caps": row.channel_caps or {},
            "quiet_start": row.quiet_start,
            "quiet_end": row.quiet_end,
        }
    )


@router.get(
    "/fatigue-settings", summary="Marketing caps and quiet hours (defaults: 1 a day, 3 a week, 21:00–09:00)"
)
def get_fatigue(ctx: Reader) -> FatigueIO:
    return _fatigue(ctx.session.get(FatigueSettings, ctx.merchant_id))


@router.put("/fatigue-settings", summary="Replace the marketing caps and quiet hours")
def put_fatigue(body: FatigueIO, ctx: Writer) -> FatigueIO:
    row = service.put_fatigue(ctx.session, ctx.merchant_id, body.model_dump(mode="json"), now=utcnow())
    return _fatigue(row)


@router.post(
    "/messages", status_code=CREATED, summary="Send one message (caps, quiet hours and opt-out apply)"
)
def send_message(
    body: SendIn,
    ctx: Writer,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> SendOut:
    member_id = members.require_member(ctx.session, ctx.merchant_id, body.member_id)
    key = body.key or (f"api:{idempotency_key}" if idempotency_key else new_id(IdKind.MESSAGE))
    request = facade.SendRequest(
        member_id=member_id,
        template_id=body.template_id,
        key=key,
        variables=body.variables,
        campaign_id=body.campaign_id,
    )
    result = facade.send(ctx.session, ctx.merchant_id, request, now=utcnow())
    if result.status is facade.SendStatus.REFUSED:
        reason = result.reason or ""
        if reason.startswith("missing_variable:"):
            name = reason.split(":", 1)[1]
            raise invalid_field(f"/variables/{name}", f"the template needs the variable {name!r}")
        if reason == "unknown_template":
            raise invalid_field("/template_id", f"no message template {body.template_id}")
        raise invalid_field("/member_id", reason)
    return SendOut(
        key=result.key,
        member_id=result.member_id,
        status=result.status.value,
        message_id=result.message_id,
        send_at=result.send_at,
        reason=result.reason,
    )


@router.get("/messages/{message_id}", summary="One message: its decision and delivery")
def get_message(message_id: str, ctx: Reader) -> MessageOut:
    row = ctx.session.get(Message, (ctx.merchant_id, message_id))
    if row is None:
        raise NotFound(f"no message {message_id}")
    return MessageOut.model_validate(row)


@router.get("/members/{member_id}/messages", summary="A member's messages, oldest first")
def list_member_messages(member_id: str, ctx: Reader, page: Paging) -> Page[MessageOut]:
    current = members.require_member(ctx.session, ctx.merchant_id, member_id)
    statement = select(Message).where(Message.merchant_id == ctx.merchant_id, Message.member_id == current)
    rows = ctx.session.execute(paginate(statement, Message.id, page)).scalars().all()
    items, cursor = make_page(rows, page, lambda r: r.id)
    return Page(items=[MessageOut.model_validate(r) for r in items], next_cursor=cursor)


@router.get("/guide-tasks", summary="Guide tasks (导购待办), by guide and status")
def list_guide_tasks(
    ctx: Reader,
    page: Paging,
    staff_id: Annotated[str | None, Query(max_length=40)] = None,
    task_status: Annotated[GuideTaskStatus | None, Query(alias="status")] = None,
) -> Page[GuideTaskOut]:
    statement = select(GuideTask).where(GuideTask.merchant_id == ctx.merchant_id)
    if staff_id is not None:
        statement = statement.where(GuideTask.staff_id == staff_id)
    if task_status is not None:
        statement = statement.where(GuideTask.status == task_status.value)
    rows = ctx.session.execute(paginate(statement, GuideTask.id, page)).scalars().all()
    items, cursor = make_page(rows, page, lambda r: r.id)
    return Page(items=[GuideTaskOut.model_validate(r) for r in items], next_cursor=cursor)


@router.post("/guide-tasks/{task_id}/complete", summary="Mark a guide task done (idempotent)")
def complete_guide_task(task_id: str, ctx: Writer) -> GuideTaskOut:
    row = ctx.session.get(GuideTask, (ctx.merchant_id, task_id))
    if row is None:
        raise NotFound(f"no guide task {task_id}")
    if row.status != GuideTaskStatus.DONE:
        row.status = GuideTaskStatus.DONE.value
        row.completed_at = utcnow()
        ctx.session.flush()
    return GuideTaskOut.model_validate(row)
