"""What other modules may use of tiers (会员等级).

* :func:`multipliers_of` then :func:`record_orders` — called by the loyalty glue once per ingested
  batch, in the events' transaction: the multipliers are read *before* the batch's orders count
  (an order that lifts a member earns points at the tier held when paying).
* :func:`tier_of`, :func:`history_of` — the member 360° view.
* :func:`run_due` — the hourly job (re-assessments, monthly privileges, birthday gifts).

The merge and erasure listeners are registered by ``siyu.tiers.service`` and ``siyu.tiers.rights``
(imported here, so importing the facade wires them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.kit.orders import OrderFact
from siyu.tiers import jobs, rights, service  # noqa: F401 - rights registers the PIPL hooks
from siyu.tiers.jobs import JobReport, Progress
from siyu.tiers.ladder import Ladder
from siyu.tiers.models import MemberTier, TierChange

if TYPE_CHECKING:  # the schemas import this module's views
    from siyu.tiers.schemas import MappingOut, TierOut

__all__ = ["JobReport", "Progress"]


@dataclass(frozen=True, slots=True)
class TierRef:
    id: str
    name: str
    rank: int


@dataclass(frozen=True, slots=True)
class TierView:
    """A member's tier now, why, and how far the next one is."""

    tier: TierRef | None
    """``None`` only when the merchant has no tiers."""
    earned: TierRef | None
    paid: TierRef | None
    paid_until: datetime | None
    floors: tuple[str, ...]
    """The joint-membership links that hold (``platform:level``)."""
    since: datetime | None
    basis: str
    value: int
    """The qualifying value in the current period (growth) or over the last 365 days (spend)."""
    previous_value: int
    """The value of the previous period (growth) or over the 365 days before this period began."""
    next_tier: TierRef | None
    to_next: int | None
    """What the value still needs to reach ``next_tier`` (``None`` at the top)."""
    period_started_at: datetime
    period_ends_at: datetime
    """The next time an earned tier can go down."""
    multiplier_bp: int


@dataclass(frozen=True, slots=True)
class TierChangeView:
    id: str
    from_tier_id: str | None
    to_tier_id: str | None
    reason: str
    detail: str
    at: datetime


def _ref(ladder: Ladder, tier_id: str | None) -> TierRef | None:
    rung = ladder.get(tier_id)
    return TierRef(rung.id, rung.name, rung.rank) if rung else None


def multipliers_of(
    session: Session, merchant_id: str, member_ids: Iterable[str], *, now: datetime
) -> dict[str, int]:
    """Points multipliers (basis points, 10 000 = 1×) of members whose tier has one ≠ 1×."""
    return service.multipliers_of(session, merchant_id, member_ids, now=now)


def record_orders(
    session: Session,
    merchant_id: str,
    paid: Sequence[OrderFact],
    refunds: Sequence[OrderFact],
    *,
    now: datetime,
) -> int:
    """Count paid and refunded orders towards tiers (idempotent); the number of tier changes."""
    return len(service.record_orders(session, merchant_id, paid, refunds, now=now))


def tier_of(session: Session, merchant_id: str, member_id: str, *, now: datetime) -> TierView:
    ctx = service.context(session, merchant_id, now)
    ladder = ctx.ladder
    row = session.get(MemberTier, (merchant_id, member_id))
    if ladder and (row is None or service.due_members(session, ctx, [member_id])):
        service.assess(session, ctx, [member_id])  # a reader sees what the job would write
        row = session.get(MemberTier, (merchant_id, member_id))
    previous, current = service.values_of(session, ctx, [member_id]).get(member_id, (0, 0))
    links = service.floors_of(session, ctx, [member_id]).get(member_id, [])
    tier_id = row.tier_id if row else (ladder.entry.id if ladder.entry else None)
    tier = ladder.get(tier_id)
    earned = ladder.get(row.earned_tier_id) if row else ladder.entry
    nxt = ladder.next_above(earned)
    paid_live = row is not None and row.paid_until is not None and row.paid_until > now
    return TierView(
        tier=_ref(ladder, tier_id),
        earned=_ref(ladder, earned.id if earned else None),
        paid=_ref(ladder, row.paid_tier_id) if row and paid_live else None,
        paid_until=row.paid_until if row and paid_live else None,
        floors=tuple(
            f"{link.platform}:{link.external_level}"
            for link in links
            if link.valid_until is None or link.valid_until > now
        ),
        since=row.since if row else None,
        basis=ctx.settings.basis.value,
        value=current,
        previous_value=previous,
        next_tier=_ref(ladder, nxt.id if nxt else None),
        to_next=max(nxt.threshold - current, 0) if nxt else None,
        period_started_at=ctx.periods.current,
        period_ends_at=ctx.periods.next,
        multiplier_bp=tier.multiplier_bp if tier else 10_000,
    )


def history_of(
    session: Session, merchant_id: str, member_id: str, *, limit: int = 20
) -> list[TierChangeView]:
    """The member's tier changes, newest first."""
    statement = (
        select(TierChange)
        .where(TierChange.merchant_id == merchant_id, TierChange.member_id == member_id)
        .order_by(TierChange.at.desc(), TierChange.id.desc())
        .limit(limit)
    )
    return [
        TierChangeView(c.id, c.from_tier_id, c.to_tier_id, c.reason, c.detail, c.at)
        for c in session.execute(statement).scalars()
    ]


def run_due(
    session: Session,
    merchant_id: str,
    *,
    now: datetime,
    progress: Progress | None = None,
    max_members: int | None = None,
) -> JobReport:
    """The merchant's tier jobs (idempotent): due re-assessments, monthly privileges, birthdays;
    with ``max_members`` a slice of them (``report.done`` says if anything is left)."""
    return jobs.run_due(session, merchant_id, now=now, progress=progress, max_members=max_members)


# ---------------------------------------------------------------- the ladder and joint membership (console)


def ladder(session: Session, merchant_id: str) -> list[TierOut]:
    """The tiers, lowest first."""
    from siyu.tiers.schemas import TierOut

    return [TierOut.model_validate(t) for t in service.tiers_of(session, merchant_id)]


def create_tier(session: Session, merchant_id: str, values: Mapping[str, Any], *, now: datetime) -> TierOut:
    """Add a tier, validated like ``POST /tiers`` (pydantic ``ValidationError``; a 422 problem
    for a rank or name already used)."""
    from siyu.tiers import membership
    from siyu.tiers.schemas import TierIn, TierOut

    body = TierIn.model_validate(dict(values))
    return TierOut.model_validate(membership.create_tier(session, merchant_id, body.model_dump(), now=now))


def joint_mappings(session: Session, merchant_id: str) -> list[MappingOut]:
    """Every platform's external level → tier map."""
    from siyu.tiers import membership
    from siyu.tiers.schemas import MappingOut

    return [MappingOut.model_validate(m) for m in membership.mappings(session, merchant_id)]


def put_joint_mapping(
    session: Session, merchant_id: str, platform: str, levels: Mapping[str, str], *, now: datetime
) -> list[MappingOut]:
    """Replace one platform's map (a 422 naming a level whose tier is unknown)."""
    from siyu.tiers import membership
    from siyu.tiers.schemas import MappingIn, MappingOut

    body = MappingIn.model_validate({"levels": dict(levels)})
    return [
        MappingOut.model_validate(m)
        for m in membership.put_mapping(session, merchant_id, platform, body.levels, now=now)
    ]
