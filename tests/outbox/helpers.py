"""Test handlers registered under ``test.*`` kinds, and a recorder of what they saw."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from siyu.db import Database
from siyu.outbox.facade import OutboxItemView, Permanent, Retry, handles, handles_batch
from siyu.outbox.models import OutboxAttempt, OutboxItem


@dataclass
class Recorder:
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    """(key, worker thread name, attempts) per handler call."""
    behaviour: dict[str, Any] = field(default_factory=dict)
    """key → exception to raise (or a callable run before returning)."""

    def record(self, item: OutboxItemView) -> None:
        with self.lock:
            self.seen.append((item.key, threading.current_thread().name, item.attempts))

    def keys(self) -> list[str]:
        with self.lock:
            return [k for k, _, _ in self.seen]


recorder = Recorder()


@handles("test.record")
def record(db: Database, item: OutboxItemView) -> None:
    recorder.record(item)
    action = recorder.behaviour.get(item.key)
    if isinstance(action, BaseException):
        raise action
    if callable(action):
        action(item)


@handles("test.retry_later")
def retry_later(db: Database, item: OutboxItemView) -> None:
    recorder.record(item)
    raise Retry("the receiver asked us to come back", after=timedelta(minutes=7))


@handles("test.permanent")
def permanent(db: Database, item: OutboxItemView) -> None:
    recorder.record(item)
    raise Permanent("the receiver refuses this item")


batches: list[list[str]] = []
"""The keys of each call of the ``test.batch`` batch handler."""
explode: set[str] = set()
"""Keys that make a ``test.batch`` batch raise as a whole."""


@handles("test.batch")
def batch_one(db: Database, item: OutboxItemView) -> None:
    """The one-item handler of ``test.batch`` (what the batch falls back on)."""
    record(db, item)


@handles_batch("test.batch")
def batch_many(db: Database, items: Sequence[OutboxItemView]) -> dict[str, Exception | None]:
    """Answers each item as ``recorder.behaviour`` says: an exception for it, ``"skip"`` (no
    answer: the one-item handler decides); a key in :data:`explode` makes the whole batch raise."""
    batches.append([i.key for i in items])
    if any(i.key in explode for i in items):
        raise RuntimeError("the batch failed")
    answers: dict[str, Exception | None] = {}
    for i in items:
        action = recorder.behaviour.get(i.key)
        if action == "skip":
            continue
        if callable(action) and not isinstance(action, Exception):
            action(i)
            action = None
        answers[i.id] = action if isinstance(action, Exception) else None
    return answers


def reset() -> Iterator[Recorder]:
    batches.clear()
    explode.clear()
    recorder.seen.clear()
    recorder.behaviour.clear()
    yield recorder
    recorder.seen.clear()
    recorder.behaviour.clear()


def item(db: Database, merchant_id: str, key: str) -> OutboxItem:
    with db.reading() as session:
        row = session.execute(
            select(OutboxItem).where(OutboxItem.merchant_id == merchant_id, OutboxItem.key == key)
        ).scalar_one()
        session.expunge(row)
        return row


def attempts(db: Database, merchant_id: str, item_id: str) -> list[OutboxAttempt]:
    with db.reading() as session:
        rows = list(
            session.execute(
                select(OutboxAttempt)
                .where(OutboxAttempt.merchant_id == merchant_id, OutboxAttempt.item_id == item_id)
                .order_by(OutboxAttempt.number, OutboxAttempt.id)
            ).scalars()
        )
        for row in rows:
            session.expunge(row)
        return rows
