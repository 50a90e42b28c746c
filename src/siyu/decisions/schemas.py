"""Decision API bodies and answers. Money is integer fen."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Fen = Annotated[int, Field(strict=True, ge=0, le=10**12)]


class PaymentIn(BaseModel):
    """A payment that just succeeded, as the mini-program's payment-success page reports it."""

    model_config = ConfigDict(extra="forbid")

    identities: dict[str, str] = Field(
        min_length=1, description="the payer's identities, as in events: alipay_user_id, phone, member_no…"
    )
    amount_fen: Fen
    store_id: Annotated[str, StringConstraints(max_length=40)] | None = None
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="the paid order: a retry with the same order id returns the same decision"
    )
    channel: Annotated[str, StringConstraints(max_length=64)] | None = None


class OfferOut(BaseModel):
    campaign_id: str
    variant: str | None
    template_id: str
    template_name: str | None
    kind: str | None
    value_fen: int | None
    discount_bp: int | None
    threshold_fen: int | None


class DecisionOut(BaseModel):
    id: str
    status: str = Field(description="offered, accepted, declined, refused, expired, none or holdout")
    member_id: str
    campaign_id: str | None
    variant: str | None
    group: str | None
    offer: OfferOut | None = Field(description="what to show (only while offered or accepted)")
    coupon_id: str | None
    reason: str | None
    amount_fen: int
    store_id: str | None
    order_id: str | None
    created_at: datetime
    accepted_at: datetime | None
    closed_at: datetime | None
    replayed: bool


class SettingsIO(BaseModel):
    """A payment-success campaign's conditions for showing its offer."""

    model_config = ConfigDict(extra="forbid")

    min_amount_fen: Fen | None = None
    store_ids: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        default_factory=list, max_length=500
    )
    channels: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    per_member_per_day: Annotated[int, Field(strict=True, ge=0, le=100)] = 1
