"""Channel API bodies and answers. Secrets go in, and never come out (but once, when generated)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=32, max_length=10_000)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(examples=["https://erp.example.com/siyu/webhooks"])


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: Annotated[int, Field(strict=True, ge=0, le=7 * 86_400)] = Field(
        default=86_400, description="how long the previous secret keeps signing alongside the new one"
    )


class SubscriptionIn(BaseModel):
    """The Alipay mini-program that sends subscription messages (订阅消息)."""

    model_config = ConfigDict(extra="forbid")

    app_id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{8,32}$")] = Field(
        examples=["2021000000000000"]
    )
    private_key: Key | None = Field(
        default=None,
        description="the application private key (应用私钥), PEM or bare base64; stored encrypted, never "
        "shown again; leave out to keep the stored one",
    )
    alipay_public_key: Key = Field(description="the Alipay public key (支付宝公钥), PEM or bare base64")
    gateway_url: Url | None = Field(
        default=None, description="default https://openapi.alipay.com/gateway.do (set the sandbox's to test)"
    )


class NamedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="SMS: the sign (短信签名); life account: its name", examples=["一杯咖啡"])


class ChannelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: str
    settings: dict[str, Any]
    secret_hint: str | None
    previous_valid_until: datetime | None = Field(
        description="a rotated webhook secret keeps signing until then (null: none)"
    )
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None, description="the new webhook signing secret: shown in this answer only, keep it now"
    )


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    key: str
    channel: str
    member_id: str | None
    attempted_at: datetime
    ok: bool
    permanent: bool
    recorded_only: bool
    status_code: int | None
    provider_code: str | None
    provider_ref: str | None
    detail: str
