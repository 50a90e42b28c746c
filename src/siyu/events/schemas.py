"""The event envelope and the properties of the built-in event types."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
CUSTOM_PREFIX = "custom."
CUSTOM_TYPE = re.compile(r"^custom\.[a-z0-9][a-z0-9_.-]{0,56}$")
MAX_BATCH = 5000
MAX_FUTURE_SECONDS = 24 * 3600
"""Events dated more than a day ahead are refused: a device clock that far off is an error."""


class EventIn(BaseModel):
    """One event as a client sends it."""

    model_config = ConfigDict(extra="forbid")

    event_id: EventId = Field(description="client-chosen id: sending the same event again counts once")
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    occurred_at: AwareDatetime
    identities: dict[str, str] = Field(description="alipay_user_id, wechat_openid, phone, member_no, …")
    channel: Annotated[str, StringConstraints(max_length=64)] | None = None
    store_id: Annotated[str, StringConstraints(max_length=40)] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Props(BaseModel):
    """Properties of a built-in type: the named ones are checked, others are kept as they are."""

    model_config = ConfigDict(extra="allow")


class ScanProps(Props):
    code_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class SubscribeProps(Props):
    channel: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    template_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    one_time: bool = True


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    sku: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    quantity: int = Field(ge=1)
    amount_fen: int = Field(ge=0)


class OrderPaidProps(Props):
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    amount_fen: int = Field(ge=0, description="paid amount in fen (分)")
    items: list[OrderItem] = Field(default_factory=list)
    coupon_codes: list[str] = Field(default_factory=list)


class OrderRefundedProps(Props):
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    amount_fen: int = Field(ge=0, description="refunded amount in fen (分)")


class FollowProps(Props):
    """Life-account (生活号) follow or unfollow.

    ``account_id`` names the account when a merchant has several.
    """

    account_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class MemberJoinedProps(Props):
    """The person became a member (registered, or arrived by import); ``source`` says how."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class MessageProps(Props):
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


BUILT_IN_TYPES: dict[str, type[Props]] = {
    "visit": Props,
    "scan": ScanProps,
    "search_direct": Props,
    "favorite": Props,
    "unfavorite": Props,
    "follow": FollowProps,
    "unfollow": FollowProps,
    "member_joined": MemberJoinedProps,
    "subscribe": SubscribeProps,
    "unsubscribe": SubscribeProps,
    "order_paid": OrderPaidProps,
    "order_refunded": OrderRefundedProps,
    "share": Props,
    "checkin": Props,
    "message_opened": MessageProps,
    "message_clicked": MessageProps,
    "payment_page_view": Props,
}


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class EventResult(BaseModel):
    index: int
    event_id: str | None
    status: str = Field(description="accepted, duplicate or rejected")
    member_id: str | None = None
    reason: str | None = None
    pointer: str | None = None


class BatchOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]
