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

* **Stage and birthday entries** — :func:`enrol_due` (called by the advancer each round): the
  lifecycle ledger is scanned for members who entered the trigger's stage since a watermark, and
  the members born on the merchant's local today are enrolled once that day.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns import facade as campaigns
from siyu.campaigns import journey_repository as repo
from siyu.campaigns.journey_graph import JourneyGraph, JourneyInvalid, parse_graph, waits_for_events
from siyu.campaigns.triggers import birthdays_of, matching
from siyu.events.service import AcceptedEvent, on_ingest
from siyu.kit import config_cache
from siyu.kit.clock import utcnow
from siyu.lifecycle import facade as lifecycle
from siyu.lifecycle.rules import Stage
from siyu.members import facade as members
from siyu.members.rights import on_erase, on_export
from siyu.members.service import MergeGroup, on_merges, survivors_of
from siyu.segments import facade as segments
from siyu.tenancy import facade as tenancy

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


SEGMENT = "segment"
STAGE_SCAN = "stage"
STAGE_PAGE = 2_000


def enrol_due(session: Session, merchant_id: str, *, now: datetime) -> int:
    """The enrolments that do not come from ingested events, for each running journey: its
    segment once (segment entry), members who entered the trigger's stage since the last scan
    (``stage_entered``), members whose birthday is the merchant's local today (``birthday``).
    The advancer calls it before each round; members enrolled."""
    total = 0
    journeys = running_journeys(session, merchant_id)
    by_segment = [c for c, g in journeys if g.entry.trigger is None]
    done = repo.enrolments_done(session, merchant_id, [c.id for c in by_segment], SEGMENT)
    for campaign in by_segment:
        if campaign.id in done or not repo.claim_enrolment(
            session, merchant_id, campaign.id, SEGMENT, now=now
        ):
            continue
        count = enrol_segment(session, merchant_id, campaign, now=now)
        repo.count_enrolled(session, merchant_id, campaign.id, SEGMENT, count, now=now)
        log.info("journey %s: %d members enrolled from its segment", campaign.id, count)
        total += count
    for campaign, graph in journeys:
        trigger = graph.entry.trigger
        if trigger is not None and trigger.event == "stage_entered" and trigger.stage:
            stage = Stage(trigger.stage)
            total += _scan_stage(session, merchant_id, campaign, stage, trigger.condition, now=now)
        elif trigger is not None and trigger.event == "birthday":
            total += _scan_birthdays(session, merchant_id, campaign, trigger.condition, now=now)
    return total


def _enrol_matching(
    session: Session,
    merchant_id: str,
    campaign: campaigns.CampaignView,
    member_ids: Sequence[str],
    condition: dict[str, Any] | None,
    *,
    now: datetime,
) -> int:
    """Enrol those of ``member_ids`` that match ``condition`` (one query, the segment compiler's
    SELECT restricted to these ids: campaigns.triggers.matching); how many came in."""
    if condition is not None and member_ids:
        found = matching(session, merchant_id, condition, member_ids, now=now)
        member_ids = [m for m in member_ids if m in found]
    return len(enrol(session, merchant_id, campaign, member_ids, now=now))


def _scan_stage(
    session: Session,
    merchant_id: str,
    campaign: campaigns.CampaignView,
    stage: Stage,
    condition: dict[str, Any] | None,
    *,
    now: datetime,
) -> int:
    """Members who entered ``stage`` in the lifecycle ledger since the watermark (entries
    recorded after the journey started, the first time); the watermark moves under a row lock."""
    repo.claim_enrolment(session, merchant_id, campaign.id, STAGE_SCAN, now=now)
    scan = repo.lock_enrolment(session, merchant_id, campaign.id, STAGE_SCAN)
    if scan is None:  # pragma: no cover - claimed just above
        return 0
    if scan.cursor:
        at_text, _, after_member = scan.cursor.partition("|")
        watermark = datetime.fromisoformat(at_text)
    else:
        watermark, after_member = campaign.started_at or now, ""
    zone = tenancy.merchant_zone(session, merchant_id)
    since_day = watermark.astimezone(zone).date() - timedelta(days=1)
    added = 0
    while True:
        page = lifecycle.entered_stage(
            session, merchant_id, stage, recorded_after=watermark, after_member=after_member,
            since_day=since_day, limit=STAGE_PAGE,
        )  # fmt: skip
        if not page:
            break
        ids = [p.member_id for p in page]
        added += _enrol_matching(session, merchant_id, campaign, ids, condition, now=now)
        watermark, after_member = page[-1].recorded_at, page[-1].member_id
        scan.cursor = f"{watermark.astimezone(UTC).isoformat()}|{after_member}"
        if len(page) < STAGE_PAGE:
            break
    scan.members += added
    scan.updated_at = now
    return added


def _scan_birthdays(
    session: Session,
    merchant_id: str,
    campaign: campaigns.CampaignView,
    condition: dict[str, Any] | None,
    *,
    now: datetime,
) -> int:
    """Once per local day: the active members born on it (29 February on the 28th in a common
    year). A member walks a journey once, so a birthday journey greets each member once."""
    today = now.astimezone(tenancy.merchant_zone(session, merchant_id)).date()
    occurrence = f"birthday:{today.isoformat()}"
    if not repo.claim_enrolment(session, merchant_id, campaign.id, occurrence, now=now):
        return 0
    born = list(session.execute(members.ids_born_on(merchant_id, birthdays_of(today))).scalars())
    added = 0
    for start in range(0, len(born), STAGE_PAGE):
        part = born[start : start + STAGE_PAGE]
        added += _enrol_matching(session, merchant_id, campaign, part, condition, now=now)
    repo.count_enrolled(session, merchant_id, campaign.id, occurrence, added, now=now)
    return added


def _journey_events(session: Session, merchant_id: str) -> frozenset[str]:
    """The event types that enter or wake one of the merchant's running journeys (through
    :mod:`siyu.kit.config_cache`: ingestion of other events skips the journeys entirely)."""

    def load() -> frozenset[str]:
        found: set[str] = set()
        for _campaign, graph in running_journeys(session, merchant_id):
            trigger = graph.entry.trigger
            if trigger is not None and trigger.event not in EVENT_TRIGGERS_EXCLUDED:
                found.add(trigger.event)
            found.update(waits_for_events(graph).values())
        return frozenset(found)

    return config_cache.cached(session, ("journey_events", merchant_id), load)


@on_ingest
def _on_events(session: Session, merchant_id: str, accepted: Sequence[AcceptedEvent], now: datetime) -> None:
    """Enrol members whose event triggers a running journey; wake members waiting for an event."""
    listened = _journey_events(session, merchant_id)
    if not any(event.type in listened for event in accepted):
        return  # no running journey is entered by, or waits for, any of these events
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
        ids = list(dict.fromkeys(by_type[trigger.event]))
        _enrol_matching(session, merchant_id, campaign, ids, trigger.condition, now=now)
    awaited = {event for _, graph in journeys for event in waits_for_events(graph).values()}
    for event_type in sorted(awaited & set(by_type)):
        repo.wake(session, merchant_id, event_type, by_type[event_type], now=now)


@on_merges
def _on_merge(session: Session, merchant_id: str, groups: Sequence[MergeGroup], now: datetime) -> None:
    """The merged-away members' journeys end; the survivor keeps its own (its treatment keys and
    assignment are its own, so moving a walk across would break both)."""
    repo.end_member(session, merchant_id, sorted(survivors_of(groups)), outcome="merged", now=utcnow())


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
