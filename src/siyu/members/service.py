"""Identity resolution: one member per person per merchant.

:func:`resolve_identities` takes the identities an event or an import row carries and returns
the member they belong to, creating it when none is known and **merging** members when the
identities belong to several — the identity graph's connected components are the members.

* The survivor of a merge is the member with the smallest id, which is the oldest (ids are
  time-ordered): the same links in any order give the same survivor.
* Identities move to the survivor; merged members stay as rows with ``status = merged`` and
  ``merged_into_id`` (never a chain), so old ids keep resolving; every fold is in the merge log.
* Modules that keep per-member data (events, rollups, ledgers) register a *merge listener* with
  :func:`on_merges` (every merge of one resolution at once, as :class:`MergeGroup` s) or
  :func:`on_merge` (one merge at a time); listeners run in the same transaction, so a merge is
  all or nothing. One batch of events can merge many people: a set-wise listener does it in the
  same few statements whatever their number (:func:`reassign` moves a ``member_id`` column), where
  a one-at-a-time listener costs its statements once per merge.
* Two writers adding the same new identity cannot both win: the identity's primary key is
  ``(merchant_id, kind, blind_index)``; the loser's insert fails and it resolves again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.kit.ids import IdKind, new_id
from siyu.kit.merge import MergeGroup, people_of, reassign, survivors_of
from siyu.kit.pii import (
    IdentifierVault,
    IdentityKind,
    InvalidIdentifier,
    mask_identifier,
    normalise_identifier,
)
from siyu.members import repository as repo
from siyu.members.models import MemberMerge, MemberStatus, MemberTag

__all__ = ["MergeGroup", "on_merge", "on_merges", "people_of", "reassign", "survivors_of"]

MergeListener = Callable[[Session, str, str, list[str], datetime], None]
"""``listener(session, merchant_id, survivor_id, merged_ids, now)``, called inside the merge."""
MergesListener = Callable[[Session, str, Sequence[MergeGroup], datetime], None]
"""``listener(session, merchant_id, groups, now)``: every merge of one resolution at once."""

_listeners: list[MergesListener] = []
MAX_ATTEMPTS = 5


def on_merges(listener: MergesListener) -> MergesListener:
    """Register a listener that moves a module's per-member data to the survivors, set-wise."""
    _listeners.append(listener)
    return listener


def on_merge(listener: MergeListener) -> MergeListener:
    """Register a listener that moves a module's per-member data to the survivor, one merge at a
    time (prefer :func:`on_merges` on anything ingestion reaches)."""

    def each(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
        for group in groups:
            listener(session, merchant_id, group.survivor, list(group.merged), now)

    _listeners.append(each)
    return listener


@dataclass(frozen=True, slots=True)
class Resolution:
    member_id: str
    created: bool = False
    merged_ids: list[str] = field(default_factory=list)


class IdentityError(ValueError):
    """An identity that cannot be used; ``pointer`` names it (``/identities/phone``)."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(detail)
        self.pointer = pointer
        self.detail = detail


_KINDS: dict[object, IdentityKind] = {kind.value: kind for kind in IdentityKind}


def normalise_all(identities: Mapping[str, str]) -> dict[IdentityKind, str]:
    """Validate and normalise every identity; the first bad one raises :class:`IdentityError`."""
    if not identities:
        raise IdentityError("/identities", "at least one identity is required")
    result: dict[IdentityKind, str] = {}
    for name, raw in identities.items():
        kind = _KINDS.get(name)  # a dict look-up: the enum's own costs more, once per identity
        if kind is None:
            known = ", ".join(k.value for k in IdentityKind)
            raise IdentityError(f"/identities/{name}", f"unknown identity {name!r}; known: {known}")
        if not isinstance(raw, str):
            raise IdentityError(f"/identities/{name}", "an identity is a string")
        try:
            result[kind] = normalise_identifier(kind, raw)
        except InvalidIdentifier as exc:
            raise IdentityError(f"/identities/{name}", str(exc)) from None
    return result


def resolve_identities(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    identities: Mapping[str, str],
    *,
    now: datetime,
    source: str,
) -> Resolution:
    """The member these identities belong to (created or merged as needed)."""
    (resolution,) = resolve_batch(session, vault, merchant_id, [normalise_all(identities)], [source], now=now)
    return resolution


def resolve_batch(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    items: Sequence[Mapping[IdentityKind, str]],
    sources: Sequence[str],
    *,
    now: datetime,
) -> list[Resolution]:
    """Resolve many sets of normalised identities at once: one :class:`Resolution` per item.

    Set-based, for ingestion speed: one lookup per identity kind, union–find over the batch's
    links and the members already holding them, then bulk inserts of new members and identities.
    Items linked through shared identities — directly or through existing members — end up with
    the same member, exactly as if they had been resolved one after another. Runs in a savepoint
    and starts again when a concurrent writer added one of the identities first.
    """
    if not items:
        return []
    if session.get_bind().dialect.name == "sqlite":
        # A SQLite write transaction begins IMMEDIATE (siyu.db): no other writer can add an
        # identity between our look-up and our insert, so there is no conflict to retry (and the
        # savepoint's two statements are saved on the hot path of ingestion and decisions).
        return _resolve_batch_once(session, vault, merchant_id, items, sources, now=now)
    for _attempt in range(MAX_ATTEMPTS):
        try:
            with session.begin_nested():
                return _resolve_batch_once(session, vault, merchant_id, items, sources, now=now)
        except IntegrityError:
            continue  # a concurrent writer added one of these identities first: look again
    raise RuntimeError("identity resolution kept conflicting with concurrent writers")


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, node: object) -> object:
        parent = self.parent.setdefault(node, node)
        if parent == node:
            return node
        root = self.find(parent)
        self.parent[node] = root
        return root

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _resolve_batch_once(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    items: Sequence[Mapping[IdentityKind, str]],
    sources: Sequence[str],
    *,
    now: datetime,
) -> list[Resolution]:
    index_of: dict[tuple[IdentityKind, str], str] = {}
    item_keys: list[list[tuple[str, str]]] = []
    for identities in items:
        keys = []
        for kind, value in identities.items():
            blind = index_of.get((kind, value))
            if blind is None:
                blind = index_of[(kind, value)] = vault.blind_index(merchant_id, kind, value)
            keys.append((kind.value, blind))
        item_keys.append(keys)
    owner_of = repo.owners_by_index(session, merchant_id, {key for keys in item_keys for key in keys})
    links = _UnionFind()
    for keys in item_keys:
        first = keys[0]
        for key in keys:
            links.union(first, key)
            owner = owner_of.get(key)
            if owner is not None:
                links.union(key, ("member", owner))
    owners: dict[object, set[str]] = {}
    for key, owner in owner_of.items():
        owners.setdefault(links.find(key), set()).add(owner)
    member_of_root: dict[object, Resolution] = {}
    new_members: list[dict[str, object]] = []
    merges: list[MergeGroup] = []
    reasons: list[str] = []
    for n, keys in enumerate(item_keys):
        root = links.find(keys[0])
        if root in member_of_root:
            continue
        found = sorted(owners.get(root, ()))
        if not found:
            member_id = new_id(IdKind.MEMBER)
            new_members.append(
                {
                    "merchant_id": merchant_id,
                    "id": member_id,
                    "status": MemberStatus.ACTIVE.value,
                    "merged_into_id": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            member_of_root[root] = Resolution(member_id=member_id, created=True)
        else:
            survivor, merged = found[0], found[1:]
            if merged:
                merges.append(MergeGroup(survivor, tuple(merged)))
                reasons.append(sources[n])
            member_of_root[root] = Resolution(member_id=survivor, merged_ids=merged)
    if merges:
        _merge(session, merchant_id, merges, reasons, now=now)
    if new_members:
        repo.insert_members(session, new_members)
    new_identities: list[dict[str, object]] = []
    added: set[tuple[str, str]] = set()
    for n, (identities, keys) in enumerate(zip(items, item_keys, strict=True)):
        member_id = member_of_root[links.find(keys[0])].member_id
        for (kind, value), key in zip(identities.items(), keys, strict=True):
            if key in owner_of or key in added:
                continue
            added.add(key)
            new_identities.append(
                {
                    "merchant_id": merchant_id,
                    "kind": key[0],
                    "blind_index": key[1],
                    "member_id": member_id,
                    "encrypted_value": vault.encrypt(merchant_id, kind, value),
                    "masked_value": mask_identifier(kind, value),
                    "source": sources[n][:200],
                    "first_seen_at": now,
                }
            )
    if new_identities:
        repo.insert_identities(session, new_identities)
    return [member_of_root[links.find(keys[0])] for keys in item_keys]


def _merge(
    session: Session, merchant_id: str, groups: Sequence[MergeGroup], reasons: Sequence[str], *, now: datetime
) -> None:
    """Fold each group's merged members into its survivor (identities, tags, earlier merges, the
    members' status, the merge log), then every listener once for all the groups."""
    repo.move_identities(session, merchant_id, groups)
    repo.move_tags(session, merchant_id, groups, now)
    repo.redirect_merged(session, merchant_id, groups)
    repo.mark_merged(session, merchant_id, groups, now)
    session.add_all(
        MemberMerge(
            merchant_id=merchant_id,
            id=new_id(IdKind.MERGE),
            survivor_id=group.survivor,
            merged_id=member_id,
            reason=reason[:200],
            at=now,
        )
        for group, reason in zip(groups, reasons, strict=True)
        for member_id in group.merged
    )
    for listener in _listeners:
        listener(session, merchant_id, groups, now)
    session.flush()


def current_member_id(session: Session, merchant_id: str, member_id: str) -> str | None:
    """Follow a merged id to its survivor (``None`` if unknown)."""
    member = repo.get_member(session, merchant_id, member_id)
    if member is None:
        return None
    return member.merged_into_id or member.id


def find_by_identity(
    session: Session, vault: IdentifierVault, merchant_id: str, kind: str, value: str
) -> str | None:
    """The (surviving) member holding this identity, or ``None``."""
    normalised = normalise_all({kind: value})
    ((identity_kind, canonical),) = normalised.items()
    index = vault.blind_index(merchant_id, identity_kind, canonical)
    found = repo.identities_by_index(session, merchant_id, [(identity_kind.value, index)])
    return found[0].member_id if found else None


MAX_TAG_LENGTH = 64


def add_tags(
    session: Session, merchant_id: str, member_id: str, tags: list[str], *, now: datetime
) -> list[str]:
    """Add tags (idempotent); returns the member's tags."""
    have = set(repo.tags_of(session, merchant_id, member_id))
    for tag in sorted({t.strip() for t in tags if t.strip()} - have):
        session.add(
            MemberTag(merchant_id=merchant_id, member_id=member_id, tag=tag[:MAX_TAG_LENGTH], created_at=now)
        )
    session.flush()
    return repo.tags_of(session, merchant_id, member_id)
