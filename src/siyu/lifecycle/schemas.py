"""Lifecycle API bodies. Answers reuse the facade's frozen views where they fit."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from siyu.lifecycle.rules import Stage, StageRules


class RulesOut(BaseModel):
    rules: StageRules
    customised: bool = Field(description="false: the defaults apply")
    updated_at: datetime | None = None
    updated_by: str | None = None
    pending_members: int = Field(
        0,
        description="members still to re-classify (after a change to a large base: the upkeep sweep does it)",
    )


class SweepOut(BaseModel):
    day: date = Field(description="the merchant's local day classified for")
    members: int = Field(description="members re-classified")
    transitions: int = Field(description="ledger entries written")
    pending_members: int = Field(description="members still due: call again (or let the upkeep do it)")


class StageCount(BaseModel):
    stage: Stage
    members: int


class StagesOut(BaseModel):
    date: date
    total: int = Field(description="members in the base at the end of the day")
    stages: list[StageCount] = Field(description="every stage, in lifecycle order, zeros included")


class Flow(BaseModel):
    from_stage: Stage | None = Field(description="null: not a member yet on the first day")
    to_stage: Stage | None = Field(description="null: merged into another member by the second day")
    members: int


class FlowsOut(BaseModel):
    start: date
    end: date
    flows: list[Flow] = Field(description="non-empty pairs; from == to is staying in the stage")
