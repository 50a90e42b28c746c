"""Personal-data rights (PIPL): export one member's data; erase a member.

* **Export** returns everything Siyu holds on the person — profile, identifiers *decrypted*,
  tags, merge history, and what other modules contribute through :func:`on_export` (events,
  rollups) — as one JSON-ready dict.
* **Erase** removes identifiers and profile data (identities, tags) and marks the member
  ``erased``; other modules de-identify their rows through :func:`on_erase` listeners (events
  keep type, time, store, channel and amount under the now unlinkable member id, so aggregates
  stay right). It runs in one transaction and is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.kit.pii import IdentifierVault, IdentityKind
from siyu.kit.problems import Conflict, NotFound
from siyu.members import repository as repo
from siyu.members.models import MemberIdentity, MemberMerge, MemberStatus, MemberTag

Exporter = Callable[[Session, str, str], dict[str, Any]]
EraseListener = Callable[[Session, str, str], None]
_exporters: list[Exporter] = []
_erasers: list[EraseListener] = []


def on_export(exporter: Exporter) -> Exporter:
    """Register ``exporter(session, merchant_id, member_id) -> {section: data}``."""
    _exporters.append(exporter)
    return exporter


def on_erase(listener: EraseListener) -> EraseListener:
    """Register ``listener(session, merchant_id, member_id)`` to de-identify a module's rows."""
    _erasers.append(listener)
    return listener


def _ids_of_person(session: Session, merchant_id: str, member_id: str) -> list[str]:
    """The survivor and every member merged into it: all rows of one person."""
    merged = session.execute(
        select(MemberMerge.merged_id).where(
            MemberMerge.merchant_id == merchant_id, MemberMerge.survivor_id == member_id
        )
    ).scalars()
    return [member_id, *sorted(set(merged))]


def export_member(
    session: Session, vault: IdentifierVault, merchant_id: str, member_id: str
) -> dict[str, Any]:
    member = repo.get_member(session, merchant_id, member_id)
    if member is None or member.status != MemberStatus.ACTIVE:
        raise NotFound(f"no active member {member_id}")
    identities = [
        {
            "kind": identity.kind,
            "value": vault.decrypt(merchant_id, IdentityKind(identity.kind), identity.encrypted_value),
            "source": identity.source,
            "first_seen_at": identity.first_seen_at.isoformat(),
        }
        for identity in repo.identities_of(session, merchant_id, member_id)
    ]
    data: dict[str, Any] = {
        "member": {
            "id": member.id,
            "created_at": member.created_at.isoformat(),
            "status": member.status,
            "birthday": member.birthday,
        },
        "identities": identities,
        "tags": repo.tags_of(session, merchant_id, member_id),
        "merged_member_ids": _ids_of_person(session, merchant_id, member_id)[1:],
    }
    for exporter in _exporters:
        data.update(exporter(session, merchant_id, member_id))
    return data


def erase_member(session: Session, merchant_id: str, member_id: str, *, now: datetime) -> None:
    """Erase the person behind ``member_id`` (and the members merged into it)."""
    member = repo.get_member(session, merchant_id, member_id)
    if member is None:
        raise NotFound(f"no member {member_id}")
    if member.status == MemberStatus.ERASED:
        return
    if member.status == MemberStatus.MERGED:
        raise Conflict(f"member {member_id} was merged into {member.merged_into_id}; erase that member")
    person = _ids_of_person(session, merchant_id, member_id)
    session.execute(
        delete(MemberIdentity).where(
            MemberIdentity.merchant_id == merchant_id, MemberIdentity.member_id.in_(person)
        )
    )
    session.execute(
        delete(MemberTag).where(MemberTag.merchant_id == merchant_id, MemberTag.member_id.in_(person))
    )
    for listener in _erasers:
        for one in person:
            listener(session, merchant_id, one)
    member.status = MemberStatus.ERASED
    member.birthday = None
    member.updated_at = now
    session.flush()
