"""Tier administration, paid membership (付费会员) and joint membership (联合会员).

Each function validates, writes and re-assesses the members it touched through
:func:`siyu.tiers.service.assess`, so the effective tier and its history are always in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, literal, select, update
from sqlalchemy.orm import Session

from siyu.coupons import facade as coupons
from siyu.db import UTCDateTime
from siyu.kit.ids import IdKind, new_id
from siyu.kit.problems import Conflict, NotFound, invalid_field
from siyu.tiers import service
from siyu.tiers.ladder import PERIOD_MONTHS
from siyu.tiers.models import (
    Basis,
    ChangeReason,
    MemberTier,
    Tier,
    TierJointLink,
    TierJointMapping,
    TierProgress,
    TierPurchase,
    TierSettings,
)

# ---------------------------------------------------------------- settings and the ladder


def put_settings(
    session: Session, merchant_id: str, values: Mapping[str, Any], *, now: datetime
) -> TierSettings:
    if values.get("period_months", 12) not in PERIOD_MONTHS:
        raise invalid_field(
            "/period_months", f"period_months must be one of {', '.join(map(str, PERIOD_MONTHS))}"
        )
    row = session.get(TierSettings, merchant_id)
    if row is None:
        row = TierSettings(merchant_id=merchant_id)
        session.add(row)
    row.basis = Basis(values.get("basis", Basis.GROWTH))
    row.growth_per_yuan = int(values.get("growth_per_yuan", 1))
    row.period_months = int(values.get("period_months", 12))
    row.updated_at = now
    session.flush()
    _ladder_changed(session, merchant_id, now)
    return row


def get_tier(session: Session, merchant_id: str, tier_id: str) -> Tier:
    tier = session.get(Tier, (merchant_id, tier_id))
    if tier is None:
        raise NotFound(f"no tier {tier_id}")
    return tier


BENEFIT_TEMPLATES = ("monthly_coupon_template_id", "birthday_coupon_template_id")
FIELDS = (
    "name",
    "rank",
    "threshold",
    "points_multiplier_bp",
    "monthly_coupon_template_id",
    "monthly_coupon_count",
    "birthday_coupon_template_id",
    "birthday_points",
    "price_fen",
    "paid_days",
)


def _check_tier(session: Session, merchant_id: str, tier: Tier) -> None:
    for name in BENEFIT_TEMPLATES:
        template_id = getattr(tier, name)
        if template_id and coupons.get_template(session, merchant_id, template_id) is None:
            raise invalid_field(f"/{name}", f"no coupon template {template_id}")
    if (tier.price_fen is None) != (tier.paid_days is None):
        raise invalid_field("/paid_days", "a paid tier needs both price_fen and paid_days")
    others = [t for t in service.tiers_of(session, merchant_id) if t.id != tier.id]
    if any(t.rank == tier.rank for t in others):
        raise Conflict(f"another tier already has rank {tier.rank}")
    if any(t.name == tier.name for t in others):
        raise Conflict(f"another tier is already named {tier.name!r}")
    lower = [t for t in others if t.rank < tier.rank]
    higher = [t for t in others if t.rank > tier.rank]
    if any(t.threshold > tier.threshold for t in lower) or any(t.threshold < tier.threshold for t in higher):
        raise invalid_field("/threshold", "thresholds must not fall as rank rises")


def create_tier(session: Session, merchant_id: str, values: Mapping[str, Any], *, now: datetime) -> Tier:
    tier = Tier(merchant_id=merchant_id, id=new_id(IdKind.TIER), created_at=now, updated_at=now)
    for name in FIELDS:
        if name in values:
            setattr(tier, name, values[name])
    tier.points_multiplier_bp = tier.points_multiplier_bp or 10_000
    tier.monthly_coupon_count = tier.monthly_coupon_count or 1
    tier.birthday_points = tier.birthday_points or 0
    _check_tier(session, merchant_id, tier)
    session.add(tier)
    session.flush()
    _ladder_changed(session, merchant_id, now)
    return tier


def update_tier(
    session: Session, merchant_id: str, tier_id: str, changes: Mapping[str, Any], *, now: datetime
) -> Tier:
    tier = get_tier(session, merchant_id, tier_id)
    for name in (
        "name",
        "rank",
        "threshold",
        "points_multiplier_bp",
        "monthly_coupon_count",
        "birthday_points",
    ):
        if name in changes and changes[name] is None:
            raise invalid_field(f"/{name}", f"{name} cannot be null")
    for name in FIELDS:
        if name in changes:
            setattr(tier, name, changes[name])
    tier.updated_at = now
    _check_tier(session, merchant_id, tier)
    session.flush()
    _ladder_changed(session, merchant_id, now)
    return tier


def _ladder_changed(session: Session, merchant_id: str, now: datetime) -> None:
    """Every member is due a re-assessment (the job does it): a lowered threshold upgrades at
    once; a raised one only bites at the next period end, like any downgrade. Members with
    progress from before the ladder existed get a row, so the job finds them too."""
    with_rows = select(MemberTier.member_id).where(MemberTier.merchant_id == merchant_id)
    progressed = (
        select(TierProgress.member_id)
        .where(TierProgress.merchant_id == merchant_id, TierProgress.member_id.not_in(with_rows))
        .distinct()
    )
    session.execute(
        insert(MemberTier).from_select(
            ["merchant_id", "member_id", "since", "updated_at"],
            select(
                literal(merchant_id),
                progressed.subquery().c.member_id,
                literal(now, UTCDateTime()),
                literal(now, UTCDateTime()),
            ),
        )
    )
    session.execute(
        update(MemberTier)
        .where(MemberTier.merchant_id == merchant_id)
        .values(next_change_at=None, assessed_period=None)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- paid membership


@dataclass(frozen=True, slots=True)
class Purchase:
    purchase: TierPurchase
    replayed: bool


def purchase(
    session: Session,
    merchant_id: str,
    member_id: str,
    tier_id: str,
    *,
    order_id: str,
    amount_fen: int | None,
    now: datetime,
) -> Purchase:
    """Record a paid membership bought by ``order_id`` (idempotent by it): the member holds the
    tier until ``paid_days`` after now, or after the end of the same tier already paid (a
    renewal extends). A lower paid tier bought over a higher one that is still running is refused."""
    existing = session.get(TierPurchase, (merchant_id, order_id))
    if existing is not None:
        if existing.member_id != member_id or existing.tier_id != tier_id:
            raise Conflict(f"order {order_id} already bought another membership")
        return Purchase(existing, replayed=True)
    tier = get_tier(session, merchant_id, tier_id)
    if tier.price_fen is None or tier.paid_days is None:
        raise Conflict(f"tier {tier.name!r} cannot be bought (no price)")
    paid = tier.price_fen if amount_fen is None else amount_fen
    if paid < tier.price_fen:
        raise invalid_field("/amount_fen", f"{paid} fen is less than the price {tier.price_fen}")
    ctx = service.context(session, merchant_id, now)
    row = service.lock_rows(session, ctx, [member_id])[member_id]
    start = now
    current = ctx.ladder.get(row.paid_tier_id) if row.paid_until and row.paid_until > now else None
    if current is not None and current.id == tier.id and row.paid_until:
        start = row.paid_until
    elif current is not None and current.rank > tier.rank:
        raise Conflict(f"the member's paid tier {current.name!r} runs until {row.paid_until:%Y-%m-%d}")
    record = TierPurchase(
        merchant_id=merchant_id,
        order_id=order_id,
        member_id=member_id,
        tier_id=tier.id,
        amount_fen=paid,
        days=tier.paid_days,
        starts_at=start,
        ends_at=start + timedelta(days=tier.paid_days),
        created_at=now,
    )
    session.add(record)
    row.paid_tier_id, row.paid_until = tier.id, record.ends_at
    session.flush()
    service.assess(session, ctx, [member_id], reason=ChangeReason.PAID, detail=f"order {order_id}")
    return Purchase(record, replayed=False)


def cancel_purchase(session: Session, merchant_id: str, order_id: str, *, now: datetime) -> TierPurchase:
    """A refunded membership: it ends now (the time already used is not given back)."""
    record = session.get(TierPurchase, (merchant_id, order_id))
    if record is None:
        raise NotFound(f"no membership bought by order {order_id}")
    if record.cancelled_at is not None:
        return record
    record.cancelled_at = now
    ctx = service.context(session, merchant_id, now)
    row = service.lock_rows(session, ctx, [record.member_id])[record.member_id]
    # the paid period left: other purchases of the member still running after this one is gone
    statement = select(TierPurchase).where(
        TierPurchase.merchant_id == merchant_id,
        TierPurchase.member_id == record.member_id,
        TierPurchase.cancelled_at.is_(None),
        TierPurchase.ends_at > now,
        TierPurchase.order_id != order_id,
    )
    remaining = list(session.execute(statement).scalars())
    cut = record.ends_at - max(record.starts_at, now)

    def rank(p: TierPurchase) -> tuple[int, datetime]:
        rung = ctx.ladder.get(p.tier_id)
        return (rung.rank if rung else -1, p.ends_at)

    best = max(remaining, key=rank, default=None)
    if best is None:
        row.paid_tier_id, row.paid_until = None, None
    else:
        later = best.ends_at - cut if best.starts_at >= record.ends_at else best.ends_at
        row.paid_tier_id, row.paid_until = best.tier_id, max(later, now)
    session.flush()
    service.assess(
        session, ctx, [record.member_id], reason=ChangeReason.PAID_ENDED, detail=f"order {order_id} cancelled"
    )
    return record


# ---------------------------------------------------------------- joint membership


def put_mapping(
    session: Session, merchant_id: str, platform: str, levels: Mapping[str, str], *, now: datetime
) -> list[TierJointMapping]:
    """Replace a platform's level → tier map; members linked to it are re-assessed (by the job)."""
    for level, tier_id in levels.items():
        if session.get(Tier, (merchant_id, tier_id)) is None:
            raise invalid_field(f"/levels/{level}", f"no tier {tier_id}")
    existing = {
        m.external_level: m
        for m in session.execute(
            select(TierJointMapping).where(
                TierJointMapping.merchant_id == merchant_id, TierJointMapping.platform == platform
            )
        ).scalars()
    }
    for level, old in existing.items():
        if level not in levels:
            session.delete(old)
    for level, tier_id in levels.items():
        mapping = existing.get(level) or TierJointMapping(
            merchant_id=merchant_id, platform=platform, external_level=level
        )
        if level not in existing:
            session.add(mapping)
        mapping.tier_id, mapping.updated_at = tier_id, now
    session.flush()
    linked = select(TierJointLink.member_id).where(
        TierJointLink.merchant_id == merchant_id, TierJointLink.platform == platform
    )
    ctx = service.context(session, merchant_id, now)
    service.assess(
        session,
        ctx,
        list(session.execute(linked).scalars()),
        reason=ChangeReason.JOINT_LINKED,
        detail=f"{platform} levels remapped",
    )
    return mappings(session, merchant_id, platform)


def mappings(session: Session, merchant_id: str, platform: str | None = None) -> list[TierJointMapping]:
    statement = select(TierJointMapping).where(TierJointMapping.merchant_id == merchant_id)
    if platform is not None:
        statement = statement.where(TierJointMapping.platform == platform)
    order = (TierJointMapping.platform, TierJointMapping.external_level)
    return list(session.execute(statement.order_by(*order)).scalars())


def link(
    session: Session,
    merchant_id: str,
    member_id: str,
    platform: str,
    external_level: str,
    *,
    valid_until: datetime | None,
    now: datetime,
) -> TierJointLink:
    """Link (or re-level) a member to an external platform; the mapped floor applies at once."""
    if (platform, external_level) not in service.mappings_of(session, merchant_id):
        raise invalid_field("/external_level", f"{platform} level {external_level!r} is not mapped to a tier")
    if valid_until is not None and valid_until <= now:
        raise invalid_field("/valid_until", "valid_until is in the past")
    ctx = service.context(session, merchant_id, now)
    service.lock_rows(session, ctx, [member_id])
    row = session.get(TierJointLink, (merchant_id, member_id, platform))
    if row is None:
        row = TierJointLink(merchant_id=merchant_id, member_id=member_id, platform=platform, linked_at=now)
        session.add(row)
    row.external_level, row.valid_until, row.active, row.updated_at = external_level, valid_until, True, now
    session.flush()
    service.assess(
        session, ctx, [member_id], reason=ChangeReason.JOINT_LINKED, detail=f"{platform}:{external_level}"
    )
    return row


def unlink(session: Session, merchant_id: str, member_id: str, platform: str, *, now: datetime) -> None:
    """Remove a link: its floor no longer applies, from now (the member keeps the earned and paid tiers)."""
    ctx = service.context(session, merchant_id, now)
    service.lock_rows(session, ctx, [member_id])
    row = session.get(TierJointLink, (merchant_id, member_id, platform))
    if row is None or not row.active:
        raise NotFound(f"member {member_id} has no {platform} link")
    row.active, row.updated_at = False, now
    session.flush()
    service.assess(session, ctx, [member_id], reason=ChangeReason.JOINT_UNLINKED, detail=platform)


def links_of(session: Session, merchant_id: str, member_id: str) -> list[TierJointLink]:
    statement = select(TierJointLink).where(
        TierJointLink.merchant_id == merchant_id, TierJointLink.member_id == member_id
    )
    return list(session.execute(statement.order_by(TierJointLink.platform)).scalars())
