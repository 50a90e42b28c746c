"""Rules for providers, merchants, stores and staff. Never commits: callers own the unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.kit.clock import is_valid_timezone
from siyu.kit.crypto import hash_password, verify_password
from siyu.kit.ids import IdKind, new_id
from siyu.kit.money import is_currency_code
from siyu.kit.problems import Conflict, invalid_field
from siyu.tenancy import repository as repo
from siyu.tenancy.models import (
    AuditEntry,
    Merchant,
    Provider,
    Staff,
    StaffRole,
    StaffStore,
    Store,
    StoreKind,
    StoreStatus,
)

MIN_PASSWORD_LENGTH = 8


def audit(
    session: Session,
    *,
    now: datetime,
    actor: str,
    action: str,
    merchant_id: str | None = None,
    provider_id: str | None = None,
    target: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Append one audit entry (who changed access, and what)."""
    session.add(
        AuditEntry(
            id=new_id(IdKind.AUDIT),
            merchant_id=merchant_id,
            provider_id=provider_id,
            at=now,
            actor=actor,
            action=action,
            target=target,
            detail=detail or {},
        )
    )


def create_provider(session: Session, *, name: str, now: datetime) -> Provider:
    """A service provider (服务商)."""
    provider = Provider(id=new_id(IdKind.PROVIDER), name=name.strip(), created_at=now)
    session.add(provider)
    session.flush()
    return provider


def create_merchant(
    session: Session,
    *,
    name: str,
    now: datetime,
    timezone: str = "Asia/Shanghai",
    currency: str = "CNY",
    provider_id: str | None = None,
) -> Merchant:
    """A merchant (商家) with its reporting time zone and currency."""
    if not is_valid_timezone(timezone):
        raise invalid_field(
            "/timezone", f"unknown time zone {timezone!r}; use an IANA name such as Asia/Shanghai"
        )
    if not is_currency_code(currency):
        raise invalid_field("/currency", f"currency must be an ISO 4217 code such as CNY, not {currency!r}")
    merchant = Merchant(
        id=new_id(IdKind.MERCHANT),
        name=name.strip(),
        timezone=timezone,
        currency=currency,
        onboarded_by_provider_id=provider_id,
        created_at=now,
        updated_at=now,
    )
    session.add(merchant)
    session.flush()
    return merchant


def update_merchant(
    session: Session,
    merchant: Merchant,
    *,
    now: datetime,
    name: str | None = None,
    timezone: str | None = None,
    currency: str | None = None,
) -> Merchant:
    if timezone is not None and not is_valid_timezone(timezone):
        raise invalid_field(
            "/timezone", f"unknown time zone {timezone!r}; use an IANA name such as Asia/Shanghai"
        )
    if currency is not None and not is_currency_code(currency):
        raise invalid_field("/currency", f"currency must be an ISO 4217 code such as CNY, not {currency!r}")
    if name is not None:
        merchant.name = name.strip()
    if timezone is not None:
        merchant.timezone = timezone
    if currency is not None:
        merchant.currency = currency
    merchant.updated_at = now
    session.flush()
    return merchant


@dataclass(frozen=True, slots=True)
class StoreFields:
    """Editable fields of a store; ``None`` means "leave as is" on update."""

    name: str | None = None
    code: str | None = None
    kind: StoreKind | None = None
    status: StoreStatus | None = None
    city: str | None = None
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def _next_store_code(session: Session, merchant_id: str) -> str:
    """The next free ``S0001``-style code. The sequence is bumped atomically, so concurrent
    creations never get the same number; numbers a person already used by hand are skipped."""
    while True:
        code = f"S{repo.next_store_number(session, merchant_id):04d}"
        if not repo.store_code_taken(session, merchant_id, code):
            return code


def create_store(session: Session, merchant_id: str, fields: StoreFields, *, now: datetime) -> Store:
    """A store (门店). Its code defaults to the next ``S0001``-style number."""
    if not fields.name or not fields.name.strip():
        raise invalid_field("/name", "a store needs a name")
    if (fields.latitude is None) != (fields.longitude is None):
        raise invalid_field("/latitude", "give both latitude and longitude, or neither")
    store = Store(
        merchant_id=merchant_id,
        id=new_id(IdKind.STORE),
        code=(fields.code or _next_store_code(session, merchant_id)).strip(),
        name=fields.name.strip(),
        kind=fields.kind or StoreKind.DIRECT,
        status=fields.status or StoreStatus.OPEN,
        city=fields.city,
        address=fields.address,
        latitude=fields.latitude,
        longitude=fields.longitude,
        created_at=now,
        updated_at=now,
    )
    session.add(store)
    _flush_unique(session, f"store code {store.code!r} is already used by another store of this merchant")
    return store


def update_store(session: Session, store: Store, fields: StoreFields, *, now: datetime) -> Store:
    for name in ("name", "code", "kind", "status", "city", "address", "latitude", "longitude"):
        value = getattr(fields, name)
        if value is not None:
            setattr(store, name, value.strip() if isinstance(value, str) else value)
    if (store.latitude is None) != (store.longitude is None):
        raise invalid_field("/latitude", "give both latitude and longitude, or neither")
    store.updated_at = now
    _flush_unique(session, f"store code {store.code!r} is already used by another store of this merchant")
    return store


def _flush_unique(session: Session, message: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(message) from None


def normalise_login(login: str) -> str:
    return login.strip().lower()


def _check_store_ids(session: Session, merchant_id: str, store_ids: Sequence[str]) -> list[str]:
    wanted = sorted(set(store_ids))
    missing = set(wanted) - repo.store_ids_existing(session, merchant_id, wanted)
    if missing:
        raise invalid_field("/store_ids", f"unknown store ids: {', '.join(sorted(missing))}")
    return wanted


def create_staff(
    session: Session,
    merchant_id: str,
    *,
    login: str,
    display_name: str,
    role: StaffRole,
    password: str,
    now: datetime,
    actor: str,
    store_ids: Sequence[str] = (),
) -> Staff:
    """A staff account. ``store_ids`` limits it to those stores (franchise staff); owners see all.

    The creation is audited under ``actor``.
    """
    login = normalise_login(login)
    if not login:
        raise invalid_field("/login", "a login is required")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise invalid_field("/password", f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if role == StaffRole.OWNER and store_ids:
        raise invalid_field("/store_ids", "an owner sees every store and cannot be limited to some")
    wanted = _check_store_ids(session, merchant_id, store_ids)
    if repo.get_staff_by_login(session, login) is not None:
        raise Conflict(f"login {login!r} is taken")
    staff = Staff(
        merchant_id=merchant_id,
        id=new_id(IdKind.STAFF),
        login=login,
        display_name=display_name.strip() or login,
        role=role,
        password_hash=hash_password(password),
        active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(staff)
    _flush_unique(session, f"login {login!r} is taken")
    session.add_all(StaffStore(merchant_id=merchant_id, staff_id=staff.id, store_id=s) for s in wanted)
    session.flush()
    audit(
        session,
        now=now,
        actor=actor,
        action="staff.created",
        merchant_id=merchant_id,
        target=staff.id,
        detail={"role": staff.role, "store_ids": wanted},
    )
    return staff


def update_staff(
    session: Session,
    staff: Staff,
    *,
    now: datetime,
    actor: str,
    display_name: str | None = None,
    role: StaffRole | None = None,
    password: str | None = None,
    active: bool | None = None,
    store_ids: Sequence[str] | None = None,
) -> Staff:
    new_role = role or StaffRole(staff.role)
    limited = (
        store_ids
        if store_ids is not None
        else repo.staff_store_ids(session, staff.merchant_id, [staff.id])[staff.id]
    )
    if new_role == StaffRole.OWNER and limited:
        raise invalid_field("/store_ids", "an owner sees every store and cannot be limited to some")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise invalid_field("/password", f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if display_name is not None:
        staff.display_name = display_name.strip() or staff.login
    staff.role = new_role
    if password is not None:
        staff.password_hash = hash_password(password)
    if active is not None:
        staff.active = active
    if store_ids is not None:
        wanted = _check_store_ids(session, staff.merchant_id, store_ids)
        session.execute(
            delete(StaffStore).where(
                StaffStore.merchant_id == staff.merchant_id, StaffStore.staff_id == staff.id
            )
        )
        session.add_all(
            StaffStore(merchant_id=staff.merchant_id, staff_id=staff.id, store_id=s) for s in wanted
        )
    staff.updated_at = now
    session.flush()
    changed = {
        "display_name": display_name,
        "role": role,
        "active": active,
        "store_ids": store_ids,
        "password": password,
    }
    audit(
        session,
        now=now,
        actor=actor,
        action="staff.updated",
        merchant_id=staff.merchant_id,
        target=staff.id,
        detail={"fields": sorted(k for k, v in changed.items() if v is not None)},
    )
    return staff


def authenticate_staff(session: Session, *, login: str, password: str, now: datetime) -> Staff | None:
    """The active staff account with this login and password, or ``None`` (no hint which failed)."""
    staff = repo.get_staff_by_login(session, normalise_login(login))
    if staff is None:
        verify_password(_dummy_hash(), password)  # same cost whether or not the login exists
        return None
    if not staff.active or not verify_password(staff.password_hash, password):
        return None
    staff.last_login_at = now
    session.flush()
    return staff


@cache
def _dummy_hash() -> str:
    return hash_password("siyu-dummy-password")
