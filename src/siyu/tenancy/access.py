"""API keys and provider grants: who may call the API, for which merchant, with which scopes.

A *principal* is what an authenticated request acts as:

* a merchant key acts for its merchant with its own scopes;
* a provider key acts for the provider itself (provider context), or — when the request names a
  merchant — for that merchant, but only while an unrevoked grant exists, and only with the scopes
  both the key and the grant carry.

Authenticated principals are cached per process for :data:`PRINCIPAL_CACHE_SECONDS` (an API
call then needs no key look-up, which is most of the cost of a cheap request). Revoking a key or a
grant clears this process's cache, so revocation takes effect on the next request served by the
same process, and within :data:`PRINCIPAL_CACHE_SECONDS` on every other worker process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from siyu.kit.crypto import (
    MIN_API_KEY_LENGTH,
    api_key_hint,
    generate_api_key_secret,
    hash_api_key,
)
from siyu.kit.ids import IdKind, new_id
from siyu.kit.problems import Conflict, Forbidden, NotFound, Unauthorized, UnprocessableEntity
from siyu.tenancy import repository as repo
from siyu.tenancy.models import ApiKey, ProviderGrant
from siyu.tenancy.scopes import (
    ALL_PROVIDER_SCOPES,
    GRANTABLE_SCOPES,
    MERCHANT_SCOPES,
    Scope,
    known_scopes,
    parse_scopes,
    sorted_scopes,
)
from siyu.tenancy.service import audit

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is refreshed at most this often, so reads do not turn into writes."""

PRINCIPAL_CACHE_SECONDS = 1.0
"""How long one process trusts an authenticated key without reading it again: the bound on how
late a revocation made through another worker process takes effect there."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, after authentication."""

    key_id: str
    scopes: frozenset[Scope]
    merchant_id: str | None = None
    """The merchant the request acts for (``None`` in provider context)."""
    provider_id: str | None = None
    """Set when the key belongs to a provider."""
    grant_id: str | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"

    @property
    def is_delegated(self) -> bool:
        """A provider acting for a merchant under a grant."""
        return self.provider_id is not None and self.merchant_id is not None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key and its secret, which is shown this once and never again."""

    key: ApiKey
    secret: str


def _validated_scopes(values: Iterable[str], possible: frozenset[Scope], what: str) -> frozenset[Scope]:
    """Parse ``values`` for a key or grant (``what``): known, at least one, all in ``possible``.

    Every refusal is a 422 whose error points at ``/scopes``.
    """

    def invalid(detail: str) -> UnprocessableEntity:
        return UnprocessableEntity(detail, extra={"errors": [{"pointer": "/scopes", "detail": detail}]})

    try:
        wanted = parse_scopes(values)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if not wanted:
        raise invalid(f"a {what} needs at least one scope")
    if not wanted <= possible:
        raise invalid(f"scopes not available to a {what}: {', '.join(sorted_scopes(wanted - possible))}")
    return wanted


def issue_api_key(
    session: Session,
    *,
    name: str,
    scopes: Iterable[str],
    now: datetime,
    actor: str,
    merchant_id: str | None = None,
    provider_id: str | None = None,
    secret: str | None = None,
    allowed: frozenset[Scope] | None = None,
) -> IssuedKey:
    """A key for a merchant or a provider. ``allowed`` caps the scopes (no escalation by a key).

    ``secret`` lets deployments bring their own (``SIYU_BOOTSTRAP_API_KEY``); otherwise 256 random
    bits are generated.
    """
    if (merchant_id is None) == (provider_id is None):
        raise ValueError("a key belongs to exactly one merchant or one provider")
    possible = MERCHANT_SCOPES if merchant_id is not None else ALL_PROVIDER_SCOPES
    wanted = _validated_scopes(scopes, possible, "key of this kind")
    if allowed is not None and not wanted <= allowed:
        raise Forbidden(
            f"a key cannot grant scopes it does not hold: {', '.join(sorted_scopes(wanted - allowed))}"
        )
    if secret is not None and len(secret) < MIN_API_KEY_LENGTH:
        raise ValueError(f"an API key secret needs at least {MIN_API_KEY_LENGTH} characters")
    secret = secret or generate_api_key_secret()
    key = ApiKey(
        id=new_id(IdKind.API_KEY),
        merchant_id=merchant_id,
        provider_id=provider_id,
        name=name.strip() or "unnamed",
        secret_hash=hash_api_key(secret),
        hint=api_key_hint(secret),
        scopes=sorted_scopes(wanted),
        created_at=now,
        created_by=actor,
    )
    session.add(key)
    session.flush()
    audit(
        session,
        now=now,
        actor=actor,
        action="api_key.created",
        merchant_id=merchant_id,
        provider_id=provider_id,
        target=key.id,
        detail={"scopes": key.scopes, "name": key.name},
    )
    return IssuedKey(key=key, secret=secret)


def revoke_api_key(session: Session, key: ApiKey, *, now: datetime, actor: str) -> ApiKey:
    """Revoke a key; idempotent (a revoked key keeps its first revocation time)."""
    if key.revoked_at is None:
        key.revoked_at = now
        session.flush()
        principals.clear()
        audit(
            session,
            now=now,
            actor=actor,
            action="api_key.revoked",
            merchant_id=key.merchant_id,
            provider_id=key.provider_id,
            target=key.id,
        )
    return key


def authenticate(
    session: Session, *, secret: str, now: datetime, acting_for: str | None = None
) -> tuple[Principal, ApiKey]:
    """Resolve a bearer secret (and an optional ``Siyu-Merchant``) to a principal.

    Raises 401 for an unknown or revoked key, 403 for a key without scopes or a provider without
    an active grant for the merchant it names.
    """
    key = repo.get_api_key_by_hash(session, hash_api_key(secret))
    if key is None or key.revoked_at is not None:
        raise Unauthorized("the API key is unknown or has been revoked")
    key_scopes = known_scopes(key.scopes)
    if not key_scopes:
        raise Forbidden("this API key carries no scopes, so it may do nothing")
    if key.merchant_id is not None:
        if acting_for is not None and acting_for != key.merchant_id:
            raise Forbidden("a merchant key acts only for its own merchant")
        return Principal(key_id=key.id, scopes=key_scopes, merchant_id=key.merchant_id), key
    assert key.provider_id is not None
    if acting_for is None:
        return Principal(key_id=key.id, scopes=key_scopes, provider_id=key.provider_id), key
    grant = repo.active_grant(session, acting_for, key.provider_id)
    if grant is None:
        raise Forbidden(f"provider has no active grant from merchant {acting_for}")
    effective = key_scopes & known_scopes(grant.scopes)
    if not effective:
        raise Forbidden("the grant and the key share no scope")
    principal = Principal(
        key_id=key.id,
        scopes=effective,
        merchant_id=acting_for,
        provider_id=key.provider_id,
        grant_id=grant.id,
    )
    return principal, key


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A successful authentication as the request needs it (no ORM object: it outlives sessions)."""

    principal: Principal
    last_used_at: datetime | None


class PrincipalCache:
    """Successful authentications of this process, for :data:`PRINCIPAL_CACHE_SECONDS`.

    Keyed by the key's SHA-256 (never the secret) and the merchant it acts for; failures are not
    cached. :meth:`clear` runs whenever this process revokes a key or a grant.
    """

    def __init__(
        self,
        ttl: float = PRINCIPAL_CACHE_SECONDS,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str | None], tuple[float, Authenticated]] = {}

    def get(self, secret_hash: str, acting_for: str | None) -> Authenticated | None:
        entry = self._entries.get((secret_hash, acting_for))
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def put(self, secret_hash: str, acting_for: str | None, value: Authenticated) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[(secret_hash, acting_for)] = (self.clock() + self.ttl, value)

    def used(self, secret_hash: str, acting_for: str | None, at: datetime) -> None:
        """The key's ``last_used_at`` was just recorded: stop asking for it until it is due again."""
        with self._lock:
            entry = self._entries.get((secret_hash, acting_for))
            if entry is not None:
                self._entries[(secret_hash, acting_for)] = (
                    entry[0],
                    Authenticated(entry[1].principal, at),
                )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


principals = PrincipalCache()


def authenticate_cached(
    session: Session, *, secret: str, now: datetime, acting_for: str | None = None
) -> Authenticated:
    """:func:`authenticate` through this process's :data:`principals` cache."""
    secret_hash = hash_api_key(secret)
    cached = principals.get(secret_hash, acting_for)
    if cached is not None:
        return cached
    principal, key = authenticate(session, secret=secret, now=now, acting_for=acting_for)
    result = Authenticated(principal, key.last_used_at)
    principals.put(secret_hash, acting_for, result)
    return result


def touch_last_used(session: Session, key_id: str, now: datetime) -> None:
    """Record use of a key, at most once per :data:`LAST_USED_RESOLUTION` (one conditional UPDATE)."""
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
    )


def create_grant(
    session: Session,
    merchant_id: str,
    *,
    provider_id: str,
    scopes: Iterable[str],
    now: datetime,
    actor: str,
    note: str | None = None,
) -> ProviderGrant:
    """代运营授权: let a provider act for this merchant within ``scopes`` until revoked."""
    if repo.get_provider(session, provider_id) is None:
        raise NotFound(f"no provider {provider_id}")
    wanted = _validated_scopes(scopes, GRANTABLE_SCOPES, "grant to a provider")
    if repo.active_grant(session, merchant_id, provider_id) is not None:
        raise Conflict("this provider already holds an active grant; revoke it first to change scopes")
    grant = ProviderGrant(
        merchant_id=merchant_id,
        id=new_id(IdKind.GRANT),
        provider_id=provider_id,
        scopes=sorted_scopes(wanted),
        note=note,
        created_at=now,
        created_by=actor,
    )
    session.add(grant)
    session.flush()
    audit(
        session,
        now=now,
        actor=actor,
        action="grant.created",
        merchant_id=merchant_id,
        provider_id=provider_id,
        target=grant.id,
        detail={"scopes": grant.scopes},
    )
    return grant


def revoke_grant(session: Session, grant: ProviderGrant, *, now: datetime, actor: str) -> ProviderGrant:
    """End a grant; the provider's next request for this merchant is refused."""
    if grant.revoked_at is None:
        grant.revoked_at = now
        session.flush()
        principals.clear()
        audit(
            session,
            now=now,
            actor=actor,
            action="grant.revoked",
            merchant_id=grant.merchant_id,
            provider_id=grant.provider_id,
            target=grant.id,
        )
    return grant
