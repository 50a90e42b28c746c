"""Segments API shapes. Rules travel as plain JSON objects: the server validates them with
:func:`siyu.segments.rules.check_rule`, whose errors name the JSON pointer of the bad node."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RULE_DESCRIPTION = "a segment rule: see GET /api/v1/segments/schema and docs/segments.md"


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    rule: dict[str, Any] = Field(description=RULE_DESCRIPTION)


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    rule: dict[str, Any] | None = Field(default=None, description=RULE_DESCRIPTION)


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    rule: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any] = Field(description=RULE_DESCRIPTION)
    sample: int = Field(default=20, ge=0, le=100, description="how many matching members to show")


class SampleMember(BaseModel):
    id: str
    stage: str | None


class PreviewOut(BaseModel):
    count: int
    sample: list[SampleMember]
    """The first matching members in id order (ids and stage only: nothing personal)."""


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str = Field(default="api", min_length=1, max_length=200)


class SnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    segment_id: str | None
    purpose: str
    rule: dict[str, Any]
    member_count: int
    created_at: datetime


class MembershipOut(BaseModel):
    segment_id: str
    member_id: str
    member: bool
