"""What other modules may use of members: who a member id is now, and which identities it has.

Registration hooks stay where they are (``members.service.on_merge``, ``members.rights.on_export``
/ ``on_erase``); this module holds the read side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from siyu.kit.pagination import PageRequest
from siyu.kit.pii import IdentifierVault, IdentityKind
from siyu.kit.problems import Conflict, NotFound
from siyu.kit.sql import chunked
from siyu.members import repository as repo
from siyu.members import rights, service
from siyu.members.models import Member, MemberIdentity, MemberStatus


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A member as found by an id: the survivor when the id was merged away."""

    id: str
    status: MemberStatus

    @property
    def erased(self) -> bool:
        return self.status is MemberStatus.ERASED


def find_member(session: Session, merchant_id: str, member_id: str) -> MemberRef | None:
    """The member behind ``member_id`` (following a merge to its survivor), or ``None``.

    Reads three columns, not the ORM object: every write API for a member starts here (a coupon
    claim spent ~15 % of its time loading the member into the session)."""
    found = repo.member_status(session, merchant_id, member_id)
    if found is not None and found[2]:
        found = repo.member_status(session, merchant_id, found[2])
    if found is None:
        return None
    return MemberRef(id=found[0], status=MemberStatus(found[1]))


def require_member(session: Session, merchant_id: str, member_id: str, *, writing: bool = False) -> str:
    """The current id of the member (a merged id gives its survivor), or ``NotFound``; with
    ``writing``, an erased member is ``Conflict`` (erased members are read-only)."""
    found = find_member(session, merchant_id, member_id)
    if found is None:
        raise NotFound(f"no member {member_id}")
    if writing and found.erased:
        raise Conflict(f"member {member_id} was erased")
    return found.id


def has_identity(session: Session, merchant_id: str, member_id: str, kind: IdentityKind) -> bool:
    statement = select(MemberIdentity.kind).where(
        MemberIdentity.merchant_id == merchant_id,
        MemberIdentity.member_id == member_id,
        MemberIdentity.kind == kind.value,
    )
    return session.execute(statement.limit(1)).first() is not None


def ids_with_identity(merchant_id: str, kind: IdentityKind) -> Select[str]:
    """A sub-query of the members holding an identity of ``kind``, for set-based queries elsewhere."""
    return select(MemberIdentity.member_id).where(
        MemberIdentity.merchant_id == merchant_id, MemberIdentity.kind == kind.value
    )


def active_ids(merchant_id: str, *, excluding: Select[str] | None = None) -> Select[str]:
    """A query of the merchant's active members' ids (not merged, not erased), in id order,
    optionally without those ``excluding`` (a sub-query of member ids) selects."""
    statement = select(Member.id).where(
        Member.merchant_id == merchant_id, Member.status == MemberStatus.ACTIVE
    )
    if excluding is not None:
        statement = statement.where(Member.id.not_in(excluding))
    return statement.order_by(Member.id)


def ids_born_on(merchant_id: str, month_days: Sequence[str]) -> Select[str]:
    """A sub-query of the active members whose birthday (``MM-DD``) is one of ``month_days``."""
    return select(Member.id).where(
        Member.merchant_id == merchant_id,
        Member.status == MemberStatus.ACTIVE,
        Member.birthday.in_(month_days),
    )


def set_birthday(
    session: Session, merchant_id: str, member_id: str, birthday: str | None, *, now: datetime
) -> None:
    """Record (or, with ``None``, forget) a member's birthday, ``MM-DD``; raises ``ValueError`` on a
    day that no year has."""
    if birthday is not None:
        month, day = (int(part) for part in birthday.split("-"))
        date(2000, month, day)  # a leap year: 02-29 is a birthday
    member = repo.get_member(session, merchant_id, member_id)
    if member is None:
        raise NotFound(f"no member {member_id}")
    member.birthday = birthday
    member.updated_at = now
    session.flush()


def count_active_members(session: Session, merchant_id: str) -> int:
    statement = (
        select(func.count())
        .select_from(Member)
        .where(Member.merchant_id == merchant_id, Member.status == MemberStatus.ACTIVE)
    )
    return int(session.execute(statement).scalar_one())


def find_members(session: Session, merchant_id: str, member_ids: Sequence[str]) -> dict[str, MemberRef]:
    """:func:`find_member` for many ids at once (two queries): each id found → its member now
    (the survivor for a merged id); ids not found are absent."""
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    columns = (Member.id, Member.status, Member.merged_into_id)

    def load(some: Sequence[str]) -> None:
        for chunk in chunked(some, 1000):
            statement = select(*columns).where(Member.merchant_id == merchant_id, Member.id.in_(chunk))
            for row in session.execute(statement):
                rows[row[0]] = row

    rows: dict[str, Any] = {}
    load(ids)
    load(sorted({row[2] for row in rows.values() if row[2] and row[2] not in rows}))
    found: dict[str, MemberRef] = {}
    for member_id in ids:
        hit = rows.get(member_id)
        if hit is not None and hit[2]:
            hit = rows.get(hit[2])
        if hit is not None:
            found[member_id] = MemberRef(id=hit[0], status=MemberStatus(hit[1]))
    return found


def identity_value(
    session: Session, vault: IdentifierVault, merchant_id: str, member_id: str, kind: IdentityKind
) -> str | None:
    """The member's identifier of ``kind`` in clear (the first stored), or ``None`` — to address
    a delivery (a phone for SMS, an Alipay user id for subscription messages)."""
    statement = (
        select(MemberIdentity.encrypted_value)
        .where(
            MemberIdentity.merchant_id == merchant_id,
            MemberIdentity.member_id == member_id,
            MemberIdentity.kind == kind.value,
        )
        .order_by(MemberIdentity.first_seen_at)
        .limit(1)
    )
    token = session.execute(statement).scalar_one_or_none()
    return None if token is None else vault.decrypt(merchant_id, kind, token)


@dataclass(frozen=True, slots=True)
class IdentityView:
    kind: str
    masked: str
    source: str | None
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ProfileView:
    """A member's own record as the console shows it: identities masked, never in clear."""

    id: str
    status: MemberStatus
    created_at: datetime
    birthday: str | None
    identities: list[IdentityView]
    tags: list[str]


def profile(session: Session, merchant_id: str, member_id: str) -> ProfileView | None:
    """The member behind ``member_id`` (a merged id gives its survivor), or ``None``."""
    found = find_member(session, merchant_id, member_id)
    member = repo.get_member(session, merchant_id, found.id) if found else None
    if member is None:
        return None
    return ProfileView(
        id=member.id,
        status=MemberStatus(member.status),
        created_at=member.created_at,
        birthday=member.birthday,
        identities=[
            IdentityView(kind=i.kind, masked=i.masked_value, source=i.source, first_seen_at=i.first_seen_at)
            for i in repo.identities_of(session, merchant_id, member.id)
        ],
        tags=repo.tags_of(session, merchant_id, member.id),
    )


def find_by_identity(
    session: Session, vault: IdentifierVault, merchant_id: str, kind: IdentityKind, value: str
) -> str | None:
    """The (surviving) member holding this identity, or ``None``; ``ValueError`` (with a
    readable message) when the value cannot be an identity of that kind."""
    try:
        return service.find_by_identity(session, vault, merchant_id, kind.value, value)
    except service.IdentityError as exc:
        raise ValueError(exc.detail) from None


def add_tags(
    session: Session, merchant_id: str, member_id: str, tags: list[str], *, now: datetime
) -> list[str]:
    """Add tags to an active member (idempotent); returns its tags."""
    current = require_member(session, merchant_id, member_id, writing=True)
    return service.add_tags(session, merchant_id, current, tags, now=now)


def remove_tag(session: Session, merchant_id: str, member_id: str, tag: str) -> list[str]:
    """Remove one tag (nothing if absent); returns the member's tags."""
    current = require_member(session, merchant_id, member_id, writing=True)
    repo.remove_tag(session, merchant_id, current, tag)
    session.flush()
    return repo.tags_of(session, merchant_id, current)


@dataclass(frozen=True, slots=True)
class MemberRow:
    id: str
    created_at: datetime


def list_members(
    session: Session,
    merchant_id: str,
    *,
    limit: int = 50,
    tag: str | None = None,
    within: Sequence[Select[Any]] = (),
) -> list[MemberRow]:
    """Active members by id (the first ``limit``), optionally with ``tag`` and inside each of
    ``within`` (other modules' member-id queries: a franchise's stores, a stage…)."""
    rows = repo.list_members(session, merchant_id, PageRequest(limit=limit), tag=tag, within=within)
    return [MemberRow(id=m.id, created_at=m.created_at) for m in rows[:limit]]


def export_member(
    session: Session, vault: IdentifierVault, merchant_id: str, member_id: str
) -> dict[str, Any]:
    """Everything held on the member, identifiers decrypted (PIPL access); the caller records
    the audit entry (``tenancy.record_audit``, action ``member.exported``)."""
    return rights.export_member(session, vault, merchant_id, member_id)


def erase_member(session: Session, merchant_id: str, member_id: str, *, now: datetime) -> None:
    """Erase the member (PIPL deletion); the caller records the audit entry (``member.erased``)."""
    rights.erase_member(session, merchant_id, member_id, now=now)


def member_within(session: Session, merchant_id: str, member_id: str, within: Select[Any]) -> bool:
    """Is the member among the ids ``within`` selects (a franchise's members, a segment…)?"""
    statement = select(Member.id).where(
        Member.merchant_id == merchant_id, Member.id == member_id, Member.id.in_(within)
    )
    return session.execute(statement.limit(1)).first() is not None
