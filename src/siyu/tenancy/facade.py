"""What other modules (CLI, console, later domains) may use of tenancy: plain frozen views.

Every function takes the caller's session (the caller owns the unit of work) and the merchant id
where the data is merchant-owned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.kit import config_cache
from siyu.kit.clock import utcnow
from siyu.kit.crypto import generate_password
from siyu.kit.pagination import PageRequest
from siyu.kit.problems import NotFound
from siyu.tenancy import access, service
from siyu.tenancy import repository as repo
from siyu.tenancy.models import (
    ApiKey,
    Merchant,
    Provider,
    ProviderGrant,
    Staff,
    StaffRole,
    Store,
    StoreKind,
    StoreStatus,
)
from siyu.tenancy.scopes import MERCHANT_SCOPES, sorted_scopes


@dataclass(frozen=True, slots=True)
class ProviderView:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MerchantView:
    id: str
    name: str
    timezone: str
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoreView:
    id: str
    merchant_id: str
    code: str
    name: str
    kind: StoreKind
    status: StoreStatus
    city: str | None
    address: str | None
    latitude: float | None
    longitude: float | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StaffView:
    id: str
    merchant_id: str
    login: str
    display_name: str
    role: StaffRole
    active: bool
    store_ids: tuple[str, ...]
    created_at: datetime

    @property
    def limited_to_stores(self) -> bool:
        """Franchise or store staff: sees only ``store_ids``."""
        return bool(self.store_ids)


@dataclass(frozen=True, slots=True)
class KeyView:
    id: str
    name: str
    hint: str
    merchant_id: str | None
    provider_id: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    secret: str | None = field(default=None, repr=False)
    """Only on the view returned by :func:`issue_key`: shown once, never stored."""


@dataclass(frozen=True, slots=True)
class GrantView:
    id: str
    merchant_id: str
    provider_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """What the first start created; the password and key secret are shown once."""

    merchant: MerchantView
    owner: StaffView
    password: str
    key: KeyView
    password_generated: bool
    key_generated: bool


def _provider(p: Provider) -> ProviderView:
    return ProviderView(id=p.id, name=p.name, created_at=p.created_at)


def _merchant(m: Merchant) -> MerchantView:
    return MerchantView(
        id=m.id, name=m.name, timezone=m.timezone, currency=m.currency, created_at=m.created_at
    )


def _store(s: Store) -> StoreView:
    return StoreView(
        id=s.id,
        merchant_id=s.merchant_id,
        code=s.code,
        name=s.name,
        kind=StoreKind(s.kind),
        status=StoreStatus(s.status),
        city=s.city,
        address=s.address,
        latitude=s.latitude,
        longitude=s.longitude,
        created_at=s.created_at,
        updated_at=s.updated_at,
    )


def _staff(session: Session, s: Staff) -> StaffView:
    return _staff_view(s, repo.staff_store_ids(session, s.merchant_id, [s.id])[s.id])


def _staff_view(s: Staff, store_ids: Sequence[str]) -> StaffView:
    return StaffView(
        id=s.id,
        merchant_id=s.merchant_id,
        login=s.login,
        display_name=s.display_name,
        role=StaffRole(s.role),
        active=s.active,
        store_ids=tuple(store_ids),
        created_at=s.created_at,
    )


def _key(k: ApiKey, secret: str | None = None) -> KeyView:
    return KeyView(
        id=k.id,
        name=k.name,
        hint=k.hint,
        merchant_id=k.merchant_id,
        provider_id=k.provider_id,
        scopes=tuple(k.scopes),
        created_at=k.created_at,
        revoked_at=k.revoked_at,
        last_used_at=k.last_used_at,
        secret=secret,
    )


def _grant(g: ProviderGrant) -> GrantView:
    return GrantView(
        id=g.id,
        merchant_id=g.merchant_id,
        provider_id=g.provider_id,
        scopes=tuple(g.scopes),
        created_at=g.created_at,
        revoked_at=g.revoked_at,
    )


def create_provider(session: Session, *, name: str) -> ProviderView:
    return _provider(service.create_provider(session, name=name, now=utcnow()))


def create_merchant(
    session: Session, *, name: str, timezone: str = "Asia/Shanghai", currency: str = "CNY"
) -> MerchantView:
    return _merchant(
        service.create_merchant(session, name=name, timezone=timezone, currency=currency, now=utcnow())
    )


def get_merchant(session: Session, merchant_id: str) -> MerchantView | None:
    merchant = repo.get_merchant(session, merchant_id)
    return _merchant(merchant) if merchant else None


DEFAULT_TIMEZONE = "Asia/Shanghai"


def merchant_zone(session: Session, merchant_id: str) -> ZoneInfo:
    """The merchant's time zone: what "today", local days, months and periods are measured in.

    Read through :mod:`siyu.kit.config_cache` (a change is seen at once by this process, within
    its TTL by others; a transaction that changed the merchant reads it itself)."""

    def load() -> ZoneInfo:
        merchant = repo.get_merchant(session, merchant_id)
        return ZoneInfo(merchant.timezone if merchant else DEFAULT_TIMEZONE)

    return config_cache.cached(session, ("merchant_zone", merchant_id), load)


def merchant_ids(session: Session) -> list[str]:
    """Every merchant's id (for per-merchant background jobs)."""
    return repo.merchant_ids(session)


def first_merchant(session: Session) -> MerchantView | None:
    merchant = repo.first_merchant(session)
    return _merchant(merchant) if merchant else None


def list_stores(
    session: Session, merchant_id: str, *, only_ids: Sequence[str] | None = None
) -> list[StoreView]:
    """All stores of a merchant, or only ``only_ids`` (what a franchise staff member may see)."""
    return [_store(s) for s in repo.all_stores(session, merchant_id, only_ids=only_ids or None)]


def get_store(session: Session, merchant_id: str, store_id: str) -> StoreView | None:
    store = repo.get_store(session, merchant_id, store_id)
    return _store(store) if store else None


def create_store(
    session: Session,
    merchant_id: str,
    *,
    name: str,
    code: str | None = None,
    kind: StoreKind = StoreKind.DIRECT,
    city: str | None = None,
    address: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
) -> StoreView:
    fields = service.StoreFields(
        name=name, code=code, kind=kind, city=city, address=address, latitude=latitude, longitude=longitude
    )
    return _store(service.create_store(session, merchant_id, fields, now=utcnow()))


def update_store(
    session: Session,
    merchant_id: str,
    store_id: str,
    *,
    name: str | None = None,
    code: str | None = None,
    kind: StoreKind | None = None,
    status: StoreStatus | None = None,
    city: str | None = None,
    address: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
) -> StoreView:
    store = repo.get_store(session, merchant_id, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    fields = service.StoreFields(
        name=name,
        code=code,
        kind=kind,
        status=status,
        city=city,
        address=address,
        latitude=latitude,
        longitude=longitude,
    )
    return _store(service.update_store(session, store, fields, now=utcnow()))


def create_staff(
    session: Session,
    merchant_id: str,
    *,
    login: str,
    role: StaffRole,
    password: str,
    display_name: str = "",
    store_ids: Sequence[str] = (),
    actor: str = "cli",
) -> StaffView:
    staff = service.create_staff(
        session,
        merchant_id,
        login=login,
        display_name=display_name,
        role=role,
        password=password,
        store_ids=store_ids,
        now=utcnow(),
        actor=actor,
    )
    return _staff(session, staff)


def get_staff(session: Session, merchant_id: str, staff_id: str) -> StaffView | None:
    staff = repo.get_staff(session, merchant_id, staff_id)
    return _staff(session, staff) if staff else None


def login(session: Session, *, login: str, password: str) -> StaffView | None:
    """The staff account for a console login, or ``None`` when login or password is wrong."""
    staff = service.authenticate_staff(session, login=login, password=password, now=utcnow())
    return _staff(session, staff) if staff else None


def issue_key(
    session: Session,
    *,
    name: str,
    scopes: Sequence[str],
    merchant_id: str | None = None,
    provider_id: str | None = None,
    secret: str | None = None,
    actor: str = "cli",
) -> KeyView:
    """A new API key; the returned view carries the secret, once."""
    issued = access.issue_api_key(
        session,
        name=name,
        scopes=scopes,
        now=utcnow(),
        actor=actor,
        merchant_id=merchant_id,
        provider_id=provider_id,
        secret=secret,
    )
    return _key(issued.key, issued.secret)


def revoke_key(session: Session, key_id: str, *, actor: str = "cli") -> KeyView:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    return _key(access.revoke_api_key(session, key, now=utcnow(), actor=actor))


def create_grant(
    session: Session, merchant_id: str, *, provider_id: str, scopes: Sequence[str], actor: str = "cli"
) -> GrantView:
    return _grant(
        access.create_grant(
            session, merchant_id, provider_id=provider_id, scopes=scopes, now=utcnow(), actor=actor
        )
    )


def revoke_grant(session: Session, merchant_id: str, grant_id: str, *, actor: str = "cli") -> GrantView:
    grant = repo.get_grant(session, merchant_id, grant_id)
    if grant is None:
        raise NotFound(f"no grant {grant_id} for merchant {merchant_id}")
    return _grant(access.revoke_grant(session, grant, now=utcnow(), actor=actor))


def list_staff(session: Session, merchant_id: str, *, limit: int = 500) -> list[StaffView]:
    """The merchant's staff accounts, by id (the console's staff page)."""
    rows = repo.list_staff(session, merchant_id, PageRequest(limit=limit))
    stores = repo.staff_store_ids(session, merchant_id, [s.id for s in rows])
    return [_staff_view(s, stores[s.id]) for s in rows]


def set_staff_active(
    session: Session, merchant_id: str, staff_id: str, active: bool, *, actor: str
) -> StaffView:
    """Activate or deactivate a staff account (a deactivated one is signed out at its next click)."""
    staff = repo.get_staff(session, merchant_id, staff_id)
    if staff is None:
        raise NotFound(f"no staff {staff_id}")
    return _staff(session, service.update_staff(session, staff, active=active, now=utcnow(), actor=actor))


def list_keys(session: Session, merchant_id: str, *, limit: int = 500) -> list[KeyView]:
    """The merchant's API keys (never their secrets), revoked ones included, by id."""
    return [_key(k) for k in repo.list_api_keys(session, PageRequest(limit=limit), merchant_id=merchant_id)]


def revoke_merchant_key(session: Session, merchant_id: str, key_id: str, *, actor: str) -> KeyView:
    """Revoke one of the merchant's own keys (another merchant's key id is not found)."""
    key = repo.get_api_key(session, key_id, merchant_id=merchant_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    return _key(access.revoke_api_key(session, key, now=utcnow(), actor=actor))


def list_grants(session: Session, merchant_id: str, *, limit: int = 500) -> list[GrantView]:
    """The grants the merchant gave providers, revoked ones included, by id."""
    return [_grant(g) for g in repo.list_grants(session, PageRequest(limit=limit), merchant_id=merchant_id)]


def set_timezone(session: Session, merchant_id: str, timezone: str) -> MerchantView:
    """Change the merchant's time zone (an IANA name; a 422 naming ``/timezone`` otherwise)."""
    merchant = repo.get_merchant(session, merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}")
    return _merchant(service.update_merchant(session, merchant, now=utcnow(), timezone=timezone))


@dataclass(frozen=True, slots=True)
class AuditView:
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, object]


def audit_log(session: Session, merchant_id: str, *, limit: int = 100) -> list[AuditView]:
    """The merchant's audit log, newest first."""
    return [
        AuditView(at=a.at, actor=a.actor, action=a.action, target=a.target, detail=dict(a.detail or {}))
        for a in repo.list_audit(session, merchant_id, limit)
    ]


def record_audit(
    session: Session,
    merchant_id: str,
    *,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, object] | None = None,
) -> None:
    """Append to the merchant's audit log (erasures, exports, access changes)."""
    service.audit(
        session,
        now=utcnow(),
        actor=actor,
        action=action,
        merchant_id=merchant_id,
        target=target,
        detail=detail,
    )


def bootstrap(
    session: Session, *, password: str | None = None, api_key: str | None = None
) -> BootstrapResult | None:
    """On a first start (no merchant yet): a merchant, its owner account and an API key.

    Returns ``None`` when the instance already has a merchant, so it is safe on every start.
    """
    if repo.count_merchants(session) > 0:
        return None
    merchant = create_merchant(session, name="我的商户")
    chosen_password = password or generate_password()
    owner = create_staff(
        session,
        merchant.id,
        login="owner",
        display_name="店主",
        role=StaffRole.OWNER,
        password=chosen_password,
        actor="bootstrap",
    )
    key = issue_key(
        session,
        name="bootstrap",
        scopes=sorted_scopes(MERCHANT_SCOPES),
        merchant_id=merchant.id,
        secret=api_key,
        actor="bootstrap",
    )
    return BootstrapResult(
        merchant=merchant,
        owner=owner,
        password=chosen_password,
        key=key,
        password_generated=password is None,
        key_generated=api_key is None,
    )
