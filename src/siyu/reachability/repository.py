"""Every query of the reachability module; all filtered by ``merchant_id``.

The write path reads state as plain rows (never ORM objects) and writes it back with bulk
statements, so nothing stale lingers in the session's identity map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from siyu.kit.merge import MergeGroup, reassign
from siyu.kit.pagination import PageRequest, paginate
from siyu.kit.sql import chunked, insert_ignore
from siyu.reachability.models import ConsentRecord, ReachChange, ReachChannel, ReachState

CHUNK = 500
"""Members per statement (well under SQLite's limit of bound parameters)."""

Key = tuple[str, str, str]
"""``(member_id, channel, target)``."""


@dataclass(slots=True)
class StateRow:
    """One row of ``reach_states``, detached from the session (the write path computes on these)."""

    member_id: str
    channel: str
    target: str
    active: bool = False
    changed_at: datetime | None = None
    remaining: int = 0
    granted_at: datetime | None = None
    opted_out_at: datetime | None = None
    staff_id: str | None = None
    via: str | None = None
    source: str = ""

    VALUE_COLUMNS: ClassVar[tuple[str, ...]] = (
        "active",
        "changed_at",
        "remaining",
        "granted_at",
        "opted_out_at",
        "staff_id",
        "via",
        "source",
    )

    @property
    def key(self) -> Key:
        return (self.member_id, self.channel, self.target)

    def values(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "changed_at": self.changed_at,
            "remaining": self.remaining,
            "granted_at": self.granted_at,
            "opted_out_at": self.opted_out_at,
            "staff_id": self.staff_id,
            "via": self.via,
            "source": self.source[:200],
        }


_STATE_COLUMNS = (
    ReachState.member_id,
    ReachState.channel,
    ReachState.target,
    ReachState.active,
    ReachState.changed_at,
    ReachState.remaining,
    ReachState.granted_at,
    ReachState.opted_out_at,
    ReachState.staff_id,
    ReachState.via,
    ReachState.source,
)


STATES = cast(Table, ReachState.__table__)
CHANGES = cast(Table, ReachChange.__table__)


def _key_values(row: StateRow) -> dict[str, str]:
    return {"member_id": row.member_id, "channel": row.channel, "target": row.target}


def _row(values: Sequence[Any]) -> StateRow:
    return StateRow(*values)


_IN_PK_ORDER = (ReachState.member_id, ReachState.channel, ReachState.target)


def _collect(session: Session, found: dict[Key, StateRow], *criteria: ColumnElement[bool]) -> None:
    statement = select(*_STATE_COLUMNS).where(*criteria).order_by(*_IN_PK_ORDER).with_for_update()
    for values in session.execute(statement):
        row = _row(tuple(values))
        found[row.key] = row


def lock_states(session: Session, merchant_id: str, keys: Iterable[Key]) -> dict[Key, StateRow]:
    """The existing rows of these keys, locked until the transaction ends (PostgreSQL).

    Rows are locked in primary-key order, so two writers on overlapping keys queue rather than
    deadlock. Three one-column ``IN`` lists (members, channels, targets) select a small superset
    of the keys — far cheaper to send and plan than a row-value ``IN`` — and only those rows are
    locked. SQLite needs no row locks: a write transaction holds the whole database.
    """
    wanted = set(keys)
    found: dict[Key, StateRow] = {}
    for chunk in chunked(sorted(wanted), CHUNK):
        _collect(
            session,
            found,
            ReachState.merchant_id == merchant_id,
            ReachState.member_id.in_(sorted({m for m, _c, _t in chunk})),
            ReachState.channel.in_(sorted({c for _m, c, _t in chunk})),
            ReachState.target.in_(sorted({t for _m, _c, t in chunk})),
        )
    return {key: row for key, row in found.items() if key in wanted}


def lock_member_states(session: Session, merchant_id: str, member_ids: Iterable[str]) -> dict[Key, StateRow]:
    """Every row of these members, locked (merges)."""
    found: dict[Key, StateRow] = {}
    for chunk in chunked(sorted(set(member_ids)), CHUNK):
        _collect(session, found, ReachState.merchant_id == merchant_id, ReachState.member_id.in_(chunk))
    return found


def states_of(session: Session, merchant_id: str, member_id: str) -> list[StateRow]:
    statement = (
        select(*_STATE_COLUMNS)
        .where(ReachState.merchant_id == merchant_id, ReachState.member_id == member_id)
        .order_by(ReachState.channel, ReachState.target)
    )
    return [_row(tuple(values)) for values in session.execute(statement)]


def insert_states(session: Session, merchant_id: str, rows: Sequence[StateRow], now: datetime) -> set[Key]:
    """Create rows for keys never seen (one statement); answers the keys really created.

    A key a concurrent writer created first is skipped (``ON CONFLICT DO NOTHING``) and absent
    from the answer: the caller folds its facts onto that row instead.
    """
    params = [
        {"merchant_id": merchant_id, **_key_values(row), **row.values(), "updated_at": now} for row in rows
    ]
    created = insert_ignore(
        session, STATES, params, returning=(STATES.c.member_id, STATES.c.channel, STATES.c.target)
    )
    return {(str(r[0]), str(r[1]), str(r[2])) for r in created}


_UPDATE_BY_KEY = (
    update(STATES)
    .where(
        STATES.c.merchant_id == bindparam("k_merchant_id"),
        STATES.c.member_id == bindparam("k_member_id"),
        STATES.c.channel == bindparam("k_channel"),
        STATES.c.target == bindparam("k_target"),
    )
    .values({name: bindparam(name) for name in (*StateRow.VALUE_COLUMNS, "updated_at")})
)


def write_states(session: Session, merchant_id: str, rows: Sequence[StateRow], now: datetime) -> None:
    """Write computed rows back (one executemany UPDATE by primary key)."""
    if not rows:
        return
    params = [
        {
            "k_merchant_id": merchant_id,
            **{f"k_{name}": value for name, value in _key_values(row).items()},
            **row.values(),
            "updated_at": now,
        }
        for row in rows
    ]
    session.execute(_UPDATE_BY_KEY, params)


def upsert_states(session: Session, merchant_id: str, rows: Sequence[StateRow], now: datetime) -> None:
    """Write rows that may not exist yet (merges, under the survivor's row locks)."""
    created = insert_states(session, merchant_id, rows, now)
    write_states(session, merchant_id, [row for row in rows if row.key not in created], now)


def delete_states(session: Session, merchant_id: str, member_ids: Sequence[str]) -> None:
    session.execute(
        delete(ReachState).where(ReachState.merchant_id == merchant_id, ReachState.member_id.in_(member_ids))
    )


def consume_one_time(
    session: Session, merchant_id: str, member_id: str, template_id: str, now: datetime
) -> int | None:
    """Take one unit of a one-time quota: ``UPDATE … SET remaining = remaining - 1 WHERE remaining > 0``.

    Returns the quota left, or ``None`` when there was none (no row was changed). Long-term
    subscriptions are never decremented.
    """
    statement = (
        update(ReachState)
        .where(
            ReachState.merchant_id == merchant_id,
            ReachState.member_id == member_id,
            ReachState.channel == ReachChannel.SUBSCRIPTION.value,
            ReachState.target == template_id,
            ReachState.active.is_(False),
            ReachState.remaining > 0,
        )
        .values(remaining=ReachState.remaining - 1, updated_at=now)
        .returning(ReachState.remaining)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(statement).first()
    return None if row is None else int(row[0])


def long_term_subscribed(session: Session, merchant_id: str, member_id: str, template_id: str) -> bool:
    statement = select(ReachState.active).where(
        ReachState.merchant_id == merchant_id,
        ReachState.member_id == member_id,
        ReachState.channel == ReachChannel.SUBSCRIPTION.value,
        ReachState.target == template_id,
    )
    return bool(session.execute(statement).scalar_one_or_none())


def add_changes(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append to the change log (one multi-row INSERT)."""
    if rows:
        session.execute(CHANGES.insert(), list(rows))


def recent_changes(session: Session, merchant_id: str, member_id: str, limit: int) -> Sequence[ReachChange]:
    statement = (
        select(ReachChange)
        .where(ReachChange.merchant_id == merchant_id, ReachChange.member_id == member_id)
        .order_by(ReachChange.id.desc())
        .limit(limit)
    )
    return session.execute(statement).scalars().all()


def list_changes(
    session: Session, merchant_id: str, member_id: str, page: PageRequest
) -> Sequence[ReachChange]:
    statement = select(ReachChange).where(
        ReachChange.merchant_id == merchant_id, ReachChange.member_id == member_id
    )
    return session.execute(paginate(statement, ReachChange.id, page)).scalars().all()


def all_changes(session: Session, merchant_id: str, member_id: str) -> Sequence[ReachChange]:
    statement = select(ReachChange).where(
        ReachChange.merchant_id == merchant_id, ReachChange.member_id == member_id
    )
    return session.execute(statement.order_by(ReachChange.id)).scalars().all()


def move_changes(session: Session, merchant_id: str, groups: Sequence[MergeGroup]) -> None:
    reassign(session, ReachChange, merchant_id, groups, synchronize=False)


def delete_changes(session: Session, merchant_id: str, member_ids: Sequence[str]) -> None:
    session.execute(
        delete(ReachChange).where(
            ReachChange.merchant_id == merchant_id, ReachChange.member_id.in_(member_ids)
        )
    )


def consents_of(session: Session, merchant_id: str, member_id: str) -> Sequence[ConsentRecord]:
    statement = select(ConsentRecord).where(
        ConsentRecord.merchant_id == merchant_id, ConsentRecord.member_id == member_id
    )
    return session.execute(statement.order_by(ConsentRecord.id)).scalars().all()


def list_consents(
    session: Session, merchant_id: str, member_id: str, page: PageRequest
) -> Sequence[ConsentRecord]:
    statement = select(ConsentRecord).where(
        ConsentRecord.merchant_id == merchant_id, ConsentRecord.member_id == member_id
    )
    return session.execute(paginate(statement, ConsentRecord.id, page)).scalars().all()


def move_consents(session: Session, merchant_id: str, groups: Sequence[MergeGroup]) -> None:
    reassign(session, ConsentRecord, merchant_id, groups, synchronize=False)


def clear_consent_evidence(session: Session, merchant_id: str, member_id: str) -> None:
    session.execute(
        update(ConsentRecord)
        .where(ConsentRecord.merchant_id == merchant_id, ConsentRecord.member_id == member_id)
        .values(evidence=None)
        .execution_options(synchronize_session=False)
    )


def reachable_counts(
    session: Session, merchant_id: str, reachable: ColumnElement[bool]
) -> tuple[int, dict[str, int]]:
    """Members reachable through any channel, and per channel (``reachable`` is the rule)."""
    mine = and_(ReachState.merchant_id == merchant_id, reachable)
    total = session.execute(select(func.count(func.distinct(ReachState.member_id))).where(mine)).scalar_one()
    per_channel = session.execute(
        select(ReachState.channel, func.count(func.distinct(ReachState.member_id)))
        .where(mine)
        .group_by(ReachState.channel)
    ).all()
    return int(total), {str(channel): int(count) for channel, count in per_channel}
