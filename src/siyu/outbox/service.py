"""Rules of the outbox: enqueueing, the handler registry, and one worker round.

A round (:func:`run_once`) claims a batch in one short transaction, then runs each item's handler
**outside any transaction** (a handler does network I/O; holding a transaction — on SQLite, the
database's write lock — across it would stall every writer), then records each outcome in a
transaction of its own. Delivery is therefore at least once: a worker that dies between the
handler's side effect and the record leaves the item in flight until its lease ends, and the next
worker delivers it again under the same key.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.ids import IdKind, new_id
from siyu.kit.problems import invalid_field
from siyu.outbox import repository
from siyu.outbox.models import AttemptOutcome
from siyu.outbox.repository import Claim

log = logging.getLogger("siyu.outbox")

MAX_KEY_LENGTH = 255
MAX_KIND_LENGTH = 64


@dataclass(frozen=True)
class OutboxItemView:
    """What a handler receives: the item as enqueued, and how many attempts have started."""

    merchant_id: str
    id: str
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class NewItem:
    kind: str
    key: str
    payload: Mapping[str, Any]
    available_at: datetime | None = None


Handler = Callable[[Database, OutboxItemView], None]


class Retry(Exception):
    """Raised by a handler: try again later (after ``after``, or the back-off of the attempt)."""

    def __init__(self, reason: str, after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class Permanent(Exception):
    """Raised by a handler: this item can never succeed (dead-letter it now)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_handlers: dict[str, Handler] = {}


def handles(kind: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``kind`` (at import time of the handler's module; modules with
    handlers are imported by :mod:`siyu.wiring`, so every worker knows them)."""
    _check_kind(kind)

    def register(handler: Handler) -> Handler:
        existing = _handlers.get(kind)
        if existing is not None and existing is not handler:
            name = f"{existing.__module__}.{existing.__qualname__}"
            if name != f"{handler.__module__}.{handler.__qualname__}":  # a module reloaded is fine
                raise ValueError(f"outbox kind {kind!r} already has a handler: {name}")
        _handlers[kind] = handler
        return handler

    return register


BatchHandler = Callable[[Database, Sequence[OutboxItemView]], Mapping[str, Exception | None]]
"""Carries out many items of one kind at once: for each item id, ``None`` (done) or the exception
the one-item handler would have raised for it (:class:`Retry`, :class:`Permanent`, any other)."""

_batch_handlers: dict[str, BatchHandler] = {}


def handles_batch(kind: str) -> Callable[[BatchHandler], BatchHandler]:
    """Register a batch handler for ``kind``, which must also have a one-item handler
    (:func:`handles`). A round hands it every claimed item of its kind together — one
    transaction and a few multi-row statements for what would be one of each per item (a
    campaign's coupon fan-out: ~20 k items). Items it answers nothing for, and all of them when
    it raises, go through the one-item handler instead, so one bad item never fails the rest."""
    _check_kind(kind)

    def register(handler: BatchHandler) -> BatchHandler:
        _batch_handlers[kind] = handler
        return handler

    return register


def handler_of(kind: str) -> Handler | None:
    return _handlers.get(kind)


def known_kinds() -> list[str]:
    return sorted(_handlers)


def _check_kind(kind: str) -> None:
    if not kind or len(kind) > MAX_KIND_LENGTH:
        raise ValueError(f"outbox kind must be 1–{MAX_KIND_LENGTH} characters: {kind!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How long a claim lasts and how failures are retried.

    The n-th failed attempt waits ``base × 2^(n−1)``, capped at ``cap``, with ±``jitter`` spread
    (so items that failed together do not come back together); after ``max_attempts`` attempts the
    item is dead.
    """

    max_attempts: int = 10
    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.2
    lease: timedelta = timedelta(seconds=120)
    """How long a claimed item stays with its worker; longer than any handler should take."""

    def nominal_delay(self, attempt: int) -> timedelta:
        """The back-off after failed attempt number ``attempt`` (1 = first), before jitter."""
        seconds = self.base.total_seconds() * 2 ** min(max(attempt - 1, 0), 32)
        return timedelta(seconds=min(seconds, self.cap.total_seconds()))

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        nominal = self.nominal_delay(attempt).total_seconds()
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return timedelta(seconds=min(nominal * spread, self.cap.total_seconds()))


DEFAULT_POLICY = RetryPolicy()


def worker_name() -> str:
    """``host:pid:thread`` — who holds a claim (shown in the delivery log)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100_000}"


def _row(
    merchant_id: str, kind: str, key: str, payload: Mapping[str, Any], now: datetime, at: datetime | None
) -> dict[str, Any]:
    _check_kind(kind)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise invalid_field("/key", f"an outbox key must be 1–{MAX_KEY_LENGTH} characters")
    return {
        "merchant_id": merchant_id,
        "id": new_id(IdKind.OUTBOX_ITEM),
        "kind": kind,
        "key": key,
        "payload": dict(payload),
        "status": "pending",
        "attempts": 0,
        "available_at": at or now,
        "created_at": now,
        "updated_at": now,
    }


def enqueue(
    session: Session,
    merchant_id: str,
    kind: str,
    payload: Mapping[str, Any],
    *,
    key: str,
    now: datetime,
    available_at: datetime | None = None,
) -> bool:
    return repository.insert_items(session, [_row(merchant_id, kind, key, payload, now, available_at)]) == 1


def enqueue_many(session: Session, merchant_id: str, items: Sequence[NewItem], *, now: datetime) -> int:
    rows = [_row(merchant_id, i.kind, i.key, i.payload, now, i.available_at) for i in items]
    return repository.insert_items(session, rows)


@dataclass(frozen=True)
class Outcome:
    outcome: AttemptOutcome
    error: str | None = None
    retry_at: datetime | None = None


def _view(c: Claim) -> OutboxItemView:
    return OutboxItemView(c.merchant_id, c.id, c.kind, c.key, c.payload, c.attempts, c.created_at)


def attempt(db: Database, c: Claim, policy: RetryPolicy, *, now: datetime | None) -> Outcome:
    """Run the handler of one claimed item (no transaction held) and decide what happens next."""
    if c.attempts > policy.max_attempts:
        # only reachable when earlier attempts never reported: their workers died mid-delivery
        return Outcome(
            AttemptOutcome.DEAD,
            f"gave up after {c.attempts - 1} attempts; the last never reported "
            "(its worker died or overran its lease)",
        )
    handler = _handlers.get(c.kind)
    if handler is None:
        known = ", ".join(known_kinds()) or "none"
        return Outcome(
            AttemptOutcome.DEAD,
            f"no handler for kind {c.kind!r} (known kinds: {known}); is its module imported by siyu.wiring?",
        )
    try:
        handler(db, _view(c))
    except Exception as exc:
        return _outcome_of(c, policy, exc, now)
    return Outcome(AttemptOutcome.DONE)


def _outcome_of(c: Claim, policy: RetryPolicy, exc: Exception | None, now: datetime | None) -> Outcome:
    """What a handler's answer for one item means: done, dead-lettered, or retried later."""
    if exc is None:
        return Outcome(AttemptOutcome.DONE)
    if isinstance(exc, Permanent):
        return Outcome(AttemptOutcome.DEAD, f"permanent: {exc.reason}")
    if isinstance(exc, Retry):
        return _retry(c, policy, exc.reason, exc.after, now)
    log.warning("outbox item %s (%s) failed: %r", c.id, c.kind, exc)
    return _retry(c, policy, f"{type(exc).__name__}: {exc}", None, now)


def attempt_batch(
    db: Database, kind: str, claims: Sequence[Claim], policy: RetryPolicy, *, now: datetime | None
) -> list[tuple[Claim, Outcome]]:
    """Run the batch handler of ``kind`` over claimed items (no transaction held); each item's
    outcome, the one-item handler deciding for those the batch did not answer."""
    handler = _batch_handlers[kind]
    answers: Mapping[str, Exception | None] = {}
    try:
        answers = handler(db, [_view(c) for c in claims])
    except Exception as exc:
        log.warning("outbox batch of %d %s items failed (%r): one by one instead", len(claims), kind, exc)
    return [
        (
            c,
            _outcome_of(c, policy, answers[c.id], now)
            if c.id in answers
            else attempt(db, c, policy, now=now),
        )
        for c in claims
    ]


def _retry(
    c: Claim, policy: RetryPolicy, reason: str, after: timedelta | None, now: datetime | None
) -> Outcome:
    if c.attempts >= policy.max_attempts:
        return Outcome(AttemptOutcome.DEAD, f"gave up after {c.attempts} attempts; last error: {reason}")
    wait = min(after, policy.cap) if after is not None else policy.delay(c.attempts)
    return Outcome(AttemptOutcome.RETRY, reason, (now or utcnow()) + wait)


@dataclass
class RoundReport:
    """What one round did."""

    claimed: int = 0
    done: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    """Claims whose lease ran out before the outcome was recorded (another worker has them)."""


def run_round(
    db: Database,
    *,
    limit: int = 100,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
    worker: str | None = None,
) -> RoundReport:
    """Claim one batch and process it; what happened.

    ``now`` fixes the clock for the round (tests); left out, each step reads the real clock."""
    policy = policy or DEFAULT_POLICY
    worker = worker or worker_name()
    start = now or utcnow()
    with db.reading() as session:
        if not repository.any_due(session, now=start):
            return RoundReport()
    with db.unit_of_work() as session:
        claims = repository.claim(
            session, now=start, limit=limit, lease_until=start + policy.lease, worker=worker
        )
    report = RoundReport(claimed=len(claims))
    batches: dict[str, list[Claim]] = {}
    singles: list[Claim] = []
    for claimed in claims:
        if (
            claimed.kind in _batch_handlers
            and claimed.kind in _handlers
            and claimed.attempts <= policy.max_attempts
        ):
            batches.setdefault(claimed.kind, []).append(claimed)
        else:
            singles.append(claimed)
    for kind, group in batches.items():
        held = [c for c in (_keep_lease(db, claimed, policy, now) for claimed in group) if c is not None]
        report.lost += len(group) - len(held)
        if held:
            _record(db, attempt_batch(db, kind, held, policy, now=now), now, report)
    for claimed in singles:
        c = _keep_lease(db, claimed, policy, now)
        if c is None:
            report.lost += 1
            continue
        _record(db, [(c, attempt(db, c, policy, now=now))], now, report)
    return report


def _record(
    db: Database, outcomes: Sequence[tuple[Claim, Outcome]], now: datetime | None, report: RoundReport
) -> None:
    """Record attempts' outcomes (a batch's in one transaction) and count them in ``report``."""
    finished = now or utcnow()
    with db.unit_of_work() as session:
        done = [c for c, r in outcomes if r.outcome == AttemptOutcome.DONE]
        recorded = repository.finish_done(session, done, now=finished) if len(done) > 1 else set()
        held = [
            c.id in recorded
            or repository.finish(session, c, r.outcome, now=finished, error=r.error, retry_at=r.retry_at)
            for c, r in outcomes
        ]
    for (c, result), kept in zip(outcomes, held, strict=True):
        if not kept:
            report.lost += 1
            log.warning(
                "outbox item %s: lease lost before its outcome (%s) was recorded", c.id, result.outcome
            )
        elif result.outcome == AttemptOutcome.DONE:
            report.done += 1
        elif result.outcome == AttemptOutcome.RETRY:
            report.retried += 1
        else:
            report.dead += 1
            log.warning("outbox item %s (%s, key %s) is dead: %s", c.id, c.kind, c.key, result.error)


def run_once(
    db: Database,
    *,
    limit: int = 100,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
    worker: str | None = None,
) -> int:
    """Claim and process one batch; the number of items processed."""
    return run_round(db, limit=limit, now=now, policy=policy, worker=worker).claimed


def _keep_lease(db: Database, c: Claim, policy: RetryPolicy, now: datetime | None) -> Claim | None:
    """Items late in a batch wait for the ones before them: renew a claim whose lease is more than
    half gone before running it; skip one whose lease already ended (another worker may have it)."""
    at = now or utcnow()
    if at >= c.lease_until:
        return None
    if c.lease_until - at > policy.lease / 2:
        return c
    until = at + policy.lease
    with db.unit_of_work() as session:
        if not repository.renew_lease(session, c, now=at, lease_until=until):
            return None
    return dataclasses.replace(c, lease_until=until)
