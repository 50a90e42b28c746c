"""Every query of the members module; all filtered by ``merchant_id``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, insert, select, tuple_
from sqlalchemy.orm import Session

from siyu.kit.bulk import execute_many
from siyu.kit.merge import MergeGroup, reassign, survivors_of
from siyu.kit.pagination import PageRequest, paginate
from siyu.kit.sql import chunked, in_list
from siyu.members.models import Member, MemberIdentity, MemberStatus, MemberTag


def get_member(session: Session, merchant_id: str, member_id: str) -> Member | None:
    return session.get(Member, (merchant_id, member_id))


def member_status(session: Session, merchant_id: str, member_id: str) -> tuple[str, str, str | None] | None:
    """``(id, status, merged_into_id)`` of one member, without loading it into the session."""
    row = session.execute(
        select(Member.id, Member.status, Member.merged_into_id).where(
            Member.merchant_id == merchant_id, Member.id == member_id
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def identities_by_index(
    session: Session, merchant_id: str, keys: Iterable[tuple[str, str]]
) -> Sequence[MemberIdentity]:
    """Identities with these ``(kind, blind_index)`` pairs."""
    wanted = list(keys)
    if not wanted:
        return []
    statement = select(MemberIdentity).where(
        MemberIdentity.merchant_id == merchant_id,
        tuple_(MemberIdentity.kind, MemberIdentity.blind_index).in_(wanted),
    )
    return session.execute(statement).scalars().all()


LOOKUP_CHUNK = 500


def owners_by_index(
    session: Session, merchant_id: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """``(kind, blind_index) -> member_id`` for the identities that exist (one query per kind
    and 500 keys, each an index range on the primary key)."""
    by_kind: dict[str, list[str]] = {}
    for kind, blind in keys:
        by_kind.setdefault(kind, []).append(blind)
    found: dict[tuple[str, str], str] = {}
    for kind, blinds in by_kind.items():
        for start in range(0, len(blinds), LOOKUP_CHUNK):
            params = {
                "merchant_id": merchant_id,
                "kind": kind,
                "blinds": blinds[start : start + LOOKUP_CHUNK],
            }
            for blind, member_id in session.execute(_OWNERS, params):
                found[(kind, blind)] = member_id
    return found


_OWNERS = select(MemberIdentity.__table__.c.blind_index, MemberIdentity.__table__.c.member_id).where(
    MemberIdentity.__table__.c.merchant_id == bindparam("merchant_id"),
    MemberIdentity.__table__.c.kind == bindparam("kind"),
    in_list(MemberIdentity.__table__.c.blind_index, "blinds"),
)
"""Built once: every ingested event's identities are looked up here (the payment-success
decision's payer among them)."""


_members = cast(Table, Member.__table__)
_identities = cast(Table, MemberIdentity.__table__)


def insert_members(session: Session, rows: Sequence[dict[str, object]]) -> None:
    execute_many(session, _members, "members.insert", lambda _: insert(_members), rows)


def insert_identities(session: Session, rows: Sequence[dict[str, object]]) -> None:
    """Insert in primary-key order. Two transactions adding some of the same new identities
    each wait, at the first one the other holds, for the other to end (then fail on the unique
    key and resolve again); in key order those waits cannot form a cycle. In arrival order, two
    senders' batches carrying the same new people in different orders deadlocked on PostgreSQL
    (a 503 to one of them; bench/ingest.py --server --workers 2 --clients 2, 2026-11-29)."""
    ordered = sorted(rows, key=lambda row: (str(row["kind"]), str(row["blind_index"])))
    execute_many(session, _identities, "member_identities.insert", lambda _: insert(_identities), ordered)


def identities_of(session: Session, merchant_id: str, member_id: str) -> Sequence[MemberIdentity]:
    statement = select(MemberIdentity).where(
        MemberIdentity.merchant_id == merchant_id, MemberIdentity.member_id == member_id
    )
    return (
        session.execute(statement.order_by(MemberIdentity.kind, MemberIdentity.first_seen_at)).scalars().all()
    )


def move_identities(session: Session, merchant_id: str, groups: Sequence[MergeGroup]) -> None:
    reassign(session, MemberIdentity, merchant_id, groups, synchronize=False)


def redirect_merged(session: Session, merchant_id: str, groups: Sequence[MergeGroup]) -> None:
    """Point members merged earlier into a merged member at its new survivor (no chains)."""
    reassign(session, Member, merchant_id, groups, "merged_into_id")


def mark_merged(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """The merged members: status ``merged``, ``merged_into_id`` their survivor."""
    values = {"status": MemberStatus.MERGED, "updated_at": now}
    reassign(session, Member, merchant_id, groups, "merged_into_id", by="id", values=values)


def active_member_ids(session: Session, merchant_id: str) -> list[str]:
    statement = select(Member.id).where(
        Member.merchant_id == merchant_id, Member.status == MemberStatus.ACTIVE
    )
    return list(session.execute(statement.order_by(Member.id)).scalars().all())


def list_members(
    session: Session,
    merchant_id: str,
    page: PageRequest,
    *,
    tag: str | None = None,
    within: Sequence[Select[Any]] = (),
    outside: Sequence[Select[Any]] = (),
) -> Sequence[Member]:
    """Active members, by id; ``within``/``outside`` are other modules' member-id queries (of
    this merchant) the members must / must not be in — a stage, operable, a rollup range."""
    statement = select(Member).where(Member.merchant_id == merchant_id, Member.status == MemberStatus.ACTIVE)
    if tag is not None:
        tagged = select(MemberTag.member_id).where(MemberTag.merchant_id == merchant_id, MemberTag.tag == tag)
        statement = statement.where(Member.id.in_(tagged))
    for ids in within:
        statement = statement.where(Member.id.in_(ids))
    for ids in outside:
        statement = statement.where(Member.id.not_in(ids))
    return session.execute(paginate(statement, Member.id, page)).scalars().all()


def tags_of(session: Session, merchant_id: str, member_id: str) -> list[str]:
    statement = select(MemberTag.tag).where(
        MemberTag.merchant_id == merchant_id, MemberTag.member_id == member_id
    )
    return sorted(session.execute(statement).scalars().all())


def remove_tag(session: Session, merchant_id: str, member_id: str, tag: str) -> None:
    session.execute(
        delete(MemberTag).where(
            MemberTag.merchant_id == merchant_id, MemberTag.member_id == member_id, MemberTag.tag == tag
        )
    )


def move_tags(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """Give each survivor the union of its merged members' tags."""
    survivor_of = survivors_of(groups)
    merged = sorted(survivor_of)
    survivors = sorted({g.survivor for g in groups})
    moving: set[tuple[str, str]] = set()
    have: set[tuple[str, str]] = set()
    for ids, into, mapping in ((merged, moving, survivor_of), (survivors, have, None)):
        for chunk in chunked(ids, LOOKUP_CHUNK):
            statement = select(MemberTag.member_id, MemberTag.tag).where(
                MemberTag.merchant_id == merchant_id, MemberTag.member_id.in_(chunk)
            )
            into.update((mapping[m] if mapping else m, tag) for m, tag in session.execute(statement))
    if not moving:
        return
    for chunk in chunked(merged, LOOKUP_CHUNK):
        session.execute(
            delete(MemberTag)
            .where(MemberTag.merchant_id == merchant_id, MemberTag.member_id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    session.add_all(
        MemberTag(merchant_id=merchant_id, member_id=member_id, tag=tag, created_at=now)
        for member_id, tag in sorted(moving - have)
    )
