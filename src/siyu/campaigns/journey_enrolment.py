"""How members come into journeys and what other modules' events do to them.

* **Event triggers** — an ``events.service.on_ingest`` listener: for each running journey whose
  entry trigger is an event type in the batch, the batch's members of that type (matching the
  trigger's ``condition`` rule, tested set-wise in SQL) are enrolled, due after the trigger's
  delay. A member walks a journey once: a second trigger while (or after) walking it is ignored.
* **Waits for an event** — the same listener wakes members waiting at an ``until_event`` wait
  for a type in the batch: they become due now and leave by ``next``.
* **Segment entry** — :func:`enrol_started`: a running journey whose entry is a segment (or an
  inline rule) enrols the segment's members once, in one ``INSERT … SELECT``, the first time the
  advancer sees it running (``journey_enrolments`` records that it happened).
* **Merge / erase** — the merged-away or erased member's journeys end (``exited``); the survivor
  of a merge keeps its own journeys. **Export** lists the member's journeys and steps.

``stage_entered`` and ``birthday`` triggers are not fired here: they come from daily scans, see
docs/journeys.md.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.campaigns import facade as campaigns
from siyu.campaigns import journey_repository as repo
from siyu.campaigns.journey_graph import JourneyGraph, JourneyInvalid, parse_graph, waits_for_events
from siyu.events.service import AcceptedEvent, on_ingest
from siyu.kit.clock import utcnow
from siyu.members.rights import on_erase, on_export
from siyu.members.service import on_merge
from siyu.segments import facade as segments

log = logging.getLogger("siyu.journeys")
JOURNEY_KIND = "journey"

EVENT_TRIGGERS_EXCLUDED = frozenset({"stage_entered", "birthday"})


def graph_of(campaign: campaigns.CampaignView) -> JourneyGraph | None:
    """The campaign's journey graph, ``None`` if it is not a valid journey (never raises)."""
    if campaign.kind != JOURNEY_KIND or not campaign.journey:
        return None
    try:
        return parse_graph(campaign.journey)
    except JourneyInvalid:
        return None


# --- enrolment --------------------------------------------------------------------------------


def enrol(
    session: Session,
    merchant_id: str,
    campaign: campaigns.CampaignView,
    member_ids: Sequence[str],
    *,
    now: datetime,
) -> list[str]:
    """Put ``member_ids`` at the journey's entry, due now (plus the trigger's delay); a member
    already in the journey stays where it is (one walk per member and journey). The new ones."""
    graph = graph_of(campaign)
    if graph is None or not member_ids:
        return []
    entry = graph.entry
    delay = timedelta(seconds=entry.trigger.delay_seconds) if entry.trigger else timedelta(0)
    return repo.enrol(
        session, merchant_id, campaign.id, member_ids, entry_node=entry.id, due_at=now + delay, now=now
    )


def enrol_segment(
    session: Session, merchant_id: str, campaign: campaigns.CampaignView, *, now: datetime
) -> int:
    """A one-off enrolment of the entry's segment (``segment_id`` or ``rule``), in one
    ``INSERT … SELECT``; how many members came in."""
    graph = graph_of(campaign)
    if graph is None:
        return 0
    entry = graph.entry
    rule: Mapping[str, Any] | None = entry.rule
    if entry.segment_id is not None:
        segment = segments.get_segment(session, merchant_id, entry.segment_id)
        if segment is None:
            log.warning("journey %s: entry segment %s is gone", campaign.id, entry.segment_id)
            return 0
        rule = segment.rule
    if rule is None:
        return 0
    ids = segments.member_ids(session, merchant_id, rule, now=now)
    return repo.enrol_selected(
        session, merchant_id, campaign.id, ids, entry_node=entry.id, due_at=now, now=now
    )


def running_journeys(session: Session, merchant_id: str) -> list[tuple[campaigns.CampaignView, JourneyGraph]]:
    """The merchant's running journeys with a valid graph."""
    found = []
    for campaign_id in repo.running_journey_ids(session, merchant_id):
        campaign = campaigns.get_campaign(session, merchant_id, campaign_id)
        graph = graph_of(campaign) if campaign else None
        if campaign is not None and graph is not None:
            found.append((campaign, graph))
    return found


def enrol_started(session: Session, merchant_id: str, *, now: datetime) -> int:
    """Enrol the segment of each running segment-entry journey not enrolled yet; members enrolled."""
    journeys = [
        (campaign, graph)
        for campaign, graph in running_journeys(session, merchant_id)
        if graph.entry.trigger is None
    ]
    done = repo.enrolled_campaigns(session, merchant_id, [c.id for c, _ in journeys])
    total = 0
    for campaign, _graph in journeys:
        if campaign.id in done or not repo.claim_enrolment(session, merchant_id, campaign.id, now=now):
            continue
        count = enrol_segment(session, merchant_id, campaign, now=now)
        repo.count_enrolled(session, merchant_id, campaign.id, count)
        log.info("journey %s: %d members enrolled from its segment", campaign.id, count)
        total += count
    return total


def _matching(
    session: Session, merchant_id: str, rule: dict[str, Any], member_ids: Sequence[str], *, now: datetime
) -> list[str]:
    """The members of ``member_ids`` that match ``rule``: one query with the segment compiler's
    SELECT as a subquery (no test per member)."""
    matching = segments.member_ids(session, merchant_id, rule, now=now).subquery()
    column = next(iter(matching.c))
    wanted = set(member_ids)
    found: list[str] = []
    chunk_size = 500
    ordered = sorted(wanted)
    for start in range(0, len(ordered), chunk_size):
        chunk = ordered[start : start + chunk_size]
        found.extend(session.execute(select(column).where(column.in_(chunk))).scalars())
    return found


@on_ingest
def _on_events(session: Session, merchant_id: str, accepted: Sequence[AcceptedEvent], now: datetime) -> None:
    """Enrol members whose event triggers a running journey; wake members waiting for an event."""
    journeys = running_journeys(session, merchant_id)
    if not journeys:
        return
    by_type: dict[str, list[str]] = defaultdict(list)
    for event in accepted:
        by_type[event.type].append(event.member_id)
    for campaign, graph in journeys:
        trigger = graph.entry.trigger
        if trigger is None or trigger.event in EVENT_TRIGGERS_EXCLUDED or trigger.event not in by_type:
            continue
        members = list(dict.fromkeys(by_type[trigger.event]))
        if trigger.condition is not None:
            members = _matching(session, merchant_id, trigger.condition, members, now=now)
        enrol(session, merchant_id, campaign, members, now=now)
    awaited = {event for _, graph in journeys for event in waits_for_events(graph).values()}
    for event_type in sorted(awaited & set(by_type)):
        repo.wake(session, merchant_id, event_type, by_type[event_type], now=now)


@on_merge
def _on_merge(session: Session, merchant_id: str, survivor: str, merged: list[str], now: datetime) -> None:
    """The merged-away members' journeys end; the survivor keeps its own (its treatment keys and
    assignment are its own, so moving a walk across would break both)."""
    repo.end_member(session, merchant_id, merged, outcome="merged", now=utcnow())


def _erase(session: Session, merchant_id: str, member_id: str) -> None:
    """An erased member is treated no more: its journeys end (the log keeps no personal data)."""
    repo.end_member(session, merchant_id, [member_id], outcome="erased", now=utcnow())


def _export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    journeys = []
    for state in repo.states_of_member(session, merchant_id, member_id):
        steps = repo.steps_of(session, merchant_id, state.campaign_id, member_id)
        journeys.append(
            {
                "campaign_id": state.campaign_id,
                "node_id": state.node_id,
                "status": state.status,
                "entered_at": state.entered_at.isoformat(),
                "steps": [
                    {"seq": s.seq, "node_id": s.node_id, "outcome": s.outcome, "at": s.at.isoformat()}
                    for s in steps
                ],
            }
        )
    return {"journeys": journeys} if journeys else {}


on_erase(_erase)
on_export(_export)
