"""Coupons rules (no HTTP, never commits): templates, issuing, promo codes, expiry, member
listeners. Redemption lives in ``redemption.py``.

Issuing (the hot path) is, after reading the template and the member: insert the coupon, count
the claim against the member's limits (one upsert for lifetime and period), take one from a
stock bucket — the only contended row, locked last, for the shortest time. A refusal after a
write undoes that write in the same transaction (delete the coupon, un-count the claim), so a
caller that catches :class:`CouponRefused` and goes on (a campaign issuing to many members)
keeps nothing of the refused claim. On PostgreSQL the usual claim does all of it in one
statement (:func:`repository.claim_fast`); the steps above are its fallback and the SQLite path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Row
from sqlalchemy.orm import Session

from siyu.coupons import codes as codes_
from siyu.coupons import repository as repo
from siyu.coupons.models import (
    CodeMode,
    Coupon,
    CouponKind,
    CouponSource,
    CouponStatus,
    CouponTemplate,
    LimitPeriod,
    TemplateStatus,
)
from siyu.coupons.schemas import TemplateIn, TemplatePatch
from siyu.coupons.views import (
    CodesGenerated,
    CouponRefused,
    CouponView,
    IssuedCoupon,
    PromoCodeView,
    TemplateView,
)
from siyu.db import AsyncStatements
from siyu.kit.clock import as_utc
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pagination import Page, PageRequest, make_page
from siyu.kit.problems import Conflict, NotFound, UnprocessableEntity
from siyu.members import facade as members
from siyu.members.rights import on_erase, on_export
from siyu.members.service import MergeGroup, on_merges
from siyu.tenancy import facade as tenancy

MAX_CLOCK_SKEW = timedelta(minutes=5)
BUSY_PAUSES = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064)
"""Seconds between attempts to take stock while every bucket with stock left is held (~0.13 s)."""
TRANSITIONS: dict[str, tuple[TemplateStatus, tuple[TemplateStatus, ...]]] = {
    "activate": (TemplateStatus.ACTIVE, (TemplateStatus.DRAFT, TemplateStatus.PAUSED)),
    "pause": (TemplateStatus.PAUSED, (TemplateStatus.ACTIVE,)),
    "end": (TemplateStatus.ENDED, (TemplateStatus.DRAFT, TemplateStatus.ACTIVE, TemplateStatus.PAUSED)),
}


class UnknownCode(NotFound):
    def __init__(self, code: str) -> None:
        super().__init__(
            f"no coupon or promo code {codes_.display(code)}", extra={"code": codes_.display(code)}
        )
        self.code = code


def invalid(pointer: str, detail: str, code: str = "invalid") -> UnprocessableEntity:
    return UnprocessableEntity(
        detail, extra={"errors": [{"pointer": pointer, "detail": detail, "code": code}]}
    )


# --- templates --------------------------------------------------------------------------------


def _template_errors(spec: TemplateIn) -> list[tuple[str, str]]:
    """Kind-specific and cross-field rules (Pydantic checked each field alone)."""
    errors: list[tuple[str, str]] = []
    kind = spec.kind
    allowed = {
        CouponKind.CASH: {"value_fen"},
        CouponKind.DISCOUNT: {"discount_bp", "cap_fen"},
        CouponKind.EXCHANGE: {"item_name", "value_fen"},
        CouponKind.THRESHOLD: {"threshold_fen", "value_fen"},
    }[kind]
    for name in ("value_fen", "discount_bp", "cap_fen", "item_name", "threshold_fen"):
        if getattr(spec, name) is not None and name not in allowed:
            errors.append((f"/{name}", f"a {kind.value} coupon has no {name}"))
    required = {
        CouponKind.CASH: ("value_fen",),
        CouponKind.DISCOUNT: ("discount_bp",),
        CouponKind.EXCHANGE: ("item_name",),
        CouponKind.THRESHOLD: ("threshold_fen", "value_fen"),
    }[kind]
    for name in required:
        if getattr(spec, name) is None:
            errors.append((f"/{name}", f"a {kind.value} coupon needs {name}"))
    if (
        kind is CouponKind.THRESHOLD
        and spec.threshold_fen is not None
        and spec.value_fen is not None
        and spec.threshold_fen <= spec.value_fen
    ):
        errors.append(
            ("/threshold_fen", "threshold_fen must be greater than value_fen (spend more than you get off)")
        )
    if spec.valid_until is None and spec.valid_days is None:
        errors.append(("/valid_until", "give valid_until (a fixed window) or valid_days (days after claim)"))
    if spec.valid_from is not None and spec.valid_until is not None and spec.valid_from >= spec.valid_until:
        errors.append(("/valid_until", "valid_until must be after valid_from"))
    if (spec.period is None) != (spec.period_limit is None):
        errors.append(("/period_limit", "period and period_limit go together"))
    if spec.code_mode is CodeMode.SHARED:
        shared = codes_.normalise(spec.shared_code or "")
        if not codes_.SHARED_CODE.match(shared):
            errors.append(("/shared_code", "a shared code is 4–32 letters and digits"))
        elif len(shared) == codes_.CODE_LENGTH:
            errors.append(
                ("/shared_code", f"{codes_.CODE_LENGTH} characters is the length of generated codes")
            )
    elif spec.shared_code is not None:
        errors.append(("/shared_code", "only a template with code_mode shared has a shared code"))
    return errors


def create_template(session: Session, merchant_id: str, spec: TemplateIn, *, now: datetime) -> TemplateView:
    errors = _template_errors(spec)
    if errors:
        raise UnprocessableEntity(
            f"{len(errors)} invalid field{'s' if len(errors) != 1 else ''}",
            extra={"errors": [{"pointer": p, "detail": d, "code": "invalid"} for p, d in errors]},
        )
    merchant = tenancy.get_merchant(session, merchant_id)
    if merchant is None:  # pragma: no cover - the key's merchant exists
        raise NotFound(f"no merchant {merchant_id}")
    shared = codes_.normalise(spec.shared_code) if spec.shared_code else None
    if shared is not None and repo.template_by_shared_code(session, merchant_id, shared) is not None:
        raise Conflict(f"the shared code {shared} is already used by another template")
    template = CouponTemplate(
        merchant_id=merchant_id,
        id=new_id(IdKind.COUPON_TEMPLATE),
        name=spec.name,
        kind=spec.kind.value,
        value_fen=spec.value_fen,
        discount_bp=spec.discount_bp,
        cap_fen=spec.cap_fen,
        item_name=spec.item_name,
        threshold_fen=spec.threshold_fen,
        min_spend_fen=spec.min_spend_fen,
        code_mode=spec.code_mode.value,
        shared_code=shared,
        total_stock=spec.total_stock,
        budget_fen=spec.budget_fen,
        budget_used_fen=0,
        redeemed_count=0,
        per_member_limit=spec.per_member_limit,
        period=spec.period.value if spec.period else None,
        period_limit=spec.period_limit,
        valid_from=as_utc(spec.valid_from) if spec.valid_from else None,
        valid_until=as_utc(spec.valid_until) if spec.valid_until else None,
        valid_days=spec.valid_days,
        store_ids=list(spec.store_ids),
        channels=list(spec.channels),
        stacking=spec.stacking.value,
        status=TemplateStatus.DRAFT.value,
        currency=spec.currency or merchant.currency,
        created_at=now,
        updated_at=now,
    )
    session.add(template)
    session.flush()
    repo.create_buckets(session, merchant_id, template.id, spec.total_stock)
    return template_view(template, spec.total_stock)


def template_view(t: CouponTemplate | Row[Any], remaining: int) -> TemplateView:
    """``t``: the ORM row, or a Core row with its columns (:func:`repo.template_with_remaining`)."""
    return TemplateView(
        id=t.id,
        name=t.name,
        kind=t.kind,
        status=t.status,
        code_mode=t.code_mode,
        shared_code=t.shared_code,
        value_fen=t.value_fen,
        discount_bp=t.discount_bp,
        cap_fen=t.cap_fen,
        item_name=t.item_name,
        threshold_fen=t.threshold_fen,
        min_spend_fen=t.min_spend_fen,
        stock=t.total_stock,
        issued=t.total_stock - remaining,
        remaining=remaining,
        redeemed=t.redeemed_count,
        budget_fen=t.budget_fen,
        budget_used_fen=t.budget_used_fen,
        per_member_limit=t.per_member_limit,
        period=t.period,
        period_limit=t.period_limit,
        valid_from=t.valid_from,
        valid_until=t.valid_until,
        valid_days=t.valid_days,
        store_ids=list(t.store_ids or []),
        channels=list(t.channels or []),
        stacking=t.stacking,
        currency=t.currency,
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


def get_template(session: Session, merchant_id: str, template_id: str) -> TemplateView | None:
    found = repo.template_with_remaining(session, merchant_id, template_id)
    return template_view(*found) if found else None


def _existing(session: Session, merchant_id: str, template_id: str) -> TemplateView:
    view = get_template(session, merchant_id, template_id)
    if view is None:
        raise NotFound(f"no coupon template {template_id}")
    return view


def list_templates(
    session: Session, merchant_id: str, page: PageRequest, *, status: TemplateStatus | None = None
) -> Page[TemplateView]:
    rows = repo.list_templates(session, merchant_id, page, status=status.value if status else None)
    items, cursor = make_page(rows, page, lambda r: r[0].id)
    return Page[TemplateView](items=[template_view(*r) for r in items], next_cursor=cursor)


def update_template(
    session: Session, merchant_id: str, template_id: str, patch: TemplatePatch, *, now: datetime
) -> TemplateView:
    template = repo.lock_template(session, merchant_id, template_id)
    if template is None:
        raise NotFound(f"no coupon template {template_id}")
    fields = patch.model_fields_set
    if template.status == TemplateStatus.ENDED and fields:
        raise Conflict(f"coupon template {template_id} has ended")
    if "valid_until" in fields:
        if patch.valid_until is None:
            if template.valid_days is None:
                raise invalid("/valid_until", "a template without valid_days needs valid_until")
        elif template.valid_from is not None and as_utc(patch.valid_until) <= template.valid_from:
            raise invalid("/valid_until", "valid_until must be after valid_from")
        template.valid_until = as_utc(patch.valid_until) if patch.valid_until else None
    if "name" in fields and patch.name is not None:
        template.name = patch.name
    if "store_ids" in fields:
        template.store_ids = list(patch.store_ids or [])
    if "channels" in fields:
        template.channels = list(patch.channels or [])
    if "stacking" in fields and patch.stacking is not None:
        template.stacking = patch.stacking.value
    template.updated_at = now
    session.flush()
    if "budget_fen" in fields and not repo.set_budget(
        session, merchant_id, template_id, patch.budget_fen, now
    ):
        raise Conflict("the new budget is below the discount already granted")
    return _existing(session, merchant_id, template_id)


def change_status(
    session: Session, merchant_id: str, template_id: str, action: str, *, now: datetime
) -> TemplateView:
    """``activate`` (draft/paused → active), ``pause`` (active → paused), ``end`` (→ ended)."""
    to, allowed = TRANSITIONS[action]
    current = _existing(session, merchant_id, template_id)
    if current.status == to.value:
        return current
    if not repo.set_status(session, merchant_id, template_id, to.value, [s.value for s in allowed], now):
        raise Conflict(f"cannot {action} a coupon template that is {current.status}")
    return _existing(session, merchant_id, template_id)


def add_stock(
    session: Session, merchant_id: str, template_id: str, count: int, *, now: datetime
) -> TemplateView:
    current = _existing(session, merchant_id, template_id)
    if current.status == TemplateStatus.ENDED:
        raise Conflict(f"coupon template {template_id} has ended")
    repo.add_stock(session, merchant_id, template_id, count, now)
    return _existing(session, merchant_id, template_id)


def generate_codes(
    session: Session, merchant_id: str, template_id: str, count: int, *, now: datetime
) -> CodesGenerated:
    """``count`` new unique promo codes for a ``unique`` template (a clash is simply redrawn)."""
    current = _existing(session, merchant_id, template_id)
    if current.code_mode != CodeMode.UNIQUE:
        raise Conflict(f"coupon template {template_id} has code_mode {current.code_mode}, not unique")
    if current.status == TemplateStatus.ENDED:
        raise Conflict(f"coupon template {template_id} has ended")
    made: list[str] = []
    while len(made) < count:
        rows = [
            {
                "merchant_id": merchant_id,
                "code": codes_.new_code(),
                "template_id": template_id,
                "created_at": now,
            }
            for _ in range(count - len(made))
        ]
        made.extend(repo.insert_codes(session, rows))
    total = repo.count_codes(session, merchant_id, template_id)
    return CodesGenerated(template_id, len(made), total, [codes_.display(c) for c in made])


def list_codes(
    session: Session, merchant_id: str, template_id: str, page: PageRequest
) -> Page[PromoCodeView]:
    _existing(session, merchant_id, template_id)
    rows = repo.list_codes(session, merchant_id, template_id, page)
    items, cursor = make_page(rows, page, lambda c: c.code)
    views = [
        PromoCodeView(
            codes_.display(c.code),
            c.template_id,
            c.coupon_id is not None,
            c.coupon_id,
            c.claimed_at,
            c.created_at,
        )
        for c in items
    ]
    return Page[PromoCodeView](items=views, next_cursor=cursor)


# --- issuing ----------------------------------------------------------------------------------


def _claimant(session: Session, merchant_id: str, member_id: str) -> str:
    found = members.find_member(session, merchant_id, member_id)
    if found is None:
        raise NotFound(f"no member {member_id}")
    if found.erased:
        raise CouponRefused("member_erased", f"member {member_id} was erased")
    return found.id


def period_key(period: LimitPeriod, now: datetime, timezone: str) -> str:
    """The merchant-local day (``2026-11-28``), ISO week (``2026-W48``) or month (``2026-11``)."""
    local = now.astimezone(ZoneInfo(timezone)).date()
    if period is LimitPeriod.DAY:
        return local.isoformat()
    if period is LimitPeriod.WEEK:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


def _caps(session: Session, template: repo.IssueTerms, now: datetime) -> list[tuple[str, int]]:
    caps: list[tuple[str, int]] = []
    if template.per_member_limit is not None:
        caps.append((repo.LIFETIME, template.per_member_limit))
    if template.period is not None and template.period_limit is not None:
        merchant = tenancy.get_merchant(session, template.merchant_id)
        timezone = merchant.timezone if merchant else "Asia/Shanghai"
        caps.append((period_key(LimitPeriod(template.period), now, timezone), template.period_limit))
    return caps


def _validity(template: repo.IssueTerms, now: datetime) -> tuple[datetime, datetime]:
    """Fixed window, or ``valid_days`` × 24 h from the claim (never past the template's end)."""
    if template.valid_days is not None:
        until = now + timedelta(days=template.valid_days)
        if template.valid_until is not None:
            until = min(until, template.valid_until)
        return now, until
    assert template.valid_until is not None
    return template.valid_from or now, template.valid_until


def _template_refusal(
    template: repo.IssueTerms | None, template_id: str, now: datetime
) -> CouponRefused | NotFound | None:
    """Why no coupon of this template can be issued now (unknown, not active, ended, budget
    used up), or ``None``."""
    if template is None:
        return NotFound(f"no coupon template {template_id}")
    if template.status != TemplateStatus.ACTIVE:
        return CouponRefused("not_active", f"coupon template {template_id} is {template.status}")
    if template.valid_until is not None and now >= template.valid_until:
        return CouponRefused(
            "expired_template", f"coupon template {template_id} ended at {template.valid_until}"
        )
    if template.budget_fen is not None and template.budget_used_fen >= template.budget_fen:
        return CouponRefused("budget_exhausted", f"the budget of coupon template {template_id} is used up")
    return None


def _coupon_row(
    merchant_id: str,
    template_id: str,
    owner: str,
    source: str,
    source_ref: str | None,
    valid_from: datetime,
    valid_until: datetime,
    now: datetime,
) -> dict[str, Any]:
    """A new available coupon's row, with a fresh id and code."""
    return {
        "merchant_id": merchant_id,
        "id": new_id(IdKind.COUPON),
        "template_id": template_id,
        "member_id": owner,
        "issued_to": owner,
        "code": codes_.new_code(),
        "status": CouponStatus.AVAILABLE.value,
        "source": source,
        "source_ref": source_ref,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "issued_at": now,
        "updated_at": now,
    }


def issue(
    session: Session,
    merchant_id: str,
    template_id: str,
    member_id: str,
    *,
    source: str,
    source_ref: str | None,
    now: datetime,
) -> IssuedCoupon:
    """Issue one coupon of a template to a member (see the module docstring for the order)."""
    if source not in CouponSource._value2member_map_:
        raise invalid("/source", f"unknown source {source!r}")
    owner = _claimant(session, merchant_id, member_id)
    if source_ref is None and repo.is_postgres(session):
        hot: dict[str, Any] = {
            "merchant_id": merchant_id,
            "template_id": template_id,
            "member_id": owner,
            "id": new_id(IdKind.COUPON),
            "code": codes_.new_code(),
            "status": CouponStatus.AVAILABLE.value,
            "source": source,
            "issued_at": now,
        }
        fast = repo.claim_fast(session, hot)
        if fast.valid_from is not None and fast.valid_until is not None:
            return IssuedCoupon(
                hot["id"], codes_.display(hot["code"]), template_id, owner, fast.valid_from, fast.valid_until
            )
        if fast.counted:
            repo.unbump_counts(session, merchant_id, template_id, owner, [repo.LIFETIME])
        elif fast.found and fast.limit is not None:
            raise _limit_refusal(owner, template_id, [(repo.LIFETIME, fast.limit)], set())
    template = repo.issue_terms(session, merchant_id, template_id)
    refusal = _template_refusal(template, template_id, now)
    if refusal is not None or template is None:
        raise refusal or NotFound(f"no coupon template {template_id}")
    valid_from, valid_until = _validity(template, now)
    row = _coupon_row(merchant_id, template_id, owner, source, source_ref, valid_from, valid_until, now)
    caps = _caps(session, template, now)
    if source_ref is None and repo.is_postgres(session):
        counted, inserted = repo.claim_in_one_statement(session, row, caps)
        if inserted:
            return IssuedCoupon(
                row["id"], codes_.display(row["code"]), template_id, owner, valid_from, valid_until
            )
        repo.unbump_counts(session, merchant_id, template_id, owner, counted)
        if len(counted) < len(caps):
            raise _limit_refusal(owner, template_id, caps, counted)
    if source_ref is None:  # no free bucket (or SQLite): step by step, the stock last
        repo.insert_coupon(session, row)
    elif not repo.insert_coupon_once(session, row):
        first = repo.find_issued(session, merchant_id, template_id, owner, source, source_ref)
        if first is None:  # pragma: no cover - the first one was removed under us
            raise Conflict("a concurrent claim with the same source_ref changed; retry")
        return IssuedCoupon(
            first.id,
            codes_.display(first.code),
            template_id,
            first.member_id,
            first.valid_from,
            first.valid_until,
            True,
        )
    counted = repo.bump_counts(session, merchant_id, template_id, owner, caps) if caps else set()
    if len(counted) < len(caps):
        repo.unbump_counts(session, merchant_id, template_id, owner, counted)
        repo.delete_coupon(session, merchant_id, row["id"])
        raise _limit_refusal(owner, template_id, caps, counted)
    refusal = _take_stock(session, merchant_id, template_id)
    if refusal is not None:
        repo.unbump_counts(session, merchant_id, template_id, owner, counted)
        repo.delete_coupon(session, merchant_id, row["id"])
        raise refusal
    return IssuedCoupon(row["id"], codes_.display(row["code"]), template_id, owner, valid_from, valid_until)


IssueResult = IssuedCoupon | CouponRefused | NotFound
"""One request's answer in :func:`issue_many`: the coupon, or the refusal :func:`issue` would raise."""


def issue_many(
    session: Session,
    merchant_id: str,
    template_id: str,
    requests: Sequence[tuple[str, str]],
    *,
    source: str,
    now: datetime,
) -> list[IssueResult]:
    """Issue one coupon of a template to each ``(member_id, source_ref)`` — a campaign's
    fan-out — in a handful of multi-row statements instead of ~8 per coupon; the answers in the
    order of ``requests``. Each answer is what :func:`issue` would give that request:

    * the same checks (template status, end, budget; member found and not erased; per-member and
      per-period limits; stock) with the same refusals, returned rather than raised;
    * idempotent by ``source_ref`` like :func:`issue` (a request already issued answers its first
      coupon with ``replayed=True``);
    * in order: when the stock runs out, the earliest requests have the coupons.

    A member asked for twice (or two ids merged into one member) is served in a later round, so
    one statement never counts a member twice; rounds keep the limits exact. A request the batch
    cannot place (its row skipped by a conflict but no coupon found under its key, e.g. a code
    collision) goes through :func:`issue` alone, in a savepoint.
    """
    if source not in CouponSource._value2member_map_:
        raise invalid("/source", f"unknown source {source!r}")
    results: list[IssueResult | None] = [None] * len(requests)
    template = repo.issue_terms(session, merchant_id, template_id)
    refusal = _template_refusal(template, template_id, now)
    if refusal is not None or template is None:
        return [refusal or NotFound(f"no coupon template {template_id}")] * len(requests)
    found = members.find_members(session, merchant_id, [member_id for member_id, _ in requests])
    pending: list[tuple[int, str, str]] = []
    for index, (member_id, source_ref) in enumerate(requests):
        ref = found.get(member_id)
        if ref is None:
            results[index] = NotFound(f"no member {member_id}")
        elif ref.erased:
            results[index] = CouponRefused("member_erased", f"member {member_id} was erased")
        else:
            pending.append((index, ref.id, source_ref))
    terms = _BatchTerms(template_id, source, now, *_validity(template, now), _caps(session, template, now))
    while pending:
        this_round: list[tuple[int, str, str]] = []
        later: list[tuple[int, str, str]] = []
        owners: set[str] = set()
        for request in pending:
            (later if request[1] in owners else this_round).append(request)
            owners.add(request[1])
        _issue_round(session, merchant_id, terms, this_round, results)
        pending = later
    for index, (member_id, source_ref) in enumerate(requests):
        if results[index] is None:  # the batch could not place it: the one-by-one path decides
            try:
                with session.begin_nested():
                    results[index] = issue(
                        session,
                        merchant_id,
                        template_id,
                        member_id,
                        source=source,
                        source_ref=source_ref,
                        now=now,
                    )
            except (CouponRefused, NotFound) as exc:
                results[index] = exc
    answered = [r for r in results if r is not None]
    assert len(answered) == len(requests), "every request is answered"
    return answered


@dataclass(frozen=True, slots=True)
class _BatchTerms:
    template_id: str
    source: str
    now: datetime
    valid_from: datetime
    valid_until: datetime
    caps: list[tuple[str, int]]


def _issue_round(
    session: Session,
    merchant_id: str,
    terms: _BatchTerms,
    requests: list[tuple[int, str, str]],
    results: list[IssueResult | None],
) -> None:
    """One round of :func:`issue_many` (each member at most once): insert, count, take stock —
    the order of :func:`issue` — undoing the rows of the requests refused at each step."""
    template_id, now = terms.template_id, terms.now
    rows = [
        _coupon_row(
            merchant_id,
            template_id,
            owner,
            terms.source,
            source_ref,
            terms.valid_from,
            terms.valid_until,
            now,
        )
        for _, owner, source_ref in requests
    ]
    inserted = repo.insert_coupons_once(session, rows)
    fresh = [(request, row) for request, row in zip(requests, rows, strict=True) if row["id"] in inserted]
    skipped = [request for request, row in zip(requests, rows, strict=True) if row["id"] not in inserted]
    if skipped:
        first = repo.find_issued_many(
            session, merchant_id, template_id, terms.source, [r[2] for r in skipped]
        )
        for index, owner, source_ref in skipped:
            coupon = first.get((owner, source_ref))
            if coupon is not None:
                results[index] = IssuedCoupon(
                    coupon.id,
                    codes_.display(coupon.code),
                    template_id,
                    coupon.member_id,
                    coupon.valid_from,
                    coupon.valid_until,
                    True,
                )
    caps = terms.caps
    if caps and fresh:
        counted = repo.bump_counts_many(session, merchant_id, template_id, [r[0][1] for r in fresh], caps)
        over = [(request, row) for request, row in fresh if len(counted.get(request[1], ())) < len(caps)]
        if over:
            repo.unbump_counts_many(
                session, merchant_id, template_id, {r[0][1]: counted.get(r[0][1], set()) for r in over}
            )
            repo.delete_coupons(session, merchant_id, [row["id"] for _, row in over])
            for (index, owner, _), _row in over:
                results[index] = _limit_refusal(owner, template_id, caps, counted.get(owner, set()))
            refused = {row["id"] for _, row in over}
            fresh = [(request, row) for request, row in fresh if row["id"] not in refused]
    taken = repo.take_stock_many(session, merchant_id, template_id, len(fresh))
    short = fresh[taken:]
    if short:
        if caps:
            keys = {key for key, _ in caps}
            repo.unbump_counts_many(session, merchant_id, template_id, {r[0][1]: keys for r in short})
        repo.delete_coupons(session, merchant_id, [row["id"] for _, row in short])
        for (index, _, _), _row in short:
            results[index] = CouponRefused("out_of_stock", f"coupon template {template_id} is out of stock")
    for (index, owner, _), row in fresh[:taken]:
        results[index] = IssuedCoupon(
            row["id"], codes_.display(row["code"]), template_id, owner, terms.valid_from, terms.valid_until
        )


def _fast_claim_params(
    session: Session,
    merchant_id: str,
    template_id: str,
    member_id: str,
    *,
    source: str,
    source_ref: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """The parameters of :func:`repository.claim_alone`, or ``None`` when a claim must run in the
    request's session: not PostgreSQL, a ``source_ref`` (idempotent issuing), or a session that
    already holds a transaction (an ``Idempotency-Key`` reserved in it: the coupon must commit
    with the key's answer)."""
    if source not in CouponSource._value2member_map_:
        raise invalid("/source", f"unknown source {source!r}")
    bind = session.get_bind()
    if (
        source_ref is not None
        or session.in_transaction()
        or not isinstance(bind, Engine)
        or bind.dialect.name != "postgresql"
    ):
        return None
    return {
        "m": merchant_id,
        "t": template_id,
        "member": member_id,
        "id": new_id(IdKind.COUPON),
        "code": codes_.new_code(),
        "source": source,
        "now": now,
    }


def _fast_claim_outcome(params: dict[str, Any], done: repo.LoneClaim | None) -> IssuedCoupon | None:
    """The coupon :func:`repository.claim_alone` issued, its refusal (raised), or ``None``: the
    stepwise path must answer."""
    if done is None:
        return None
    template_id = params["t"]
    if done.member_id is not None:
        valid_from, valid_until = done.valid_from, done.valid_until
        assert valid_from is not None
        assert valid_until is not None
        code = codes_.display(params["code"])
        return IssuedCoupon(params["id"], code, template_id, done.member_id, valid_from, valid_until)
    if done.picked and done.limit is not None and done.owner is not None:
        # the template, the member and a free bucket were there: the lifetime limit refused
        raise _limit_refusal(done.owner, template_id, [(repo.LIFETIME, done.limit)], set())
    return None


def claim(
    session: Session,
    merchant_id: str,
    template_id: str,
    member_id: str,
    *,
    source: str,
    source_ref: str | None,
    now: datetime,
) -> IssuedCoupon:
    """The API's claim: :func:`issue`, but on PostgreSQL, when the request's session holds no
    transaction yet (no ``Idempotency-Key`` reserved, nothing else written) and there is no
    ``source_ref``, first as ONE autocommitted statement outside the session
    (:func:`repository.claim_alone`): one round trip, no ``BEGIN``/``COMMIT``, row locks held only
    while the statement runs. When it issues nothing (a refusal, a period limit, no free bucket),
    :func:`issue` runs in the session and gives the precise answer."""
    params = _fast_claim_params(
        session, merchant_id, template_id, member_id, source=source, source_ref=source_ref, now=now
    )
    if params is not None:
        bind = session.get_bind()
        assert isinstance(bind, Engine)
        issued = _fast_claim_outcome(params, repo.claim_alone(bind, params))
        if issued is not None:
            return issued
    return issue(session, merchant_id, template_id, member_id, source=source, source_ref=source_ref, now=now)


async def claim_from_loop(
    session: Session,
    statements: AsyncStatements,
    merchant_id: str,
    template_id: str,
    member_id: str,
    *,
    source: str,
    source_ref: str | None,
    now: datetime,
) -> IssuedCoupon | None:
    """:func:`claim`'s one statement from the event loop (no worker thread at all); ``None`` when
    the claim must go on with :func:`issue` in a worker thread (see :func:`claim`)."""
    params = _fast_claim_params(
        session, merchant_id, template_id, member_id, source=source, source_ref=source_ref, now=now
    )
    if params is None:
        return None
    return _fast_claim_outcome(params, await repo.claim_alone_async(statements, params))


def _limit_refusal(
    owner: str, template_id: str, caps: list[tuple[str, int]], counted: set[str]
) -> CouponRefused:
    if repo.LIFETIME not in counted and any(key == repo.LIFETIME for key, _ in caps):
        return CouponRefused("member_limit", f"member {owner} already has the most coupons of {template_id}")
    return CouponRefused("period_limit", f"member {owner} reached this period's limit for {template_id}")


def _take_stock(session: Session, merchant_id: str, template_id: str) -> CouponRefused | None:
    """Take one from the stock, or the refusal: ``out_of_stock``, or ``busy`` when stock is left
    but every bucket holding it stays locked by claims in flight for all of :data:`BUSY_PAUSES`.

    Why not wait for the lock: in the API a claim's transaction commits after its handler
    returns, in a worker thread of the same pool the waiting handlers occupy; waiting handlers
    could starve the commits they wait for. A short poll never blocks on a lock.
    """
    if repo.take_stock(session, merchant_id, template_id):
        return None
    for pause in BUSY_PAUSES:
        if not repo.has_stock(session, merchant_id, template_id):
            break
        time.sleep(pause)
        if repo.take_stock(session, merchant_id, template_id):
            return None
    else:
        return CouponRefused("busy", f"coupon template {template_id} is busy: retry in a moment")
    return CouponRefused("out_of_stock", f"coupon template {template_id} is out of stock")


def claim_by_code(
    session: Session, merchant_id: str, member_id: str, text: str, *, now: datetime
) -> IssuedCoupon:
    """Claim with a promo code: a unique code (once) or a template's shared code.

    A refusal after the coupon was issued (the unique code taken concurrently) is raised for the
    request to roll back: this is an API operation, not a facade one.
    """
    code = codes_.normalise(text)
    if codes_.is_generated_shape(code):
        if not codes_.is_valid(code):
            raise invalid("/code", "the code's check character is wrong: a typo?", "bad_check_character")
        promo = repo.get_code(session, merchant_id, code)
        if promo is None:
            raise UnknownCode(code)
        if promo.coupon_id is not None:
            raise CouponRefused("code_used", f"the code {codes_.display(code)} was already claimed")
        issued = issue(
            session,
            merchant_id,
            promo.template_id,
            member_id,
            source=CouponSource.API.value,
            source_ref=None,
            now=now,
        )
        if not repo.use_code(session, merchant_id, code, issued.id, now):
            raise CouponRefused("code_used", f"the code {codes_.display(code)} was already claimed")
        return issued
    if not codes_.SHARED_CODE.match(code):
        raise invalid("/code", "not a promo code: letters and digits only", "invalid_code")
    template = repo.template_by_shared_code(session, merchant_id, code)
    if template is None:
        raise UnknownCode(code)
    return issue(
        session, merchant_id, template.id, member_id, source=CouponSource.API.value, source_ref=None, now=now
    )


# --- reading coupons --------------------------------------------------------------------------


def coupon_view(c: Coupon, t: CouponTemplate) -> CouponView:
    return CouponView(
        id=c.id,
        code=codes_.display(c.code),
        template_id=c.template_id,
        template_name=t.name,
        kind=t.kind,
        member_id=c.member_id,
        status=c.status,
        source=c.source,
        source_ref=c.source_ref,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        issued_at=c.issued_at,
        redeemed_at=c.redeemed_at,
        redemption_id=c.redemption_id,
        value_fen=t.value_fen,
        discount_bp=t.discount_bp,
        cap_fen=t.cap_fen,
        threshold_fen=t.threshold_fen,
        item_name=t.item_name,
    )


def _views(session: Session, merchant_id: str, coupons: list[Coupon]) -> list[CouponView]:
    templates = repo.templates_by_ids(session, merchant_id, [c.template_id for c in coupons])
    return [coupon_view(c, templates[c.template_id]) for c in coupons]


def get_coupon(session: Session, merchant_id: str, id_or_code: str) -> CouponView | None:
    if id_or_code.startswith(f"{IdKind.COUPON.value}_"):
        coupon = repo.get_coupon(session, merchant_id, id_or_code)
    else:
        code = codes_.normalise(id_or_code)
        if not codes_.is_valid(code):
            raise invalid(
                "/code", f"{id_or_code!r} is not a coupon id or a valid coupon code", "invalid_code"
            )
        coupon = repo.coupons_by_codes(session, merchant_id, [code]).get(code)
    return _views(session, merchant_id, [coupon])[0] if coupon else None


def member_coupons(
    session: Session,
    merchant_id: str,
    member_id: str,
    page: PageRequest,
    *,
    status: CouponStatus | None = None,
) -> Page[CouponView]:
    found = members.find_member(session, merchant_id, member_id)
    if found is None:
        raise NotFound(f"no member {member_id}")
    rows = repo.list_member_coupons(
        session, merchant_id, found.id, page, status=status.value if status else None
    )
    items, cursor = make_page(rows, page, lambda c: c.id)
    return Page[CouponView](items=_views(session, merchant_id, items), next_cursor=cursor)


def latest_coupons(session: Session, merchant_id: str, member_id: str, limit: int) -> list[CouponView]:
    return _views(session, merchant_id, repo.latest_member_coupons(session, merchant_id, member_id, limit))


def expire_due(session: Session, *, now: datetime, limit: int = 5000) -> int:
    """Available coupons whose validity ended → ``expired``, at most ``limit``, across merchants."""
    done = 0
    for merchant_id in tenancy.merchant_ids(session):
        if done >= limit:
            break
        done += repo.expire(session, merchant_id, now, limit - done)
    return done


# --- members: merge, export, erasure ----------------------------------------------------------


@on_merges
def _on_merge(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """Coupons and redemptions move to the survivor; claim counts are summed, so the person can
    never hold more than the limit allows one member (the sum may already exceed it: then the
    survivor claims no more of that template)."""
    repo.move_member_rows(session, merchant_id, groups)


def _export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    coupons = latest_coupons(session, merchant_id, member_id, 10_000)
    redemptions = repo.redemptions_of(session, merchant_id, member_id)
    return {
        "coupons": [
            {
                "id": c.id,
                "code": c.code,
                "template": c.template_name,
                "status": c.status,
                "source": c.source,
                "valid_from": c.valid_from.isoformat(),
                "valid_until": c.valid_until.isoformat(),
                "issued_at": c.issued_at.isoformat(),
                "redeemed_at": c.redeemed_at.isoformat() if c.redeemed_at else None,
            }
            for c in coupons
        ],
        "coupon_redemptions": [
            {
                "order_id": r.order_id,
                "status": r.status,
                "amount_fen": r.amount_fen,
                "discount_fen": r.discount_fen,
                "at": r.at.isoformat(),
            }
            for r in redemptions
        ],
    }


def _erase(session: Session, merchant_id: str, member_id: str) -> None:
    """Keep the coupons for the merchant's accounting, usable by no one: available ones become
    ``void``, free-text references go, claim counts go. The member id they keep is linked to
    no one once the member is erased."""
    from siyu.kit.clock import utcnow

    repo.void_member_coupons(session, merchant_id, member_id, utcnow())


on_export(_export)
on_erase(_erase)
