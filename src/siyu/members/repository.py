"""Every query of the members module; all filtered by ``merchant_id``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from siyu.kit.pagination import PageRequest, paginate
from siyu.members.models import Member, MemberIdentity, MemberStatus, MemberTag


def get_member(session: Session, merchant_id: str, member_id: str) -> Member | None:
    return session.get(Member, (merchant_id, member_id))


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


def identities_of(session: Session, merchant_id: str, member_id: str) -> Sequence[MemberIdentity]:
    statement = select(MemberIdentity).where(
        MemberIdentity.merchant_id == merchant_id, MemberIdentity.member_id == member_id
    )
    return (
        session.execute(statement.order_by(MemberIdentity.kind, MemberIdentity.first_seen_at)).scalars().all()
    )


def move_identities(session: Session, merchant_id: str, from_ids: Sequence[str], to_id: str) -> None:
    session.execute(
        update(MemberIdentity)
        .where(MemberIdentity.merchant_id == merchant_id, MemberIdentity.member_id.in_(from_ids))
        .values(member_id=to_id)
    )


def redirect_merged(session: Session, merchant_id: str, from_ids: Sequence[str], to_id: str) -> None:
    """Point members merged earlier into ``from_ids`` at the new survivor (no chains)."""
    session.execute(
        update(Member)
        .where(Member.merchant_id == merchant_id, Member.merged_into_id.in_(from_ids))
        .values(merged_into_id=to_id)
    )


def active_member_ids(session: Session, merchant_id: str) -> list[str]:
    statement = select(Member.id).where(
        Member.merchant_id == merchant_id, Member.status == MemberStatus.ACTIVE
    )
    return list(session.execute(statement.order_by(Member.id)).scalars().all())


def list_members(
    session: Session, merchant_id: str, page: PageRequest, *, tag: str | None = None
) -> Sequence[Member]:
    statement = select(Member).where(Member.merchant_id == merchant_id, Member.status == MemberStatus.ACTIVE)
    if tag is not None:
        tagged = select(MemberTag.member_id).where(MemberTag.merchant_id == merchant_id, MemberTag.tag == tag)
        statement = statement.where(Member.id.in_(tagged))
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


def move_tags(session: Session, merchant_id: str, from_ids: Sequence[str], to_id: str, now: datetime) -> None:
    """Give the survivor the union of the merged members' tags."""
    moving = set(
        session.execute(
            select(MemberTag.tag).where(
                MemberTag.merchant_id == merchant_id, MemberTag.member_id.in_(from_ids)
            )
        ).scalars()
    )
    have = set(tags_of(session, merchant_id, to_id))
    session.execute(
        delete(MemberTag).where(MemberTag.merchant_id == merchant_id, MemberTag.member_id.in_(from_ids))
    )
    session.add_all(
        MemberTag(merchant_id=merchant_id, member_id=to_id, tag=tag, created_at=now)
        for tag in sorted(moving - have)
    )
