"""Every query of the tenancy module. Merchant-owned reads always filter by ``merchant_id``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from siyu.kit.pagination import PageRequest, paginate
from siyu.tenancy.models import (
    ApiKey,
    AuditEntry,
    Merchant,
    Provider,
    ProviderGrant,
    Staff,
    StaffStore,
    Store,
)


def get_provider(session: Session, provider_id: str) -> Provider | None:
    return session.get(Provider, provider_id)


def get_merchant(session: Session, merchant_id: str) -> Merchant | None:
    return session.get(Merchant, merchant_id)


def merchant_ids(session: Session) -> list[str]:
    return list(session.execute(select(Merchant.id).order_by(Merchant.id)).scalars())


def list_merchants(session: Session, merchant_ids: Sequence[str], page: PageRequest) -> Sequence[Merchant]:
    statement = paginate(select(Merchant).where(Merchant.id.in_(merchant_ids)), Merchant.id, page)
    return session.execute(statement).scalars().all()


def first_merchant(session: Session) -> Merchant | None:
    return session.execute(select(Merchant).order_by(Merchant.id).limit(1)).scalar_one_or_none()


def count_merchants(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Merchant)).scalar_one())


def get_store(session: Session, merchant_id: str, store_id: str) -> Store | None:
    return session.get(Store, (merchant_id, store_id))


def list_stores(
    session: Session, merchant_id: str, page: PageRequest, *, only_ids: Sequence[str] | None = None
) -> Sequence[Store]:
    statement = select(Store).where(Store.merchant_id == merchant_id)
    if only_ids is not None:
        statement = statement.where(Store.id.in_(only_ids))
    return session.execute(paginate(statement, Store.id, page)).scalars().all()


def all_stores(
    session: Session, merchant_id: str, *, only_ids: Sequence[str] | None = None
) -> Sequence[Store]:
    statement = select(Store).where(Store.merchant_id == merchant_id)
    if only_ids is not None:
        statement = statement.where(Store.id.in_(only_ids))
    return session.execute(statement.order_by(Store.code, Store.id)).scalars().all()


def next_store_number(session: Session, merchant_id: str) -> int:
    """Bump and return the merchant's store-number sequence (one statement; a row lock on PostgreSQL)."""
    statement = (
        update(Merchant)
        .where(Merchant.id == merchant_id)
        .values(store_number_seq=Merchant.store_number_seq + 1)
        .returning(Merchant.store_number_seq)
    )
    return int(session.execute(statement).scalar_one())


def store_code_taken(session: Session, merchant_id: str, code: str) -> bool:
    statement = select(Store.id).where(Store.merchant_id == merchant_id, Store.code == code).limit(1)
    return session.execute(statement).first() is not None


def store_ids_existing(session: Session, merchant_id: str, store_ids: Sequence[str]) -> set[str]:
    statement = select(Store.id).where(Store.merchant_id == merchant_id, Store.id.in_(store_ids))
    return set(session.execute(statement).scalars().all())


def get_staff(session: Session, merchant_id: str, staff_id: str) -> Staff | None:
    return session.get(Staff, (merchant_id, staff_id))


def get_staff_by_login(session: Session, login: str) -> Staff | None:
    return session.execute(select(Staff).where(Staff.login == login)).scalar_one_or_none()


def list_staff(session: Session, merchant_id: str, page: PageRequest) -> Sequence[Staff]:
    statement = select(Staff).where(Staff.merchant_id == merchant_id)
    return session.execute(paginate(statement, Staff.id, page)).scalars().all()


def staff_store_ids(session: Session, merchant_id: str, staff_ids: Sequence[str]) -> dict[str, list[str]]:
    statement = (
        select(StaffStore.staff_id, StaffStore.store_id)
        .where(StaffStore.merchant_id == merchant_id, StaffStore.staff_id.in_(staff_ids))
        .order_by(StaffStore.store_id)
    )
    result: dict[str, list[str]] = {staff_id: [] for staff_id in staff_ids}
    for staff_id, store_id in session.execute(statement):
        result[staff_id].append(store_id)
    return result


def get_api_key_by_hash(session: Session, secret_hash: str) -> ApiKey | None:
    return session.execute(select(ApiKey).where(ApiKey.secret_hash == secret_hash)).scalar_one_or_none()


def get_api_key(
    session: Session, key_id: str, *, merchant_id: str | None = None, provider_id: str | None = None
) -> ApiKey | None:
    statement = select(ApiKey).where(ApiKey.id == key_id)
    statement = statement.where(
        ApiKey.merchant_id == merchant_id if merchant_id is not None else ApiKey.merchant_id.is_(None)
    )
    statement = statement.where(
        ApiKey.provider_id == provider_id if provider_id is not None else ApiKey.provider_id.is_(None)
    )
    return session.execute(statement).scalar_one_or_none()


def list_api_keys(
    session: Session, page: PageRequest, *, merchant_id: str | None = None, provider_id: str | None = None
) -> Sequence[ApiKey]:
    if merchant_id is not None:
        statement = select(ApiKey).where(ApiKey.merchant_id == merchant_id)
    else:
        statement = select(ApiKey).where(ApiKey.provider_id == provider_id)
    return session.execute(paginate(statement, ApiKey.id, page)).scalars().all()


def active_grant(session: Session, merchant_id: str, provider_id: str) -> ProviderGrant | None:
    statement = (
        select(ProviderGrant)
        .where(
            ProviderGrant.merchant_id == merchant_id,
            ProviderGrant.provider_id == provider_id,
            ProviderGrant.revoked_at.is_(None),
        )
        .order_by(ProviderGrant.id.desc())
        .limit(1)
    )
    return session.execute(statement).scalar_one_or_none()


def get_grant(session: Session, merchant_id: str, grant_id: str) -> ProviderGrant | None:
    return session.get(ProviderGrant, (merchant_id, grant_id))


def get_grant_for_provider(session: Session, provider_id: str, grant_id: str) -> ProviderGrant | None:
    statement = select(ProviderGrant).where(
        ProviderGrant.id == grant_id, ProviderGrant.provider_id == provider_id
    )
    return session.execute(statement).scalar_one_or_none()


def list_grants(
    session: Session, page: PageRequest, *, merchant_id: str | None = None, provider_id: str | None = None
) -> Sequence[ProviderGrant]:
    statement = select(ProviderGrant)
    if merchant_id is not None:
        statement = statement.where(ProviderGrant.merchant_id == merchant_id)
    if provider_id is not None:
        statement = statement.where(ProviderGrant.provider_id == provider_id)
    return session.execute(paginate(statement, ProviderGrant.id, page)).scalars().all()


def granted_merchant_ids(session: Session, provider_id: str) -> list[str]:
    statement = select(ProviderGrant.merchant_id).where(
        ProviderGrant.provider_id == provider_id, ProviderGrant.revoked_at.is_(None)
    )
    return sorted(set(session.execute(statement).scalars().all()))


def list_audit(session: Session, merchant_id: str, limit: int = 100) -> Sequence[AuditEntry]:
    statement = (
        select(AuditEntry)
        .where(AuditEntry.merchant_id == merchant_id)
        .order_by(AuditEntry.at.desc())
        .limit(limit)
    )
    return session.execute(statement).scalars().all()
