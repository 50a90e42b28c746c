"""Feeding simulated events through the real ingestion path (``events.service.ingest``: the same
validation, identity resolution and merges, rollups and listeners as ``POST /events/batch`` and
``siyu import``), one transaction per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from siyu.db import Database
from siyu.events import service as events
from siyu.kit.pii import IdentifierVault

BATCH = 2_000
SPAN = timedelta(days=7)
"""A batch holds at most a week of simulated time (each chunk's events come sorted by time)."""


@dataclass
class IngestTally:
    """What ingestion answered, and the member id each simulated person ended up as."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    member_of: dict[int, str] = field(default_factory=dict)
    """Simulated person → member id of its latest accepted event (after merges, the survivor)."""


def person_of(event_id: str) -> int:
    """The simulated person of a ``sim{seed}-{person}-{tag}`` event id."""
    return int(event_id.split("-", 2)[1])


def _spans(events_: list[dict[str, Any]]) -> Iterable[tuple[list[dict[str, Any]], datetime]]:
    """``events_`` (sorted by time) in batches of at most :data:`BATCH` events and :data:`SPAN`,
    each with its latest event's time."""
    part: list[dict[str, Any]] = []
    first = latest = datetime.min.replace(tzinfo=UTC)  # set by the first event
    for event in events_:
        at = datetime.fromisoformat(str(event["occurred_at"]))
        if part and (len(part) >= BATCH or at - first >= SPAN or at < first):
            yield part, latest
            part = []
        if not part:
            first = latest = at
        part.append(event)
        latest = max(latest, at)
    if part:
        yield part, latest


def ingest_events(
    database: Database,
    vault: IdentifierVault,
    merchant_id: str,
    batches: Iterable[list[dict[str, Any]]],
    *,
    now: datetime,
    tally: IngestTally,
    advance: Callable[[int], None] | None = None,
) -> IngestTally:
    """Ingest each list of events in batches of at most :data:`BATCH` events and :data:`SPAN` of
    simulated time, each batch committed on its own.

    A batch arrives when its latest event happened (a minute later), never after ``now``: the
    simulated merchant sent its events as they happened, so members are created, and events
    received, within a week of the simulated days — Scale's new members by month then show the
    simulated arrivals, not every member created on the day the demo was built.
    """
    for events_ in batches:
        for part, latest in _spans(events_):
            arrived = min(now, latest + timedelta(minutes=1))
            with database.unit_of_work() as session:
                verdicts = events.ingest(session, vault, merchant_id, part, now=arrived)
            for verdict in verdicts:
                if verdict.status == "accepted" and verdict.member_id is not None and verdict.event_id:
                    tally.accepted += 1
                    tally.member_of[person_of(verdict.event_id)] = verdict.member_id
                elif verdict.status == "duplicate":
                    tally.duplicates += 1
                else:
                    tally.rejected += 1
                    if len(tally.reasons) < 5:
                        tally.reasons.append(f"{verdict.event_id}: {verdict.reason}")
            if advance is not None:
                advance(len(part))
    return tally
