"""Journey API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class NodeCountOut(BaseModel):
    node_id: str
    type: str = Field(description="entry, action, wait, branch, split or exit")
    waiting: int = Field(description="members at this node now, due to leave it")
    done: int = Field(description="members who finished at this node (an exit)")
    exited: int = Field(description="members who left the journey here without walking on (holdout…)")


class JourneyOut(BaseModel):
    campaign_id: str
    journey: dict[str, Any] = Field(description="the graph (see GET /journeys/schema)")
    members: int = Field(description="members enrolled, both groups")
    holdout: int = Field(description="members assigned to the holdout: recorded, never treated")
    nodes: list[NodeCountOut]


class StepOut(BaseModel):
    seq: int
    node_id: str = Field(description="the node the member left (or finished at)")
    outcome: str = Field(
        description="entered, holdout, treated, waited, event, timed_out, yes, no, split:<i>, exit, "
        "campaign_ended, merged, erased…"
    )
    detail: str | None = Field(description="for treatments: action:status of each")
    at: datetime


class MemberPathOut(BaseModel):
    campaign_id: str
    member_id: str
    node_id: str = Field(description="where the member is (or finished)")
    status: str = Field(description="waiting, done or exited")
    group: str | None = Field(description="treatment or holdout once the entry step assigned the member")
    due_at: datetime | None = Field(description="when the member next moves (waiting only)")
    awaiting_event: str | None
    entered_at: datetime
    updated_at: datetime
    failures: int = Field(description="failed attempts at the current node (retried with back-off)")
    last_error: str | None
    steps: list[StepOut]
