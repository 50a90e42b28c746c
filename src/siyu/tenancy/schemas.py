"""Request and response bodies of the tenancy API. Requests forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from siyu.tenancy.models import StaffRole, StoreKind, StoreStatus

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MerchantOut(ResponseModel):
    id: str
    name: str
    timezone: str
    currency: str
    created_at: datetime
    updated_at: datetime


class MerchantCreate(RequestModel):
    name: Name
    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone for day boundaries")
    currency: str = Field(default="CNY", min_length=3, max_length=3)


class MerchantUpdate(RequestModel):
    name: Name | None = None
    timezone: str | None = None
    currency: str | None = Field(default=None, min_length=3, max_length=3)


class StoreOut(ResponseModel):
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


class StoreCreate(RequestModel):
    name: Name
    code: Code | None = Field(
        default=None, description="the merchant's own store code; default S0001, S0002…"
    )
    kind: StoreKind = StoreKind.DIRECT
    city: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=500)
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class StoreUpdate(RequestModel):
    name: Name | None = None
    code: Code | None = None
    kind: StoreKind | None = None
    status: StoreStatus | None = None
    city: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=500)
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class StaffOut(BaseModel):
    id: str
    merchant_id: str
    login: str
    display_name: str
    role: StaffRole
    active: bool
    store_ids: list[str] = Field(description="empty: every store; otherwise only these (franchise staff)")
    created_at: datetime
    last_login_at: datetime | None


class StaffCreate(RequestModel):
    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    role: StaffRole
    password: Annotated[str, StringConstraints(min_length=8, max_length=200)]
    store_ids: list[str] = Field(default_factory=list, max_length=1000)


class StaffUpdate(RequestModel):
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    role: StaffRole | None = None
    password: Annotated[str, StringConstraints(min_length=8, max_length=200)] | None = None
    active: bool | None = None
    store_ids: list[str] | None = Field(default=None, max_length=1000)


class ApiKeyOut(ResponseModel):
    id: str
    name: str
    hint: str = Field(description="the first characters of the secret, to tell keys apart")
    merchant_id: str | None
    provider_id: str | None
    scopes: list[str]
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="shown once; store it now, it cannot be shown again")


class ApiKeyCreate(RequestModel):
    name: Name
    scopes: list[str] = Field(min_length=1, max_length=100)


class GrantOut(ResponseModel):
    id: str
    merchant_id: str
    provider_id: str
    scopes: list[str]
    note: str | None
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


class GrantCreate(RequestModel):
    provider_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    scopes: list[str] = Field(min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=1000)


class Health(BaseModel):
    status: str
    version: str
    database: str


class WhoAmI(BaseModel):
    """The caller, as the API sees its key."""

    key_id: str
    merchant_id: str | None = Field(
        description="the merchant this request acts for (None: a provider for itself)"
    )
    provider_id: str | None
    grant_id: str | None
    scopes: list[str]
