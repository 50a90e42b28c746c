"""Tables of tenancy and access. Merchant-owned tables lead their keys with ``merchant_id``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, JSONType, UTCDateTime

ID = String(40)


class StoreKind(StrEnum):
    """Direct (直营) or franchise (加盟) store."""

    DIRECT = "direct"
    FRANCHISE = "franchise"


class StoreStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class StaffRole(StrEnum):
    """What a staff account may do in the console."""

    OWNER = "owner"
    OPERATOR = "operator"
    ANALYST = "analyst"
    GUIDE = "guide"
    """Shopping guide (导购): serves assigned members."""


class Provider(Base):
    """A service provider (服务商/ISV, 代运营) that operates merchants under grants."""

    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Merchant(Base):
    """A merchant (商家/品牌): the tenant every user asset belongs to."""

    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    onboarded_by_provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id"), index=True)
    store_number_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Last automatic store number handed out (S0001, S0002, …); bumped in one UPDATE."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Store(Base):
    """A store (门店): direct or franchise, with an address and a location for LBS rules."""

    __tablename__ = "stores"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        CheckConstraint("latitude IS NULL OR (latitude >= -90 AND latitude <= 90)", name="latitude_range"),
        CheckConstraint(
            "longitude IS NULL OR (longitude >= -180 AND longitude <= 180)", name="longitude_range"
        ),
    )

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=StoreKind.DIRECT)
    status: Mapped[str] = mapped_column(String(16), default=StoreStatus.OPEN)
    city: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(500))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Staff(Base):
    """A staff account. With store assignments it sees only those stores (franchise staff)."""

    __tablename__ = "staff"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    login: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffStore(Base):
    """Limits a staff account to a store; composite keys keep both in the same merchant."""

    __tablename__ = "staff_stores"
    __table_args__ = (
        ForeignKeyConstraint(
            ["merchant_id", "staff_id"], ["staff.merchant_id", "staff.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["merchant_id", "store_id"], ["stores.merchant_id", "stores.id"]),
    )

    merchant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    staff_id: Mapped[str] = mapped_column(ID, primary_key=True)
    store_id: Mapped[str] = mapped_column(ID, primary_key=True)


class ApiKey(Base):
    """An API key of a merchant or of a provider. Only the SHA-256 of the secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("(merchant_id IS NULL) <> (provider_id IS NULL)", name="one_owner"),
        Index(None, "merchant_id", "id"),
        Index(None, "provider_id", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id"))
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id"))
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ProviderGrant(Base):
    """代运营授权: a merchant lets a provider act for it, within scopes, until revoked."""

    __tablename__ = "provider_grants"
    __table_args__ = (Index(None, "provider_id", "merchant_id"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Who changed access: keys, grants, staff. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "merchant_id", "at"), Index(None, "provider_id", "at"))

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id"))
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, object]] = mapped_column(JSONType, default=dict)
