"""The payment-success-page decision (支付成功页): which offer, if any, a payer sees now.

The flow for one payment (see docs/decisions.md):

1. A retry of the same payment (same ``order_id``) returns the first decision.
2. The payer is resolved (or created) through ingestion: a ``payment_page_view`` event is
   ingested with the payer's identities, so the visit is on the member's timeline as well.
3. The running ``payment_success`` campaigns, highest priority first; for each:
   payment conditions (store, channel, minimum amount — ``decision_settings``), the
   audience rule, then the assignment (``source="decision"``). A holdout member is shown
   **nothing** and the decision is recorded as ``holdout`` (evaluation stops there: the holdout
   must see what it would have seen without this campaign's offer, not another campaign's).
   Then the variant's coupon, the member's cap for the page (offers shown per local day, default
   1), the template's stock, and the budget (one conditional ``UPDATE``). The first campaign that
   passes wins; the decision is ``offered`` with the budget reserved.
4. Nothing passed: a ``none`` decision with the reasons.

Accepting issues the coupon (``source="payment_page"``, ``source_ref`` = the decision id), so a
retry returns the same coupon; a refusal (out of stock…) gives the budget back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns import facade as campaigns
from siyu.coupons import facade as coupons
from siyu.decisions import repository as repo
from siyu.decisions.models import Decision, DecisionSettings, DecisionStatus
from siyu.events import service as events
from siyu.kit import config_cache
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pii import IdentifierVault
from siyu.kit.problems import Conflict, NotFound, invalid_field
from siyu.segments import facade as segments
from siyu.tenancy import facade as tenancy

PLACEMENT = "payment_success"
DEFAULT_DAILY_CAP = 1
OFFER_TTL = timedelta(minutes=30)
"""An offer neither accepted nor declined within this is expired and its budget given back."""


@dataclass(frozen=True, slots=True)
class Payment:
    identities: Mapping[str, str]
    amount_fen: int
    store_id: str | None = None
    order_id: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionView:
    id: str
    member_id: str
    status: str
    campaign_id: str | None
    variant: str | None
    group: str | None
    template_id: str | None
    reason: str | None
    amount_fen: int
    store_id: str | None
    order_id: str | None
    channel: str | None
    created_at: datetime
    accepted_at: datetime | None
    closed_at: datetime | None
    coupon_id: str | None
    replayed: bool = False
    template: coupons.TemplateView | None = None
    """The offered template as read while deciding (``None``: read it by ``template_id``)."""


@dataclass(slots=True)
class Draft:
    """The decision being made: the columns of its ``decisions`` row, filled in by the campaigns
    tried, then inserted as plain values (no ORM object to build, track and flush)."""

    merchant_id: str
    id: str
    member_id: str
    amount_fen: int
    store_id: str | None
    order_id: str | None
    channel: str | None
    local_day: str
    created_at: datetime
    reserved_fen: int = 0
    status: str = DecisionStatus.NONE.value
    reason: str | None = None
    campaign_id: str | None = None
    variant: str | None = None
    group: str | None = None
    template_id: str | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    coupon_id: str | None = None

    def values(self) -> dict[str, Any]:
        """The row to insert: every column of ``decisions``."""
        return {name: getattr(self, name) for name in DRAFT_COLUMNS}


DRAFT_COLUMNS = tuple(field.name for field in fields(Draft))


def view(
    row: Decision | Draft, *, replayed: bool = False, template: coupons.TemplateView | None = None
) -> DecisionView:
    return DecisionView(
        id=row.id,
        member_id=row.member_id,
        status=row.status,
        campaign_id=row.campaign_id,
        variant=row.variant,
        group=row.group,
        template_id=row.template_id,
        reason=row.reason,
        amount_fen=row.amount_fen,
        store_id=row.store_id,
        order_id=row.order_id,
        channel=row.channel,
        created_at=row.created_at,
        accepted_at=row.accepted_at,
        closed_at=row.closed_at,
        coupon_id=row.coupon_id,
        replayed=replayed,
        template=template,
    )


def get(session: Session, merchant_id: str, decision_id: str) -> DecisionView | None:
    row = repo.get(session, merchant_id, decision_id)
    return view(row) if row else None


class DecisionClosed(Conflict):
    """The decision can no longer be accepted or declined (``status`` says what it became)."""

    slug, title = "decision-closed", "Decision closed"

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail, extra={"decision_status": status})


class OfferRefused(Conflict):
    """Accepting failed: the coupon could not be issued (``reason``); the budget was given back."""

    slug, title = "offer-refused", "Offer refused"

    def __init__(self, reason: str, detail: str, decision: DecisionView) -> None:
        super().__init__(detail, extra={"reason": reason, "decision_id": decision.id})
        self.reason = reason
        self.decision = decision


# -- campaign conditions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conditions:
    """A campaign's payment conditions and per-day cap (table ``decision_settings``)."""

    min_amount_fen: int | None = None
    store_ids: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    per_member_per_day: int = DEFAULT_DAILY_CAP


def conditions_of(session: Session, merchant_id: str, campaign_id: str) -> Conditions:
    """The campaign's conditions, through :mod:`siyu.kit.config_cache` (a change is seen at once
    by this process, within ``config_cache.TTL_SECONDS`` by others)."""

    def load() -> Conditions:
        row = repo.settings_of(session, merchant_id, campaign_id)
        if row is None:
            return Conditions()
        return Conditions(
            row.min_amount_fen, tuple(row.store_ids or ()), tuple(row.channels or ()), row.per_member_per_day
        )

    return config_cache.cached(session, ("decision_conditions", merchant_id, campaign_id), load)


def put_conditions(
    session: Session, merchant_id: str, campaign_id: str, conditions: Conditions, *, now: datetime
) -> Conditions:
    if campaigns.get_campaign(session, merchant_id, campaign_id) is None:
        raise NotFound(f"no campaign {campaign_id}")
    row = repo.settings_of(session, merchant_id, campaign_id)
    if row is None:
        row = DecisionSettings(merchant_id=merchant_id, campaign_id=campaign_id)
        session.add(row)
    row.min_amount_fen = conditions.min_amount_fen
    row.store_ids = list(conditions.store_ids)
    row.channels = list(conditions.channels)
    row.per_member_per_day = conditions.per_member_per_day
    row.updated_at = now
    session.flush()
    return conditions


def payment_mismatch(conditions: Conditions, payment: Payment) -> str | None:
    if conditions.min_amount_fen is not None and payment.amount_fen < conditions.min_amount_fen:
        return f"amount below {conditions.min_amount_fen} fen"
    if conditions.store_ids and payment.store_id not in conditions.store_ids:
        return "store not in the campaign"
    if conditions.channels and payment.channel not in conditions.channels:
        return "channel not in the campaign"
    return None


def coupon_of(campaign: campaigns.CampaignView, variant: str | None) -> dict[str, Any] | None:
    """The variant's first coupon treatment (the offer)."""
    found = campaign.variant(variant)
    for treatment in (found or {}).get("treatments", []):
        if (
            isinstance(treatment, dict)
            and treatment.get("action") == "coupon"
            and treatment.get("template_id")
        ):
            return treatment
    return None


def in_audience(
    session: Session, merchant_id: str, campaign: campaigns.CampaignView, member_id: str, now: datetime
) -> bool:
    rule: Mapping[str, Any] | None = campaign.audience_rule
    if rule is None and campaign.audience_segment_id is not None:
        segment = segments.get_segment(session, merchant_id, campaign.audience_segment_id)
        if segment is None:
            return False
        rule = segment.rule
    if rule is None:
        return True
    return segments.contains(session, merchant_id, rule, member_id, now=now)


def coupon_cost_fen(template: coupons.TemplateView) -> int:
    """What one offered coupon takes from ``budget_fen``: its face value (cash, threshold,
    exchange), or a discount coupon's cap — the same rule campaign treatments use."""
    if template.kind == "discount":
        return int(template.cap_fen or 0)
    return int(template.value_fen or 0)


# -- deciding -------------------------------------------------------------------------------------


def _resolve_member(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    payment: Payment,
    decision_id: str,
    now: datetime,
) -> tuple[str, bool]:
    """The payer's member, and whether this page view created it: resolved (or created) by
    ingesting a ``payment_page_view`` event with its identities, so the visit is on the member's
    timeline, and stages, rollups and triggers see it like any event. (Ingesting later through
    the outbox was tried: on SQLite the worker's extra write transactions then compete with the
    decisions for the one writer, and the tail under load was far worse.)"""
    event: dict[str, Any] = {
        "event_id": f"payment_page:{payment.order_id or decision_id}",
        "type": "payment_page_view",
        "occurred_at": now.isoformat(),
        "identities": dict(payment.identities),
        "channel": payment.channel,
        "store_id": payment.store_id,
        "properties": {
            "amount_fen": payment.amount_fen,
            "order_id": payment.order_id,
            "decision_id": decision_id,
        },
    }
    (verdict,) = events.ingest(session, vault, merchant_id, [event], now=now, unseen_ids=True)
    if verdict.status == "rejected":
        pointer = (verdict.pointer or "").removeprefix("/events/0")
        raise invalid_field(pointer, verdict.reason or "invalid payer")
    if verdict.member_id is None:  # the same order's page view stored by a request still running
        raise Conflict("a decision for this order is being made by another request; retry")
    return verdict.member_id, verdict.member_created


def decide(
    session: Session, vault: IdentifierVault, merchant_id: str, payment: Payment, *, now: datetime
) -> DecisionView:
    """The decision for one payment, recorded (see the module docstring)."""
    if payment.order_id is not None:
        earlier = repo.by_order(session, merchant_id, payment.order_id)
        if earlier is not None:
            return view(earlier, replayed=True)
    decision_id = new_id(IdKind.DECISION)
    member_id, created = _resolve_member(session, vault, merchant_id, payment, decision_id, now)
    local_day = now.astimezone(tenancy.merchant_zone(session, merchant_id)).date().isoformat()
    row = Draft(
        merchant_id=merchant_id,
        id=decision_id,
        member_id=member_id,
        amount_fen=payment.amount_fen,
        store_id=payment.store_id,
        order_id=payment.order_id,
        channel=payment.channel,
        local_day=local_day,
        created_at=now,
    )
    reasons: list[str] = []
    offered: list[coupons.TemplateView] = []
    for campaign in campaigns.running_on_placement(session, merchant_id, PLACEMENT, now=now):
        reason = _try(session, merchant_id, campaign, payment, row, now, created, offered)
        if reason is None:
            break
        reasons.append(f"{campaign.id}: {reason}")
    else:
        row.status = DecisionStatus.NONE.value
        row.reason = ("; ".join(reasons) or "no running payment-success campaign")[:200]
    if not repo.insert(session, row.values()):  # the same order decided concurrently: the first one stands
        earlier = repo.by_order(session, merchant_id, payment.order_id or "")
        if earlier is None:
            raise Conflict("a decision for this order is being made by another request; retry")
        if row.status == DecisionStatus.OFFERED and row.campaign_id is not None:
            campaigns.release_budget(session, merchant_id, row.campaign_id, coupons=1, fen=row.reserved_fen)
            repo.give_back_cap(session, merchant_id, row.campaign_id, row.member_id, row.local_day)
        return view(earlier, replayed=True)
    return view(row, template=offered[-1] if offered and row.status == DecisionStatus.OFFERED else None)


def _try(
    session: Session,
    merchant_id: str,
    campaign: campaigns.CampaignView,
    payment: Payment,
    row: Draft,
    now: datetime,
    new_member: bool,
    offered: list[coupons.TemplateView],
) -> str | None:
    """Fill ``row`` with this campaign's outcome (``None``) or say why it does not apply.
    ``new_member``: created by this request's page view, so it has been shown nothing yet (the
    cap's look-up is skipped; the cap's upsert below is still the authority). The template of
    the offer is appended to ``offered``."""
    conditions = conditions_of(session, merchant_id, campaign.id)
    mismatch = payment_mismatch(conditions, payment)
    if mismatch:
        return mismatch
    cap = conditions.per_member_per_day
    capped = f"member already shown {cap} offer(s) today"
    if cap <= 0 or (
        not new_member
        and repo.shown_on(session, merchant_id, campaign.id, row.member_id, row.local_day) >= cap
    ):
        return capped  # the common case of a returning payer: one key lookup (0 for the holdout)
    if not in_audience(session, merchant_id, campaign, row.member_id, now):
        return "not in the audience"
    # Everything that does not depend on the member's group is checked before the member enters
    # the experiment, so the holdout holds exactly the payers who would have seen the offer.
    variant = campaigns.variant_of(campaign.id, row.member_id, campaign.variants)
    checked = _offer_of(session, merchant_id, campaign, variant, now)
    if isinstance(checked, str):
        return checked
    if _exhausted(campaign, checked[1]):
        return "over budget"
    assignment = campaigns.assign(
        session, merchant_id, campaign, row.member_id, now=now, source="decision", unassigned=new_member
    )
    if assignment.group == campaigns.Group.HOLDOUT:
        row.campaign_id, row.group, row.variant = campaign.id, assignment.group, assignment.variant
        row.status, row.reason = DecisionStatus.HOLDOUT.value, "in the campaign's holdout"
        return None
    if assignment.variant != variant:  # assigned before under other weights: its own variant counts
        checked = _offer_of(session, merchant_id, campaign, assignment.variant, now)
        if isinstance(checked, str):
            return checked
    template, fen = checked
    template_id = template.id
    if not campaigns.reserve_budget(session, merchant_id, campaign.id, coupons=1, fen=fen):
        return "over budget"
    if not repo.take_cap(session, merchant_id, campaign.id, row.member_id, row.local_day, cap):
        campaigns.release_budget(session, merchant_id, campaign.id, coupons=1, fen=fen)
        return capped  # a concurrent payment of the same member took the last one
    row.campaign_id, row.group, row.variant = campaign.id, assignment.group, assignment.variant
    row.template_id, row.reserved_fen = template_id, fen
    row.status, row.reason = DecisionStatus.OFFERED.value, None
    offered.append(template)
    return None


def _exhausted(campaign: campaigns.CampaignView, fen: int) -> bool:
    """The budget, as read with the campaign this request, has no room for one more offer (the
    reservation itself is the authority; this only keeps payers out of the experiment once the
    money is gone)."""
    if campaign.budget_coupons is not None and campaign.spent_coupons >= campaign.budget_coupons:
        return True
    return campaign.budget_fen is not None and campaign.spent_fen + fen > campaign.budget_fen


def _offer_of(
    session: Session, merchant_id: str, campaign: campaigns.CampaignView, variant: str | None, now: datetime
) -> tuple[coupons.TemplateView, int] | str:
    """The variant's coupon template and its cost in fen, or why it cannot be offered now."""
    offer = coupon_of(campaign, variant)
    if offer is None:
        return f"variant {variant} has no coupon"
    template_id = str(offer["template_id"])
    template = coupons.get_template(session, merchant_id, template_id)
    if template is None or template.status != "active":
        return "coupon template not active"
    if template.remaining <= 0:
        return "coupon out of stock"
    if template.valid_until is not None and now >= template.valid_until:
        return "coupon template ended"
    return template, coupon_cost_fen(template)


# -- accepting, declining, expiring ----------------------------------------------------------------


def _open(session: Session, merchant_id: str, decision_id: str) -> Decision:
    row = repo.get_for_update(session, merchant_id, decision_id)
    if row is None:
        raise NotFound(f"no decision {decision_id}")
    return row


def _release(session: Session, row: Decision) -> None:
    if row.campaign_id is not None:
        campaigns.release_budget(session, row.merchant_id, row.campaign_id, coupons=1, fen=row.reserved_fen)


def _expire_if_due(session: Session, row: Decision, now: datetime) -> None:
    if row.status == DecisionStatus.OFFERED and now >= row.created_at + OFFER_TTL:
        row.status, row.closed_at, row.reason = DecisionStatus.EXPIRED, now, "offer expired"
        _release(session, row)


def accept(session: Session, merchant_id: str, decision_id: str, *, now: datetime) -> DecisionView:
    """Issue the offered coupon. A retry returns the same coupon (``replayed``). When the
    coupon is refused (out of stock…) this returns the view with status ``refused`` and
    ``reason`` having changed nothing else: the caller rolls back and records the refusal with
    :func:`refuse` in a unit of work of its own (an API error answer rolls the request back)."""
    row = _open(session, merchant_id, decision_id)
    if row.status == DecisionStatus.ACCEPTED:
        return view(row, replayed=True)
    _expire_if_due(session, row, now)
    if row.status != DecisionStatus.OFFERED or row.template_id is None:
        raise DecisionClosed(row.status, f"decision {decision_id} is {row.status}: nothing to accept")
    try:
        issued = coupons.issue_coupon(
            session,
            merchant_id,
            row.template_id,
            row.member_id,
            source="payment_page",
            source_ref=row.id,
            now=now,
        )
    except (coupons.CouponRefused, NotFound) as exc:
        refused = view(row)
        reason = getattr(exc, "reason", None) or "template_not_found"
        return replace(refused, status=DecisionStatus.REFUSED.value, reason=reason)
    row.status, row.accepted_at, row.coupon_id = DecisionStatus.ACCEPTED, now, issued.id
    session.flush()
    return view(row)


def refuse(session: Session, merchant_id: str, decision_id: str, reason: str, *, now: datetime) -> None:
    """Close an offer whose coupon was refused and give its budget back (if still open)."""
    row = _open(session, merchant_id, decision_id)
    if row.status == DecisionStatus.OFFERED:
        row.status, row.closed_at, row.reason = DecisionStatus.REFUSED, now, reason[:200]
        _release(session, row)
        session.flush()


def decline(session: Session, merchant_id: str, decision_id: str, *, now: datetime) -> DecisionView:
    """The payer said no: the budget goes back. Declining again returns the same answer."""
    row = _open(session, merchant_id, decision_id)
    if row.status == DecisionStatus.DECLINED:
        return view(row, replayed=True)
    _expire_if_due(session, row, now)
    if row.status != DecisionStatus.OFFERED:
        raise DecisionClosed(row.status, f"decision {decision_id} is {row.status}: nothing to decline")
    row.status, row.closed_at = DecisionStatus.DECLINED, now
    _release(session, row)
    session.flush()
    return view(row)


def expire_offers(session: Session, merchant_id: str, *, now: datetime, limit: int = 1000) -> int:
    """Expire the merchant's offers older than :data:`OFFER_TTL`, giving their budget back (per
    campaign, one conditional ``UPDATE`` each)."""
    rows = repo.due_offers(session, merchant_id, now - OFFER_TTL, limit)
    for row in rows:
        row.status, row.closed_at, row.reason = DecisionStatus.EXPIRED, now, "offer expired"
    released: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        if row.campaign_id is not None:
            count, fen = released.get((row.merchant_id, row.campaign_id), (0, 0))
            released[(row.merchant_id, row.campaign_id)] = (count + 1, fen + row.reserved_fen)
    for (merchant_id, campaign_id), (count, fen) in released.items():
        campaigns.release_budget(session, merchant_id, campaign_id, coupons=count, fen=fen)
    session.flush()
    return len(rows)
