"""Outbox API answers (operators: what is pending, what failed and why)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    """``done``, ``retry``, ``dead``, ``abandoned`` (lease ran out), or null while running."""
    error: str | None


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    key: str
    status: str
    attempts: int
    available_at: datetime
    """When it may next be claimed (for an item in flight: when its lease ends)."""
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    done_at: datetime | None


class ItemDetailOut(ItemOut):
    payload: dict[str, Any]
    attempt_log: list[AttemptOut]
