"""Points rules (no HTTP, never commits): earning, spending, reversal, expiry, adjustments.

Every write of a member's points follows one order: lock the member's account row
(:func:`repo.lock_accounts`), look the idempotency key up (a replay returns the first entry),
change the balance by one relative statement (conditional for spends), take from or add lots,
and append the entry. Lots hold ``max(balance, 0)`` in total: a credit while the balance is
negative first pays the debt, and only the rest becomes a lot.

Earn rule (documented in ``docs/points.md``)::

    order points  = floor(amount_fen × points_per_yuan × multiplier_bp / (100 × 10 000))
    action points = floor(rule.points × multiplier_bp / 10 000)

Refund reversal: after refunds totalling ``R`` of an order paid ``P`` that earned ``E``, the
points taken back in total are ``min(E, round_half_up_div(E × min(R, P), P))``; each refund
takes the difference to what earlier refunds of the order took (or recorded as shortfall).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from siyu.kit.ids import IdKind, new_id
from siyu.kit.money import BASIS_POINTS
from siyu.kit.orders import OrderFact, OrderFactKind
from siyu.kit.problems import Conflict, NotFound, invalid_field
from siyu.members.service import MergeGroup, on_merges, survivors_of
from siyu.points import repository as repo
from siyu.points import rights  # noqa: F401  (registers the export and erasure hooks)
from siyu.points.ledger import LedgerWriter
from siyu.points.models import EntryKind, ExpiryPolicy, PointsEntry, PointsRule, PointsSettings
from siyu.points.rules import (
    Settings,
    action_points,
    expiry_of,
    local_day_bounds,
    order_points,
    reversal_target,
)
from siyu.tenancy import facade as tenancy

FEN_PER_YUAN = 100


@dataclass(frozen=True, slots=True)
class Posted:
    """The entry a command wrote, or the first one when its key was replayed."""

    entry: PointsEntry
    replayed: bool


class InsufficientPoints(Conflict):
    """Too few points for a spend (409, ``type`` …/insufficient-points)."""

    slug, title = "insufficient-points", "Too few points"

    def __init__(self, balance: int, wanted: int) -> None:
        super().__init__(
            f"the member has {balance} points, {wanted} needed", extra={"balance": balance, "needed": wanted}
        )


def settings_of(session: Session, merchant_id: str) -> Settings:
    stored = repo.get_settings(session, merchant_id)
    if stored is None:
        return Settings()
    return Settings(
        points_per_yuan=stored.points_per_yuan,
        expiry_policy=ExpiryPolicy(stored.expiry_policy),
        expiry_days=stored.expiry_days,
        allow_negative=stored.allow_negative,
    )


def save_settings(session: Session, merchant_id: str, settings: Settings, *, now: datetime) -> Settings:
    if settings.points_per_yuan < 0:
        raise invalid_field("/points_per_yuan", "must not be negative")
    if settings.expiry_policy is ExpiryPolicy.DAYS and not (settings.expiry_days or 0) > 0:
        raise invalid_field("/expiry_days", "the days policy needs expiry_days ≥ 1")
    stored = repo.get_settings(session, merchant_id)
    if stored is None:
        stored = PointsSettings(merchant_id=merchant_id)
        session.add(stored)
    stored.points_per_yuan = settings.points_per_yuan
    stored.expiry_policy = settings.expiry_policy.value
    stored.expiry_days = settings.expiry_days if settings.expiry_policy is ExpiryPolicy.DAYS else None
    stored.allow_negative = settings.allow_negative
    stored.updated_at = now
    session.flush()
    return settings_of(session, merchant_id)


# ---------------------------------------------------------------- batch facts (event ingestion)


def earn_for_orders(
    session: Session,
    merchant_id: str,
    orders: Sequence[OrderFact],
    *,
    multipliers_bp: Mapping[str, int],
    now: datetime,
) -> None:
    paid = [o for o in orders if o.kind is OrderFactKind.PAID and o.amount_fen > 0]
    if not paid:
        return
    settings = settings_of(session, merchant_id)
    if settings.points_per_yuan <= 0:
        return
    keyed = {f"order:{o.order_id}": o for o in paid}
    done = repo.entries_by_key(session, merchant_id, keyed)  # once per batch, not once per order
    fresh = [k for k in keyed if k not in done]
    wanted = {
        k: order_points(
            keyed[k].amount_fen,
            settings.points_per_yuan,
            int(multipliers_bp.get(keyed[k].member_id, BASIS_POINTS)),
        )
        for k in fresh
    }
    wanted = {k: p for k, p in wanted.items() if p > 0}
    if not wanted:
        return
    zone = tenancy.merchant_zone(session, merchant_id)
    balances = repo.lock_accounts(session, merchant_id, {keyed[k].member_id for k in wanted}, now)
    ledger = LedgerWriter(session, merchant_id, balances, now)
    for key in sorted(wanted, key=lambda k: (keyed[k].occurred_at, k)):
        order = keyed[key]
        ledger.credit(
            order.member_id,
            EntryKind.EARN,
            wanted[key],
            key=key,
            at=order.occurred_at,
            expires_at=expiry_of(order.occurred_at, settings, zone),
            reason="order paid",
            source=f"event:{order.event_id}",
            order_id=order.order_id,
            amount_fen=order.amount_fen,
        )
    ledger.apply()


def reverse_for_refunds(
    session: Session, merchant_id: str, refunds: Sequence[OrderFact], *, now: datetime
) -> None:
    facts = {
        f"refund:{r.event_id}": r for r in refunds if r.kind is OrderFactKind.REFUNDED and r.amount_fen > 0
    }
    if not facts:
        return
    done = repo.entries_by_key(session, merchant_id, facts)
    facts = {k: r for k, r in facts.items() if k not in done}
    if not facts:
        return
    earned: dict[str, PointsEntry] = {}
    refunded_fen: dict[str, int] = defaultdict(int)
    intended: dict[str, int] = defaultdict(int)
    for entry in repo.order_entries(session, merchant_id, {r.order_id for r in facts.values()}):
        assert entry.order_id is not None
        if entry.kind == EntryKind.EARN:
            earned[entry.order_id] = entry
        else:
            refunded_fen[entry.order_id] += entry.amount_fen or 0
            intended[entry.order_id] += -entry.points + entry.shortfall
    facts = {k: r for k, r in facts.items() if r.order_id in earned}
    if not facts:
        return
    settings = settings_of(session, merchant_id)
    # the points are taken from whoever holds the earning now (after merges: the survivor)
    balances = repo.lock_accounts(
        session, merchant_id, {earned[r.order_id].member_id for r in facts.values()}, now
    )
    ledger = LedgerWriter(session, merchant_id, balances, now)
    for key in sorted(facts, key=lambda k: (facts[k].occurred_at, k)):
        refund = facts[key]
        earn = earned[refund.order_id]
        refunded_fen[refund.order_id] += refund.amount_fen
        target = reversal_target(earn.points, earn.amount_fen or 0, refunded_fen[refund.order_id])
        want = max(0, target - intended[refund.order_id])
        intended[refund.order_id] += want
        holder = earn.member_id
        taken = ledger.debit(holder, want, allow_negative=settings.allow_negative)
        ledger.entry(
            holder,
            EntryKind.REVERSE,
            -taken,
            key=key,
            at=refund.occurred_at,
            shortfall=want - taken,
            reason="order refunded",
            source=f"event:{refund.event_id}",
            order_id=refund.order_id,
            amount_fen=refund.amount_fen,
        )
    ledger.apply()


class Action(Protocol):
    """What :func:`earn_for_actions` reads of an action (``siyu.points.facade.ActionFact``)."""

    @property
    def member_id(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...


def active_rules(session: Session, merchant_id: str) -> dict[str, PointsRule]:
    """The merchant's active action earn rules, by the event type they reward."""
    return {r.event_type: r for r in repo.list_rules(session, merchant_id) if r.active}


def earn_for_actions(
    session: Session,
    merchant_id: str,
    actions: Sequence[Action],
    *,
    multipliers_bp: Mapping[str, int],
    now: datetime,
) -> None:
    rules = active_rules(session, merchant_id)
    if not rules:
        return
    relevant = {f"action:{a.event_id}": a for a in actions if a.type in rules}
    if not relevant:
        return
    done = repo.entries_by_key(session, merchant_id, relevant)
    fresh = {k: a for k, a in relevant.items() if k not in done}
    points = {
        k: action_points(rules[a.type].points, int(multipliers_bp.get(a.member_id, BASIS_POINTS)))
        for k, a in fresh.items()
    }
    fresh = {k: a for k, a in fresh.items() if points[k] > 0}
    if not fresh:
        return
    zone = tenancy.merchant_zone(session, merchant_id)
    counts: dict[tuple[str, str, object], int] = defaultdict(int)
    capped = [a for a in fresh.values() if rules[a.type].daily_cap is not None]
    if capped:
        since = min(local_day_bounds(a.occurred_at, zone)[0] for a in capped)
        until = max(local_day_bounds(a.occurred_at, zone)[1] for a in capped)
        for member_id, type_, at in repo.action_times(
            session,
            merchant_id,
            [a.member_id for a in capped],
            sorted({a.type for a in capped}),
            since,
            until,
        ):
            counts[(member_id, type_, at.astimezone(zone).date())] += 1
    settings = settings_of(session, merchant_id)
    balances = repo.lock_accounts(session, merchant_id, {a.member_id for a in fresh.values()}, now)
    ledger = LedgerWriter(session, merchant_id, balances, now)
    for key in sorted(fresh, key=lambda k: (fresh[k].occurred_at, k)):
        action = fresh[key]
        rule = rules[action.type]
        day = (action.member_id, action.type, action.occurred_at.astimezone(zone).date())
        if rule.daily_cap is not None and counts[day] >= rule.daily_cap:
            continue
        counts[day] += 1
        ledger.credit(
            action.member_id,
            EntryKind.EARN,
            points[key],
            key=key,
            at=action.occurred_at,
            expires_at=expiry_of(action.occurred_at, settings, zone),
            reason=action.type,
            source=f"event:{action.event_id}",
            action_type=action.type,
        )
    ledger.apply()


# ---------------------------------------------------------------- commands (API, CLI, mall)


def _replay(entry: PointsEntry, kind: EntryKind, points: int) -> Posted:
    if (
        entry.kind != kind.value
        or (entry.points != points and kind is not EntryKind.SPEND)
        or (kind is EntryKind.SPEND and entry.points != -points)
    ):
        problem = Conflict("this key was used for another command; use a new key")
        problem.slug = "idempotency-key-reused"
        raise problem
    return Posted(entry, replayed=True)


def _check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > 255:
        raise invalid_field("/key", "give a key of 1–255 characters")
    return key


def adjust(
    session: Session,
    merchant_id: str,
    member_id: str,
    *,
    points: int,
    reason: str,
    key: str,
    source: str,
    now: datetime,
) -> Posted:
    """A manual adjustment (人工调整): positive makes a lot; negative takes from lots.

    A negative adjustment larger than the balance is refused (409) unless the merchant allows
    negative balances.
    """
    if points == 0:
        raise invalid_field("/points", "an adjustment must not be zero")
    if not reason.strip():
        raise invalid_field("/reason", "an adjustment needs a reason")
    ledger_key = f"client:{_check_key(key)}"
    balances = repo.lock_accounts(session, merchant_id, [member_id], now)
    found = repo.entries_by_key(session, merchant_id, [ledger_key]).get(ledger_key)
    if found is not None:
        return _replay(found, EntryKind.ADJUST, points)
    settings = settings_of(session, merchant_id)
    ledger = LedgerWriter(session, merchant_id, balances, now)
    if points > 0:
        row = ledger.credit(
            member_id,
            EntryKind.ADJUST,
            points,
            key=ledger_key,
            at=now,
            expires_at=expiry_of(now, settings, tenancy.merchant_zone(session, merchant_id)),
            reason=reason.strip(),
            source=source,
        )
    else:
        if not settings.allow_negative and balances[member_id] < -points:
            raise InsufficientPoints(balances[member_id], -points)
        ledger.debit(member_id, -points, allow_negative=settings.allow_negative)
        row = ledger.entry(
            member_id, EntryKind.ADJUST, points, key=ledger_key, at=now, reason=reason.strip(), source=source
        )
    ledger.apply()
    return Posted(_entry(session, merchant_id, row["id"]), replayed=False)


def spend(
    session: Session,
    merchant_id: str,
    member_id: str,
    *,
    points: int,
    reason: str,
    key: str,
    source: str,
    now: datetime,
    ledger_key: str | None = None,
) -> Posted:
    """Spend points (积分消耗); never below zero: too few points is a 409 and nothing changes."""
    if points <= 0:
        raise invalid_field("/points", "spend a positive number of points")
    ledger_key = ledger_key or f"client:{_check_key(key)}"
    repo.lock_accounts(session, merchant_id, [member_id], now)
    found = repo.entries_by_key(session, merchant_id, [ledger_key]).get(ledger_key)
    if found is not None:
        return _replay(found, EntryKind.SPEND, points)
    _expire_members(session, merchant_id, [member_id], now)
    # the guard against overdraft is this one conditional statement, not the locked read
    after = repo.take_from_balance(session, merchant_id, member_id, points, now, covered=True)
    if after is None:
        raise InsufficientPoints(repo.balance_of(session, merchant_id, member_id), points)
    ledger = LedgerWriter(session, merchant_id, {member_id: after + points}, now)
    ledger.debit(member_id, points, allow_negative=False)
    row = ledger.entry(
        member_id, EntryKind.SPEND, -points, key=ledger_key, at=now, reason=reason.strip(), source=source
    )
    ledger.balance_written(member_id)
    ledger.apply()
    return Posted(_entry(session, merchant_id, row["id"]), replayed=False)


def _entry(session: Session, merchant_id: str, entry_id: str) -> PointsEntry:
    found = session.get(PointsEntry, (merchant_id, entry_id))
    assert found is not None
    return found


# ---------------------------------------------------------------- expiry


def expire_due(session: Session, *, now: datetime, limit: int = 5000, merchant_id: str | None = None) -> int:
    """Expire lots past ``expires_at``: one ``expire`` entry per member and run; the lots expired."""
    merchants = [merchant_id] if merchant_id else tenancy.merchant_ids(session)
    expired = 0
    for merchant in merchants:
        if expired >= limit:
            break
        members = repo.due_lot_members(session, merchant, now, limit - expired)
        if members:
            expired += _expire_members(session, merchant, members, now)
    return expired


def _expire_members(session: Session, merchant_id: str, members: list[str], now: datetime) -> int:
    """Expire these members' lots past ``expires_at`` now; the lots expired.

    The job runs every few minutes; spending calls this for its member first, so points past
    their expiry can never be spent in the gap before the job reaches them.
    """
    balances = repo.lock_accounts(session, merchant_id, members, now)
    ledger = LedgerWriter(session, merchant_id, balances, now)
    run = new_id(IdKind.POINTS_ENTRY)
    expired = 0
    for member_id in members:
        due = repo.open_lots(session, merchant_id, member_id, due_by=now)
        total = sum(r for _i, r, _e in due)
        if total <= 0:
            continue
        ledger.takes.extend((i, r) for i, r, _e in due)
        expired += len(due)
        ledger.entry(
            member_id,
            EntryKind.EXPIRE,
            -total,
            key=f"expire:{run}:{member_id}",
            at=now,
            reason=f"{len(due)} lot(s) expired",
            source="job",
        )
    if expired:
        ledger.apply()
    return expired


# ---------------------------------------------------------------- rules CRUD


def create_rule(
    session: Session,
    merchant_id: str,
    *,
    event_type: str,
    points: int,
    daily_cap: int | None,
    active: bool,
    now: datetime,
) -> PointsRule:
    if repo.rule_by_type(session, merchant_id, event_type) is not None:
        raise Conflict(f"a rule for {event_type!r} exists; change it instead")
    if event_type in ("order_paid", "order_refunded"):
        raise invalid_field(
            "/event_type", "orders earn by points_per_yuan in the settings, not by an action rule"
        )
    rule = PointsRule(
        merchant_id=merchant_id,
        id=new_id(IdKind.POINTS_RULE),
        event_type=event_type,
        points=points,
        daily_cap=daily_cap,
        active=active,
        created_at=now,
        updated_at=now,
    )
    session.add(rule)
    session.flush()
    return rule


def update_rule(
    session: Session, merchant_id: str, rule_id: str, changes: dict[str, Any], *, now: datetime
) -> PointsRule:
    rule = repo.get_rule(session, merchant_id, rule_id)
    if rule is None:
        raise NotFound(f"no points rule {rule_id}")
    for name in ("points", "active"):
        if changes.get(name) is None and name in changes:
            raise invalid_field(f"/{name}", f"{name} cannot be null")
    for name in ("points", "daily_cap", "active"):
        if name in changes:
            setattr(rule, name, changes[name])
    rule.updated_at = now
    session.flush()
    return rule


def delete_rule(session: Session, merchant_id: str, rule_id: str) -> None:
    rule = repo.get_rule(session, merchant_id, rule_id)
    if rule is None:
        raise NotFound(f"no points rule {rule_id}")
    session.delete(rule)
    session.flush()


# ---------------------------------------------------------------- merge


@on_merges
def _on_merge(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """Balances add up on the survivor; entries, lots, exchanges and vouchers move to it."""
    survivors = [g.survivor for g in groups]
    merged = sorted(survivors_of(groups))
    balances = repo.lock_accounts(session, merchant_id, [*survivors, *merged], now)
    moved = {g.survivor: sum(balances[m] for m in g.merged) for g in groups}
    repo.move_member_rows(session, merchant_id, groups)
    repo.move_counts(session, merchant_id, groups)
    repo.delete_accounts(session, merchant_id, merged)
    repo.add_to_balances(session, merchant_id, moved, now)
    # lots hold max(balance, 0): a debt of one record is paid from the other's lots
    held = repo.open_lot_sums(session, merchant_id, survivors)
    excess = {s: held.get(s, 0) - max(balances[s] + moved[s], 0) for s in survivors}
    owing = {s: held[s] for s, n in excess.items() if n > 0}
    if owing:
        ledger = LedgerWriter(session, merchant_id, owing, now)
        for survivor in sorted(owing):
            ledger.consume(survivor, excess[survivor])
        ledger.apply()
