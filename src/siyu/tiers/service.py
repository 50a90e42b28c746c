"""Tiers: record order progress, assess members, paid and joint membership, merge.

Every change of a member's tier goes through :func:`assess`, which locks the members'
``member_tiers`` rows (in member-id order, so two writers never deadlock), recomputes the earned
tier from ``tier_progress`` sums (:mod:`siyu.tiers.ladder` has the rule), and writes the effective
tier and a ``tier_changes`` row when it moved. Nothing here keeps a running counter of the
qualifying value: late, out-of-order or replayed orders cannot make it drift.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, case, delete, func, select, update
from sqlalchemy.orm import Session

from siyu.kit.ids import IdKind, new_id
from siyu.kit.orders import OrderFact
from siyu.kit.sql import chunked, insert_ignore
from siyu.members.service import MergeGroup, on_merges, people_of, reassign, survivors_of
from siyu.tenancy import facade as tenancy
from siyu.tiers.ladder import (
    Ladder,
    Periods,
    Rung,
    earned,
    growth_of,
    periods_at,
    refund_growth,
    rolling_start,
)
from siyu.tiers.models import (
    Basis,
    ChangeReason,
    MemberTier,
    Tier,
    TierChange,
    TierJointLink,
    TierJointMapping,
    TierProgress,
    TierPurchase,
    TierSettings,
)

CHUNK = 500


@dataclass(frozen=True, slots=True)
class SettingsValues:
    basis: Basis = Basis.GROWTH
    growth_per_yuan: int = 1
    period_months: int = 12


def settings_of(session: Session, merchant_id: str) -> SettingsValues:
    return settings_of_row(session.get(TierSettings, merchant_id))


def settings_of_row(row: TierSettings | None) -> SettingsValues:
    if row is None:
        return SettingsValues()
    return SettingsValues(Basis(row.basis), row.growth_per_yuan, row.period_months)


def tiers_of(session: Session, merchant_id: str) -> list[Tier]:
    statement = select(Tier).where(Tier.merchant_id == merchant_id).order_by(Tier.rank)
    return list(session.execute(statement).scalars())


def rung(tier: Tier) -> Rung:
    return Rung(tier.id, tier.name, tier.rank, tier.threshold, tier.points_multiplier_bp)


def ladder_of(session: Session, merchant_id: str) -> Ladder:
    return Ladder(rung(t) for t in tiers_of(session, merchant_id))


@dataclass(slots=True)
class Context:
    """What assessing members of one merchant at one moment needs, read once."""

    merchant_id: str
    settings: SettingsValues
    ladder: Ladder
    zone: ZoneInfo
    periods: Periods
    now: datetime


def context(session: Session, merchant_id: str, now: datetime) -> Context:
    settings = settings_of(session, merchant_id)
    zone = tenancy.merchant_zone(session, merchant_id)
    return Context(
        merchant_id,
        settings,
        ladder_of(session, merchant_id),
        zone,
        periods_at(now, zone, settings.period_months),
        now,
    )


# ---------------------------------------------------------------- qualifying values


def values_of(session: Session, ctx: Context, member_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(previous, current) qualifying value per member (see :mod:`siyu.tiers.ladder`)."""
    p = TierProgress
    if ctx.settings.basis is Basis.SPEND_365:
        column = p.spend_fen
        previous = (p.at >= rolling_start(ctx.periods.current)) & (p.at < ctx.periods.current)
        current = p.at >= rolling_start(ctx.now)
        since = rolling_start(ctx.periods.current)
    else:
        column = p.growth
        previous = (p.at >= ctx.periods.previous) & (p.at < ctx.periods.current)
        current = p.at >= ctx.periods.current
        since = ctx.periods.previous
    statement = (
        select(
            p.member_id,
            func.coalesce(func.sum(case((previous, column), else_=0)), 0),
            func.coalesce(func.sum(case((current, column), else_=0)), 0),
        )
        .where(p.merchant_id == ctx.merchant_id, p.member_id.in_(member_ids), p.at >= since)
        .group_by(p.member_id)
    )
    return {m: (int(a), int(b)) for m, a, b in session.execute(statement).all()}


def floors_of(session: Session, ctx: Context, member_ids: Sequence[str]) -> dict[str, list[TierJointLink]]:
    """Each member's joint links that hold now (active, not past ``valid_until``)."""
    statement = select(TierJointLink).where(
        TierJointLink.merchant_id == ctx.merchant_id,
        TierJointLink.member_id.in_(member_ids),
        TierJointLink.active.is_(True),
    )
    links: dict[str, list[TierJointLink]] = defaultdict(list)
    for link in session.execute(statement).scalars():
        links[link.member_id].append(link)
    return links


def mappings_of(session: Session, merchant_id: str) -> dict[tuple[str, str], str]:
    statement = select(TierJointMapping).where(TierJointMapping.merchant_id == merchant_id)
    return {(m.platform, m.external_level): m.tier_id for m in session.execute(statement).scalars()}


# ---------------------------------------------------------------- assessment


def create_rows(session: Session, ctx: Context, member_ids: Iterable[str]) -> None:
    """A ``member_tiers`` row at the entry tier for each member without one (others untouched)."""
    entry = ctx.ladder.entry
    tier_id = entry.id if entry else None
    base: dict[str, object] = {"merchant_id": ctx.merchant_id, "tier_id": tier_id, "earned_tier_id": tier_id}
    base |= {"assessed_period": ctx.periods.label, "since": ctx.now, "updated_at": ctx.now}
    rows = [base | {"member_id": m} for m in sorted(set(member_ids))]
    insert_ignore(session, MemberTier.__table__, rows)  # type: ignore[arg-type]


def lock_rows(session: Session, ctx: Context, member_ids: Sequence[str]) -> dict[str, MemberTier]:
    """The members' rows, created at the entry tier where missing, locked in member-id order."""
    create_rows(session, ctx, member_ids)
    statement = (
        select(MemberTier)
        .where(MemberTier.merchant_id == ctx.merchant_id, MemberTier.member_id.in_(member_ids))
        .order_by(MemberTier.member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.member_id: row for row in session.execute(statement).scalars()}


@dataclass(frozen=True, slots=True)
class Assessed:
    member_id: str
    from_tier_id: str | None
    to_tier_id: str | None
    reason: ChangeReason


def assess(
    session: Session,
    ctx: Context,
    member_ids: Iterable[str],
    *,
    reason: ChangeReason | None = None,
    detail: str = "",
    details: Mapping[str, str] | None = None,
) -> list[Assessed]:
    """Re-assess members now; the changes of effective tier (each recorded in ``tier_changes``).

    ``reason`` names the cause when the caller knows it (a purchase, a link); otherwise it is
    derived: an earned tier that rose (upgrade) or was re-assessed at a period end, a paid
    membership or a joint link that ended by itself. ``details`` gives a member its own
    ``detail`` (a merge names each survivor's merged members).

    Works on plain rows, not ORM objects (an order batch assesses thousands of members): the
    session is flushed first, so a caller's changes to its ``MemberTier`` objects count, and those
    objects are expired after, so they read what was written. Only rows whose state changed are
    written (``updated_at`` moves with them)."""
    ids = sorted(set(member_ids))
    if not ids or not ctx.ladder:
        return []
    session.flush()
    changes: list[Assessed] = []
    mappings = mappings_of(session, ctx.merchant_id)
    for chunk in chunked(ids, CHUNK):
        rows = _lock_plain(session, ctx, chunk)
        before = {m: row.state() for m, row in rows.items()}
        values = values_of(session, ctx, chunk)
        links = floors_of(session, ctx, chunk)
        for member_id in chunk:
            change = _assess_one(
                ctx,
                rows[member_id],
                values.get(member_id, (0, 0)),
                links.get(member_id, []),
                mappings,
                reason,
                detail,
            )
            if change is not None:
                changes.append(change)
        _write_plain(session, ctx, [row for m, row in rows.items() if row.state() != before[m]])
    _expire_loaded(session, ctx.merchant_id, set(ids))
    if changes:
        session.add_all(
            TierChange(
                merchant_id=ctx.merchant_id,
                id=new_id(IdKind.TIER_CHANGE),
                member_id=c.member_id,
                from_tier_id=c.from_tier_id,
                to_tier_id=c.to_tier_id,
                reason=c.reason,
                detail=(details or {}).get(c.member_id, detail)[:200],
                at=ctx.now,
            )
            for c in changes
        )
    session.flush()
    return changes


_TIERS = cast(Table, MemberTier.__table__)
_STATE = (
    "tier_id",
    "earned_tier_id",
    "assessed_period",
    "paid_tier_id",
    "paid_until",
    "next_change_at",
    "since",
)


@dataclass(slots=True)
class _Plain:
    """The columns of a ``member_tiers`` row an assessment reads and writes."""

    member_id: str
    tier_id: str | None
    earned_tier_id: str | None
    assessed_period: str | None
    paid_tier_id: str | None
    paid_until: datetime | None
    next_change_at: datetime | None
    since: datetime
    updated_at: datetime

    def state(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _STATE)


def _lock_plain(session: Session, ctx: Context, member_ids: Sequence[str]) -> dict[str, _Plain]:
    """:func:`lock_rows` as plain rows."""
    create_rows(session, ctx, member_ids)
    statement = (
        select(*(_TIERS.c[name] for name in _Plain.__slots__))
        .where(_TIERS.c.merchant_id == ctx.merchant_id, _TIERS.c.member_id.in_(member_ids))
        .order_by(_TIERS.c.member_id)
        .with_for_update()
    )
    return {values[0]: _Plain(*values) for values in session.execute(statement)}


def _write_plain(session: Session, ctx: Context, rows: Sequence[_Plain]) -> None:
    if not rows:
        return
    statement = (
        update(_TIERS)
        .where(_TIERS.c.merchant_id == ctx.merchant_id, _TIERS.c.member_id == bindparam("b_member"))
        .values({name: bindparam(f"b_{name}") for name in (*_STATE, "updated_at")})
    )
    params = [
        {
            "b_member": row.member_id,
            "b_updated_at": ctx.now,
            **{f"b_{name}": getattr(row, name) for name in _STATE},
        }
        for row in rows
    ]
    session.connection().execute(statement, params)


def _expire_loaded(session: Session, merchant_id: str, member_ids: set[str]) -> None:
    """Expire the ``MemberTier`` objects of these members the session holds (written around it)."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, MemberTier) and obj.merchant_id == merchant_id and obj.member_id in member_ids:
            session.expire(obj)


def _assess_one(
    ctx: Context,
    row: _Plain,
    values: tuple[int, int],
    links: list[TierJointLink],
    mappings: Mapping[tuple[str, str], str],
    reason: ChangeReason | None,
    detail: str,
) -> Assessed | None:
    ladder, now = ctx.ladder, ctx.now
    causes: list[ChangeReason] = []
    computed = earned(ladder, *values)
    held = ladder.get(row.earned_tier_id)
    if row.assessed_period == ctx.periods.label and held is not None:
        new_earned = ladder.best([held.id, computed.id if computed else None])
    else:
        new_earned = computed  # a period ended since: the only time an earned tier goes down
    if new_earned and (held is None or new_earned.rank > held.rank):
        causes.append(
            ChangeReason.UPGRADE if row.assessed_period == ctx.periods.label else ChangeReason.PERIOD_END
        )
    elif new_earned and held and new_earned.rank < held.rank:
        causes.append(ChangeReason.PERIOD_END)
    row.earned_tier_id = new_earned.id if new_earned else None
    row.assessed_period = ctx.periods.label
    if row.paid_until is not None and row.paid_until <= now:
        row.paid_tier_id, row.paid_until = None, None
        causes.append(ChangeReason.PAID_ENDED)
    floors: list[str] = []
    ends: list[datetime] = [row.paid_until] if row.paid_until else []
    for link in links:
        if link.valid_until is not None and link.valid_until <= now:
            link.active = False
            link.updated_at = now
            causes.append(ChangeReason.JOINT_UNLINKED)
            continue
        mapped = mappings.get((link.platform, link.external_level))
        if mapped:
            floors.append(mapped)
        if link.valid_until is not None:
            ends.append(link.valid_until)
    row.next_change_at = min(ends) if ends else None
    effective = ladder.best([row.earned_tier_id, row.paid_tier_id, *floors])
    to_id = effective.id if effective else None
    row.updated_at = now
    if to_id == row.tier_id:
        return None
    from_id, row.tier_id, row.since = row.tier_id, to_id, now
    why = reason or (causes[0] if causes else ChangeReason.PERIOD_END)
    return Assessed(row.member_id, from_id, to_id, why)


# ---------------------------------------------------------------- orders


def record_orders(
    session: Session,
    merchant_id: str,
    paid: Sequence[OrderFact],
    refunds: Sequence[OrderFact],
    *,
    now: datetime,
) -> list[Assessed]:
    """Progress entries for paid and refunded orders (idempotent by order id and refund event
    id), then an assessment of the members whose progress moved: upgrades at once."""
    ctx = context(session, merchant_id, now)
    growth_per_yuan = ctx.settings.growth_per_yuan
    rows = [_paid_row(merchant_id, f, growth_per_yuan, now) for f in paid]
    rows += _refund_rows(session, merchant_id, refunds, growth_per_yuan, now)
    inserted = insert_ignore(
        session,
        TierProgress.__table__,  # type: ignore[arg-type]
        rows,
        returning=[TierProgress.__table__.c.member_id],
    )
    moved = {member_id for (member_id,) in inserted}
    return assess(session, ctx, moved) if moved else []


def _paid_row(merchant_id: str, fact: OrderFact, growth_per_yuan: int, now: datetime) -> dict[str, object]:
    return {
        "merchant_id": merchant_id,
        "id": new_id(IdKind.TIER_PROGRESS),
        "key": f"paid:{fact.order_id}",
        "member_id": fact.member_id,
        "order_id": fact.order_id,
        "growth": growth_of(max(fact.amount_fen, 0), growth_per_yuan),
        "spend_fen": max(fact.amount_fen, 0),
        "at": fact.occurred_at,
        "recorded_at": now,
    }


def _refund_rows(
    session: Session, merchant_id: str, refunds: Sequence[OrderFact], growth_per_yuan: int, now: datetime
) -> list[dict[str, object]]:
    if not refunds:
        return []
    order_ids = sorted({f.order_id for f in refunds})
    paid_fen: dict[str, int] = {}
    refunded: dict[str, int] = defaultdict(int)
    seen: set[str] = set()
    for chunk in chunked(order_ids, CHUNK):
        statement = select(TierProgress.key, TierProgress.order_id, TierProgress.spend_fen).where(
            TierProgress.merchant_id == merchant_id, TierProgress.order_id.in_(chunk)
        )
        for key, order_id, spend in session.execute(statement).all():
            seen.add(key)
            if key.startswith("paid:"):
                paid_fen[order_id] = spend
            else:
                refunded[order_id] -= spend
    rows = []
    for fact in refunds:
        key = f"refund:{fact.event_id}"
        if key in seen:
            continue
        seen.add(key)
        amount = max(fact.amount_fen, 0)
        if fact.order_id in paid_fen:
            growth, counted = refund_growth(
                paid_fen[fact.order_id], refunded[fact.order_id], amount, growth_per_yuan
            )
        else:  # the order was paid before tiers existed, or its event has not arrived yet
            growth, counted = growth_of(amount, growth_per_yuan), amount
        refunded[fact.order_id] += counted
        rows.append(
            {
                "merchant_id": merchant_id,
                "id": new_id(IdKind.TIER_PROGRESS),
                "key": key,
                "member_id": fact.member_id,
                "order_id": fact.order_id,
                "growth": -growth,
                "spend_fen": -counted,
                "at": fact.occurred_at,
                "recorded_at": now,
            }
        )
    return rows


def multipliers_of(
    session: Session, merchant_id: str, member_ids: Iterable[str], *, now: datetime
) -> dict[str, int]:
    """The points multiplier (basis points) of each member's effective tier *now*, for members
    whose tier has one other than 1×. Members due a re-assessment (a period ended, a paid
    membership or a link ran out) are re-assessed first, so the figure is never stale."""
    ids = sorted(set(member_ids))
    ctx = context(session, merchant_id, now)
    if not ids or not ctx.ladder:
        return {}
    due = due_members(session, ctx, ids)
    if due:
        assess(session, ctx, due)
    tiers: dict[str, str | None] = {}
    for chunk in chunked(ids, CHUNK):
        statement = select(MemberTier.member_id, MemberTier.tier_id).where(
            MemberTier.merchant_id == merchant_id, MemberTier.member_id.in_(chunk)
        )
        tiers.update(dict(session.execute(statement).all()))
    result = {}
    for member_id in ids:
        tier = ctx.ladder.get(tiers.get(member_id)) or ctx.ladder.entry
        if tier is not None and tier.multiplier_bp != 10_000:
            result[member_id] = tier.multiplier_bp
    return result


def due_members(
    session: Session, ctx: Context, member_ids: Sequence[str] | None = None, limit: int = 10_000
) -> list[str]:
    """Members whose stored tier may be stale: assessed in an earlier period, or something of
    theirs (a paid membership, a link) has ended by now."""
    statement = select(MemberTier.member_id).where(
        MemberTier.merchant_id == ctx.merchant_id,
        (MemberTier.assessed_period != ctx.periods.label)
        | MemberTier.assessed_period.is_(None)
        | (MemberTier.next_change_at <= ctx.now),
    )
    if member_ids is not None:
        statement = statement.where(MemberTier.member_id.in_(member_ids))
    return list(session.execute(statement.order_by(MemberTier.member_id).limit(limit)).scalars())


# ---------------------------------------------------------------- merge and erasure


@on_merges
def _on_merge(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """Progress, purchases, history and links move to the survivor (the survivor's own link to a
    platform wins); the best paid membership is kept; then the survivor is re-assessed."""
    for model in (TierProgress, TierPurchase, TierChange):
        reassign(session, model, merchant_id, groups, synchronize=False)
    ctx = context(session, merchant_id, now)
    merged_ids = sorted(survivors_of(groups))
    survivors = [g.survivor for g in groups]
    rows = lock_rows(session, ctx, sorted([*survivors, *merged_ids])) if ctx.ladder else {}
    _move_links(session, merchant_id, groups, now)
    for group in groups:
        keeper = rows.get(group.survivor)
        for member_id in group.merged:
            other = rows.get(member_id)
            if keeper is None or other is None or other.paid_until is None:
                continue
            mine = ctx.ladder.get(keeper.paid_tier_id)
            theirs = ctx.ladder.get(other.paid_tier_id)
            if keeper.paid_until is None or (
                theirs and mine and (theirs.rank, other.paid_until) > (mine.rank, keeper.paid_until)
            ):
                keeper.paid_tier_id, keeper.paid_until = other.paid_tier_id, other.paid_until
    session.flush()
    for chunk in chunked(merged_ids, CHUNK):
        session.execute(
            delete(MemberTier).where(MemberTier.merchant_id == merchant_id, MemberTier.member_id.in_(chunk))
        )
    if ctx.ladder:
        details = {g.survivor: f"merged {', '.join(g.merged)}"[:200] for g in groups}
        assess(session, ctx, survivors, reason=ChangeReason.MERGE, details=details)


def _move_links(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    survivor_of = people_of(groups)
    links: list[TierJointLink] = []
    for chunk in chunked(sorted(survivor_of), CHUNK):
        statement = select(TierJointLink).where(
            TierJointLink.merchant_id == merchant_id, TierJointLink.member_id.in_(chunk)
        )
        links.extend(session.execute(statement).scalars())
    kept = {(m.member_id, m.platform) for m in links if survivor_of[m.member_id] == m.member_id}
    for link in links:
        survivor = survivor_of[link.member_id]
        if link.member_id == survivor:
            continue
        if (survivor, link.platform) in kept:
            session.delete(link)
        else:
            kept.add((survivor, link.platform))
            session.add(
                TierJointLink(
                    merchant_id=merchant_id,
                    member_id=survivor,
                    platform=link.platform,
                    external_level=link.external_level,
                    active=link.active,
                    valid_until=link.valid_until,
                    linked_at=link.linked_at,
                    updated_at=now,
                )
            )
            session.delete(link)
    session.flush()


def delete_member_rows(session: Session, merchant_id: str, member_id: str) -> None:
    """Erasure: the member's tier state, links, progress and history go; purchases stay (the
    merchant's record of payments)."""
    for model in (MemberTier, TierJointLink, TierProgress, TierChange):
        session.execute(delete(model).where(model.merchant_id == merchant_id, model.member_id == member_id))
