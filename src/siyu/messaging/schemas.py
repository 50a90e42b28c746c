"""Request and response bodies of the messaging API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from siyu.messaging.models import MessageKind, TemplateChannel

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    channel: TemplateChannel
    kind: MessageKind
    title: str = Field(default="", max_length=200)
    body: str = Field(default="", max_length=2000)
    platform_template_id: str | None = Field(
        default=None,
        max_length=128,
        description="subscription: the platform template id (the member's quota key)",
    )
    sms_template_code: str | None = Field(default=None, max_length=64)
    page: str | None = Field(default=None, max_length=500, description="the mini-program page to open")


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    channel: TemplateChannel | None = None
    kind: MessageKind | None = None
    title: str | None = Field(default=None, max_length=200)
    body: str | None = Field(default=None, max_length=2000)
    platform_template_id: str | None = Field(default=None, max_length=128)
    sms_template_code: str | None = Field(default=None, max_length=64)
    page: str | None = Field(default=None, max_length=500)


class TemplateOut(BaseModel):
    id: str
    name: str
    channel: str
    kind: str
    title: str
    body: str
    platform_template_id: str | None
    sms_template_code: str | None
    page: str | None
    variables: list[str] = Field(description="the `{{variable}}` names the title and body use")
    created_at: datetime
    updated_at: datetime


class ChannelCap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: int | None = Field(default=None, ge=0, le=100)
    week: int | None = Field(default=None, ge=0, le=700)


class FatigueIO(BaseModel):
    """Marketing caps (local calendar days, ISO weeks in the merchant's zone) and quiet hours."""

    model_config = ConfigDict(extra="forbid")

    marketing_per_day: int = Field(default=1, ge=0, le=100)
    marketing_per_week: int = Field(default=3, ge=0, le=700)
    channel_caps: dict[TemplateChannel, ChannelCap] = Field(default_factory=dict)
    quiet_start: str | None = Field(
        default="21:00", pattern=HHMM, description="local HH:MM; null: no quiet hours"
    )
    quiet_end: str | None = Field(default="09:00", pattern=HHMM)

    @model_validator(mode="after")
    def _both_or_neither(self) -> FatigueIO:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet_start and quiet_end are both set or both null")
        return self


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: str = Field(min_length=1, max_length=40)
    template_id: str = Field(min_length=1, max_length=40)
    variables: dict[str, str] = Field(default_factory=dict)
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="idempotency key of the message (default: the Idempotency-Key header, else a new one)",
    )
    campaign_id: str | None = Field(default=None, max_length=40)

    @field_validator("variables")
    @classmethod
    def _small(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 50:
            raise ValueError("at most 50 variables")
        return value


class SendOut(BaseModel):
    key: str
    member_id: str
    status: str
    message_id: str | None
    send_at: datetime | None
    reason: str | None


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    key: str
    member_id: str
    template_id: str
    channel: str
    kind: str
    campaign_id: str | None
    status: str
    reason: str | None
    send_at: datetime
    local_day: str
    local_week: str
    title: str | None
    body: str | None
    variables: dict[str, Any] | None
    provider_ref: str | None
    attempts: int
    created_at: datetime
    finished_at: datetime | None


class GuideTaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    key: str
    staff_id: str
    member_id: str
    title: str
    body: str
    due_at: datetime | None
    status: str
    campaign_id: str | None
    created_at: datetime
    completed_at: datetime | None
