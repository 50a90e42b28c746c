"""Segments API (人群): saved rules, preview, snapshots, membership tests (thin handlers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from siyu.kit.clock import utcnow
from siyu.kit.pagination import MAX_LIMIT, Page, PageRequest, make_page, page_params
from siyu.members import facade as members
from siyu.segments import facade, repository, service
from siyu.segments.rules import RuleInvalid, rule_json_schema
from siyu.segments.schemas import (
    MembershipOut,
    PreviewIn,
    PreviewOut,
    SampleMember,
    SegmentIn,
    SegmentOut,
    SegmentPatch,
    SnapshotIn,
    SnapshotOut,
)
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

router = APIRouter(tags=["segments"])
Reader = Annotated[MerchantCtx, Depends(merchant_context(Scope.SEGMENTS_READ))]
Writer = Annotated[MerchantCtx, Depends(merchant_context(Scope.SEGMENTS_WRITE))]
Paging = Annotated[PageRequest, Depends(page_params)]
CREATED = status.HTTP_201_CREATED


def _in_body(exc: RuleInvalid) -> RuleInvalid:
    return exc.under("/rule")


def _preview(result: service.Preview) -> PreviewOut:
    return PreviewOut(count=result.count, sample=[SampleMember(id=i, stage=s) for i, s in result.sample])


@router.get("/segments/schema", summary="The JSON Schema of the segment rule language")
def schema(ctx: Reader) -> dict[str, Any]:
    return rule_json_schema()


@router.post("/segments", status_code=CREATED, summary="Save a segment (a name and a rule)")
def create_segment(body: SegmentIn, ctx: Writer) -> SegmentOut:
    try:
        segment = service.create_segment(
            ctx.session,
            ctx.merchant_id,
            name=body.name,
            description=body.description,
            rule=body.rule,
            now=utcnow(),
        )
    except RuleInvalid as exc:
        raise _in_body(exc) from None
    return SegmentOut.model_validate(segment)


@router.get("/segments", summary="The merchant's segments (cursor pages, oldest first)")
def list_segments(ctx: Reader, page: Paging) -> Page[SegmentOut]:
    rows = service.list_segments(ctx.session, ctx.merchant_id, page)
    items, cursor = make_page(rows, page, lambda s: s.id)
    return Page[SegmentOut](items=[SegmentOut.model_validate(s) for s in items], next_cursor=cursor)


@router.post("/segments/preview", summary="Count and sample the members of an ad-hoc rule (nothing saved)")
def preview_rule(body: PreviewIn, ctx: Reader) -> PreviewOut:
    try:
        service.parse(ctx.session, ctx.merchant_id, body.rule, now=utcnow())
        result = service.preview(ctx.session, ctx.merchant_id, body.rule, now=utcnow(), sample=body.sample)
    except RuleInvalid as exc:
        raise _in_body(exc) from None
    return _preview(result)


@router.get("/segments/snapshots/{snapshot_id}", summary="A snapshot: its rule, purpose and size")
def get_snapshot(snapshot_id: str, ctx: Reader) -> SnapshotOut:
    return SnapshotOut.model_validate(service.require_snapshot(ctx.session, ctx.merchant_id, snapshot_id))


@router.get(
    "/segments/snapshots/{snapshot_id}/members", summary="A snapshot's member ids (cursor pages, id order)"
)
def snapshot_members(snapshot_id: str, ctx: Reader, page: Paging) -> Page[str]:
    service.require_snapshot(ctx.session, ctx.merchant_id, snapshot_id)
    ids = repository.snapshot_member_ids(
        ctx.session, ctx.merchant_id, snapshot_id, after=page.after_id, limit=min(page.limit, MAX_LIMIT) + 1
    )
    items, cursor = make_page(ids, page, lambda i: i)
    return Page[str](items=items, next_cursor=cursor)


@router.get("/segments/{segment_id}", summary="One segment")
def get_segment(segment_id: str, ctx: Reader) -> SegmentOut:
    return SegmentOut.model_validate(service.require_segment(ctx.session, ctx.merchant_id, segment_id))


@router.patch("/segments/{segment_id}", summary="Rename a segment or change its rule")
def update_segment(segment_id: str, body: SegmentPatch, ctx: Writer) -> SegmentOut:
    try:
        segment = service.update_segment(
            ctx.session, ctx.merchant_id, segment_id, body.model_dump(exclude_unset=True), now=utcnow()
        )
    except RuleInvalid as exc:
        raise _in_body(exc) from None
    return SegmentOut.model_validate(segment)


@router.delete(
    "/segments/{segment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a segment (archived: snapshots that name it stay readable)",
)
def delete_segment(segment_id: str, ctx: Writer) -> Response:
    service.archive_segment(ctx.session, ctx.merchant_id, segment_id, now=utcnow())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/segments/{segment_id}/preview", summary="Count and sample a saved segment's members now")
def preview_segment(
    segment_id: str,
    ctx: Reader,
    sample: Annotated[int, Query(ge=0, le=100, description="how many matching members to show")] = 20,
) -> PreviewOut:
    segment = service.require_segment(ctx.session, ctx.merchant_id, segment_id)
    return _preview(service.preview(ctx.session, ctx.merchant_id, segment.rule, now=utcnow(), sample=sample))


@router.post(
    "/segments/{segment_id}/snapshots",
    status_code=CREATED,
    summary="Freeze the segment's members now (snapshot)",
)
def create_snapshot(segment_id: str, ctx: Writer, body: SnapshotIn | None = None) -> SnapshotOut:
    purpose = body.purpose if body is not None else "api"
    snapshot = service.materialise(ctx.session, ctx.merchant_id, segment_id, now=utcnow(), purpose=purpose)
    return SnapshotOut.model_validate(snapshot)


@router.get("/segments/{segment_id}/members/{member_id}", summary="Is this member in the segment now?")
def membership(segment_id: str, member_id: str, ctx: Reader) -> MembershipOut:
    segment = service.require_segment(ctx.session, ctx.merchant_id, segment_id)
    current = members.require_member(ctx.session, ctx.merchant_id, member_id)
    found = facade.contains(ctx.session, ctx.merchant_id, segment.rule, current, now=utcnow())
    return MembershipOut(segment_id=segment.id, member_id=current, member=found)
