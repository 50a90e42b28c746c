"""``POST /imports/members|orders`` (multipart upload), ``GET /imports``, ``GET /imports/{id}``,
``GET /imports/{id}/rejected`` (CSV)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from siyu.kit.pagination import Page, PageRequest, make_page, page_params
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import NotFound, UnprocessableEntity
from siyu.tenancy.auth import MerchantCtx, merchant_context
from siyu.tenancy.scopes import Scope

from . import facade
from .facade import ImportKind, ImportOptions, ImportSummary, Rejection
from .rejects import csv_chunks
from .schemas import ImportOut, RejectedRowOut

router = APIRouter(tags=["imports"])
Importer = Annotated[MerchantCtx, Depends(merchant_context(Scope.IMPORTS_WRITE))]
SHOWN_REJECTIONS = 100
API_PREFIX = "/api/v1"

MAPPING_HELP = (
    'JSON object field → column header overriding the default aliases, e.g. {"phone": "手机", '
    '"amount": "实收"}; an empty header leaves a field unmapped'
)


def _vault(request: Request) -> IdentifierVault:
    vault: IdentifierVault = request.app.state.vault
    return vault


def _out(summary: ImportSummary, shown: list[Rejection] | None = None) -> ImportOut:
    has_rows = summary.origin == "api" and summary.rejected > 0
    return ImportOut(
        id=summary.import_id,
        kind=summary.kind,
        status=summary.status,
        file_name=summary.file_name,
        file_format=summary.file_format,
        rows_read=summary.rows_read,
        accepted=summary.accepted,
        duplicates=summary.duplicates,
        rejected=summary.rejected,
        columns=list(summary.columns),
        mapping=summary.mapping,
        ignored_columns=list(summary.ignored_columns),
        error=summary.error,
        origin=summary.origin,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
        rejected_rows=[
            RejectedRowOut(line=r.line, reason=r.reason, column=r.column, values=r.values)
            for r in shown or []
        ],
        rejected_rows_url=f"{API_PREFIX}/imports/{summary.import_id}/rejected" if has_rows else None,
    )


def _overrides(mapping: str | None) -> dict[str, str]:
    if not mapping or not mapping.strip():
        return {}
    try:
        data = json.loads(mapping)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        detail = 'mapping must be a JSON object of field → column header, e.g. {"phone": "手机"}'
        raise UnprocessableEntity(
            detail, extra={"errors": [{"in": "form", "parameter": "mapping", "detail": detail}]}
        )
    return data


def _run(
    request: Request,
    ctx: MerchantCtx,
    kind: ImportKind,
    upload: UploadFile,
    mapping: str | None,
    encoding: str | None,
    sheet: str | None,
) -> ImportOut:
    session = ctx.session

    @contextmanager
    def chunk_transaction() -> Iterator[Session]:
        """Each chunk commits the request's session: what is done stays done."""
        yield session
        session.commit()
        session.expunge_all()

    vault = _vault(request)
    store = facade.store_rejections_sink(vault, ctx.merchant_id)
    shown: list[Rejection] = []

    def sink(chunk_session: Session, import_id: str, rejections: list[Rejection]) -> None:
        store(chunk_session, import_id, rejections)
        shown.extend(rejections[: SHOWN_REJECTIONS - len(shown)])

    summary = facade.import_file(
        chunk_transaction,
        vault,
        ctx.merchant_id,
        kind,
        upload.file,
        name=PurePath((upload.filename or "upload").replace("\\", "/")).name or "upload",
        options=ImportOptions(
            overrides=_overrides(mapping),
            encoding=encoding or None,
            sheet=sheet or None,
            encoding_option="the form field encoding=gb18030",
        ),
        origin="api",
        actor=ctx.actor,
        rejects=sink,
    )
    return _out(summary, shown)


UploadedFile = Annotated[UploadFile, File(description="CSV (UTF-8, or see `encoding`) or .xlsx")]
MappingField = Annotated[str | None, Form(description=MAPPING_HELP)]
EncodingField = Annotated[
    str | None, Form(description="CSV text encoding: utf-8 (default, BOM accepted) or gb18030/gbk")
]
SheetField = Annotated[str | None, Form(description="XLSX sheet name (default: the first sheet)")]


@router.post("/imports/members", summary="Import members from a CSV or XLSX file (idempotent by row)")
def import_members(
    request: Request,
    ctx: Importer,
    file: UploadedFile,
    mapping: MappingField = None,
    encoding: EncodingField = None,
    sheet: SheetField = None,
) -> ImportOut:
    """Each row becomes a `member_joined` event (plus its tags); see docs/imports.md."""
    return _run(request, ctx, ImportKind.MEMBERS, file, mapping, encoding, sheet)


@router.post("/imports/orders", summary="Import orders from a CSV or XLSX file (idempotent by order id)")
def import_orders(
    request: Request,
    ctx: Importer,
    file: UploadedFile,
    mapping: MappingField = None,
    encoding: EncodingField = None,
    sheet: SheetField = None,
) -> ImportOut:
    """Each row becomes an `order_paid` event (and `order_refunded` with a refund column)."""
    return _run(request, ctx, ImportKind.ORDERS, file, mapping, encoding, sheet)


@router.get("/imports", summary="Imports of the merchant, oldest first")
def list_imports(ctx: Importer, page: Annotated[PageRequest, Depends(page_params)]) -> Page[ImportOut]:
    rows = facade.list_imports(ctx.session, ctx.merchant_id, page)
    items, cursor = make_page(rows, page, lambda s: s.import_id)
    return Page(items=[_out(s) for s in items], next_cursor=cursor)


@router.get("/imports/{import_id}", summary="One import's report")
def get_import(import_id: str, ctx: Importer) -> ImportOut:
    summary = facade.get_import(ctx.session, ctx.merchant_id, import_id)
    if summary is None:
        raise NotFound(f"no import {import_id}")
    return _out(summary)


@router.get(
    "/imports/{import_id}/rejected",
    summary="The rejected rows of an upload, as CSV (kept 7 days)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def rejected_csv(import_id: str, request: Request, ctx: Importer) -> StreamingResponse:
    summary = facade.get_import(ctx.session, ctx.merchant_id, import_id)
    if summary is None:
        raise NotFound(f"no import {import_id}")
    rows = facade.rejected_rows(ctx.session, _vault(request), ctx.merchant_id, import_id)
    return StreamingResponse(
        csv_chunks(summary.columns, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{import_id}.rejected.csv"'},
    )
