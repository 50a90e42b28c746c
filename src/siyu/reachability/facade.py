"""What other modules may use of reachability: frozen views, the operable count, quota consumption.

* :func:`reachability_of` — a member's state per channel and whether they are *operable*
  (reachable through at least one owned channel); the member 360° view shows it.
* :func:`summary` — the merchant's operable user assets, in total and per channel.
* :func:`consume_subscription` — for the messaging module: may this subscription message be sent,
  taking one unit of a one-time quota if so.

Also registers the PIPL hooks: export adds state, consent records and changes; erasure removes
state and changes, and keeps consent records as evidence (see ``docs/reachability.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from siyu.kit.clock import utcnow
from siyu.kit.ids import IdKind, new_id
from siyu.kit.money import BASIS_POINTS, round_half_up_div
from siyu.kit.pii import IdentityKind
from siyu.kit.sql import chunked
from siyu.members import facade as members
from siyu.members.rights import on_erase, on_export
from siyu.reachability import repository as repo
from siyu.reachability import service
from siyu.reachability.models import ConsentAction, ConsentRecord, ReachChange, ReachChannel, ReachState
from siyu.reachability.repository import StateRow

RECENT_CHANGES = 20


@dataclass(frozen=True, slots=True)
class TemplateView:
    """One subscription-message template: one-time quota left, or a long-term subscription."""

    template_id: str
    via: str | None
    remaining: int
    long_term: bool
    reachable: bool
    changed_at: datetime | None
    granted_at: datetime | None
    opted_out_at: datetime | None


@dataclass(frozen=True, slots=True)
class SubscriptionChannel:
    reachable: bool
    templates: tuple[TemplateView, ...]


@dataclass(frozen=True, slots=True)
class LifeAccountView:
    account_id: str | None
    """``None``: the merchant's only life account (the event named none)."""
    following: bool
    changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class LifeAccountChannel:
    reachable: bool
    accounts: tuple[LifeAccountView, ...]


@dataclass(frozen=True, slots=True)
class MiniProgramChannel:
    reachable: bool
    favorited: bool
    changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class SmsChannel:
    reachable: bool
    consent: bool
    """SMS marketing consent in force."""
    has_phone: bool
    changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class GuideChannel:
    reachable: bool
    staff_id: str | None
    changed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChangeView:
    id: str
    channel: ReachChannel
    target: str
    field: str
    old_value: str | None
    new_value: str | None
    at: datetime
    recorded_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class ReachabilityView:
    """A member's reachability (可触达) per owned channel."""

    member_id: str
    operable: bool
    """Reachable through at least one owned channel: an *operable* user asset."""
    reachable_channels: tuple[ReachChannel, ...]
    subscription: SubscriptionChannel
    life_account: LifeAccountChannel
    mini_program: MiniProgramChannel
    sms: SmsChannel
    guide: GuideChannel
    recent_changes: tuple[ChangeView, ...]


@dataclass(frozen=True, slots=True)
class SummaryView:
    """The merchant's operable user assets (可运营用户资产)."""

    as_of: datetime
    active_members: int
    operable_members: int
    operable_share_bp: int
    """``operable_members / active_members`` in basis points."""
    channels: dict[ReachChannel, int]
    """Members reachable through each channel (a member may count in several)."""


@dataclass(frozen=True, slots=True)
class ConsentView:
    id: str
    member_id: str
    purpose: str
    action: ConsentAction
    at: datetime
    recorded_at: datetime
    source: str
    method: str | None
    notice_version: str | None
    evidence: str | None


@dataclass(frozen=True, slots=True)
class ConsentStateView:
    """The consent in force for a purpose: the latest record."""

    purpose: str
    granted: bool
    at: datetime
    record_id: str
    source: str


def change_view(change: ReachChange) -> ChangeView:
    return ChangeView(
        id=change.id,
        channel=ReachChannel(change.channel),
        target=change.target,
        field=change.field,
        old_value=change.old_value,
        new_value=change.new_value,
        at=change.at,
        recorded_at=change.recorded_at,
        source=change.source,
    )


def consent_view(record: ConsentRecord) -> ConsentView:
    return ConsentView(
        id=record.id,
        member_id=record.member_id,
        purpose=record.purpose,
        action=ConsentAction(record.action),
        at=record.at,
        recorded_at=record.recorded_at,
        source=record.source,
        method=record.method,
        notice_version=record.notice_version,
        evidence=record.evidence,
    )


def consent_state_view(record: ConsentRecord) -> ConsentStateView:
    return ConsentStateView(
        purpose=record.purpose,
        granted=record.action == ConsentAction.GRANT,
        at=record.at,
        record_id=record.id,
        source=record.source,
    )


def _view(
    member_id: str, rows: list[StateRow], *, has_phone: bool, changes: tuple[ChangeView, ...]
) -> ReachabilityView:
    of = {c: [r for r in rows if r.channel == c.value] for c in ReachChannel}
    reachable = {c: any(service.row_reachable(r, has_phone=has_phone) for r in of[c]) for c in ReachChannel}
    favourite = next(iter(of[ReachChannel.MINI_PROGRAM]), None)
    sms = next(iter(of[ReachChannel.SMS]), None)
    guide = next(iter(of[ReachChannel.GUIDE]), None)
    return ReachabilityView(
        member_id=member_id,
        operable=any(reachable.values()),
        reachable_channels=tuple(c for c in ReachChannel if reachable[c]),
        subscription=SubscriptionChannel(
            reachable=reachable[ReachChannel.SUBSCRIPTION],
            templates=tuple(
                TemplateView(
                    template_id=r.target,
                    via=r.via,
                    remaining=r.remaining,
                    long_term=r.active,
                    reachable=service.row_reachable(r, has_phone=has_phone),
                    changed_at=r.changed_at,
                    granted_at=r.granted_at,
                    opted_out_at=r.opted_out_at,
                )
                for r in of[ReachChannel.SUBSCRIPTION]
            ),
        ),
        life_account=LifeAccountChannel(
            reachable=reachable[ReachChannel.LIFE_ACCOUNT],
            accounts=tuple(
                LifeAccountView(account_id=r.target or None, following=r.active, changed_at=r.changed_at)
                for r in of[ReachChannel.LIFE_ACCOUNT]
            ),
        ),
        mini_program=MiniProgramChannel(
            reachable=reachable[ReachChannel.MINI_PROGRAM],
            favorited=bool(favourite and favourite.active),
            changed_at=favourite.changed_at if favourite else None,
        ),
        sms=SmsChannel(
            reachable=reachable[ReachChannel.SMS],
            consent=bool(sms and sms.active),
            has_phone=has_phone,
            changed_at=sms.changed_at if sms else None,
        ),
        guide=GuideChannel(
            reachable=reachable[ReachChannel.GUIDE],
            staff_id=guide.staff_id if guide and guide.active else None,
            changed_at=guide.changed_at if guide else None,
        ),
        recent_changes=changes,
    )


def reachability_of(
    session: Session, merchant_id: str, member_id: str, *, recent_changes: int = RECENT_CHANGES
) -> ReachabilityView:
    """The member's state per channel (``member_id`` must be the current, not a merged, id)."""
    rows = repo.states_of(session, merchant_id, member_id)
    has_phone = members.has_identity(session, merchant_id, member_id, IdentityKind.PHONE)
    changes = (
        tuple(change_view(c) for c in repo.recent_changes(session, merchant_id, member_id, recent_changes))
        if recent_changes > 0
        else ()
    )
    return _view(member_id, rows, has_phone=has_phone, changes=changes)


def summary(session: Session, merchant_id: str, *, now: datetime) -> SummaryView:
    """How many members are operable, in total and per channel."""
    total, per_channel = repo.reachable_counts(session, merchant_id, service.reachable_clause(merchant_id))
    active = members.count_active_members(session, merchant_id)
    return SummaryView(
        as_of=now,
        active_members=active,
        operable_members=total,
        operable_share_bp=round_half_up_div(total * BASIS_POINTS, active) if active else 0,
        channels={c: per_channel.get(c.value, 0) for c in ReachChannel},
    )


def operable_member_ids(merchant_id: str) -> Select[Any]:
    """Ids of the members reachable through at least one owned channel (for list filters)."""
    return select(ReachState.member_id).where(
        ReachState.merchant_id == merchant_id, service.reachable_clause(merchant_id)
    )


def consume_subscription(
    session: Session,
    merchant_id: str,
    member_id: str,
    template_id: str,
    *,
    now: datetime,
    source: str = "send",
) -> bool:
    """May one subscription message of ``template_id`` go to the member now?

    ``True`` for a long-term subscription (nothing is consumed) or when a one-time unit was
    taken (the quota goes down by one, in one conditional UPDATE, and the change is logged with
    ``source`` — name the message, e.g. ``message:msg_…``). ``False`` otherwise: do not send.
    Pass the member's current id (a merged id has no quota left).
    """
    return service.consume_subscription(session, merchant_id, member_id, template_id, now=now, source=source)


@dataclass(frozen=True, slots=True)
class ChannelState:
    """One member's state row on one channel target (for deciding many sends at once)."""

    member_id: str
    target: str
    active: bool
    remaining: int
    opted_out_at: datetime | None
    staff_id: str | None
    changed_at: datetime | None


def channel_states(
    session: Session,
    merchant_id: str,
    member_ids: Sequence[str],
    channel: ReachChannel,
    *,
    target: str | None = None,
) -> dict[str, list[ChannelState]]:
    """The state rows of many members on ``channel`` (only ``target`` if given), in one query per
    1,000 members; members without a row are absent. Pass current (not merged) ids."""
    found: dict[str, list[ChannelState]] = {}
    for chunk in chunked(sorted(set(member_ids)), 1000):
        statement = select(
            ReachState.member_id,
            ReachState.target,
            ReachState.active,
            ReachState.remaining,
            ReachState.opted_out_at,
            ReachState.staff_id,
            ReachState.changed_at,
        ).where(
            ReachState.merchant_id == merchant_id,
            ReachState.channel == channel.value,
            ReachState.member_id.in_(chunk),
        )
        if target is not None:
            statement = statement.where(ReachState.target == target)
        for member_id, target_, active, remaining, opted_out_at, staff_id, changed_at in session.execute(
            statement
        ):
            found.setdefault(member_id, []).append(
                ChannelState(
                    member_id=member_id,
                    target=target_,
                    active=bool(active),
                    remaining=int(remaining or 0),
                    opted_out_at=opted_out_at,
                    staff_id=staff_id,
                    changed_at=changed_at,
                )
            )
    return found


def consume_subscriptions(
    session: Session,
    merchant_id: str,
    sources: Mapping[str, str],
    template_id: str,
    *,
    now: datetime,
) -> set[str]:
    """:func:`consume_subscription`'s one-time part for many members at once: takes one unit of
    each member's one-time quota of ``template_id`` in one conditional UPDATE (``remaining > 0``,
    never a long-term subscription) and logs each change with its source (``sources``: member id →
    source, e.g. ``message:msg_…``). Returns the members a unit was taken from."""
    taken: set[str] = set()
    changes: list[dict[str, Any]] = []
    for chunk in chunked(sorted(sources), 1000):
        statement = (
            update(ReachState)
            .where(
                ReachState.merchant_id == merchant_id,
                ReachState.member_id.in_(chunk),
                ReachState.channel == ReachChannel.SUBSCRIPTION.value,
                ReachState.target == template_id,
                ReachState.active.is_(False),
                ReachState.remaining > 0,
            )
            .values(remaining=ReachState.remaining - 1, updated_at=now)
            .returning(ReachState.member_id, ReachState.remaining)
            .execution_options(synchronize_session=False)
        )
        for member_id, left in session.execute(statement).all():
            taken.add(member_id)
            row = StateRow(member_id, ReachChannel.SUBSCRIPTION.value, template_id)
            changes.append(
                service.change_row(
                    merchant_id, row, "quota", left + 1, left, at=now, source=sources[member_id], now=now
                )
            )
    repo.add_changes(session, changes)
    return taken


def consents_of(session: Session, merchant_id: str, member_id: str) -> list[ConsentView]:
    return [consent_view(r) for r in repo.consents_of(session, merchant_id, member_id)]


def current_consents(session: Session, merchant_id: str, member_id: str) -> list[ConsentStateView]:
    """The consent in force per purpose (purposes never recorded are absent: no consent)."""
    current = service.current_consents(repo.consents_of(session, merchant_id, member_id))
    return [consent_state_view(current[p]) for p in sorted(current)]


# ---------------------------------------------------------------- PIPL hooks


def _export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    view = reachability_of(session, merchant_id, member_id, recent_changes=0)
    return {
        "reachability": TypeAdapter(ReachabilityView).dump_python(
            view, mode="json", exclude={"recent_changes"}
        ),
        "consents": TypeAdapter(list[ConsentView]).dump_python(
            consents_of(session, merchant_id, member_id), mode="json"
        ),
        "reachability_changes": TypeAdapter(list[ChangeView]).dump_python(
            [change_view(c) for c in repo.all_changes(session, merchant_id, member_id)], mode="json"
        ),
    }


def _erase(session: Session, merchant_id: str, member_id: str) -> None:
    """State and change log go; consent records stay as evidence, their free text cleared.

    Every consent still granted gets a closing ``withdraw`` record (source ``erasure``), so the
    log itself says that consent ended with the erasure.
    """
    now = utcnow()  # erasure listeners get no clock; this is the instant of the erasure
    records = repo.consents_of(session, merchant_id, member_id)
    for purpose, record in sorted(service.current_consents(records).items()):
        if record.action == ConsentAction.GRANT:
            session.add(
                ConsentRecord(
                    merchant_id=merchant_id,
                    id=new_id(IdKind.CONSENT),
                    member_id=member_id,
                    purpose=purpose,
                    action=ConsentAction.WITHDRAW.value,
                    at=now,
                    recorded_at=now,
                    source="erasure",
                )
            )
    for record in records:
        record.evidence = None
    repo.delete_states(session, merchant_id, [member_id])
    repo.delete_changes(session, merchant_id, [member_id])
    session.flush()


on_export(_export)
on_erase(_erase)
