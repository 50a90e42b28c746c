"""Journeys (旅程): members walk a campaign's graph durably — a restart loses nobody and sends
nothing twice.

Each member of a journey has one row in ``journey_states``: the node it is at and when it is due
to leave it. :func:`advance_due` claims due rows (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite
serialises writers) and takes **one step per member per claim**: the entry assigns the member
(holdout members exit at once, never treated), an action runs its treatments through
``campaigns.facade.treat(step=<node id>)`` (idempotent keys ``cmp:mbr:node:i``; messages and
coupons reach the outside only through the outbox), a branch tests a segment rule, a split hashes,
a wait's time is over, an exit ends the walk. The treatments, the state change and the step's log
row commit in one transaction; a crash before the commit undoes all three, so the step simply runs
again, and a crash after it leaves nothing to redo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from siyu.campaigns import facade as campaigns
from siyu.campaigns import journey_repository as repo
from siyu.campaigns.journey_enrolment import enrol, enrol_due, enrol_segment, graph_of
from siyu.campaigns.journey_graph import (
    ActionNode,
    BranchNode,
    EntryNode,
    ExitNode,
    JourneyGraph,
    JourneyInvalid,
    arrive,
    leave,
    parse_graph,
    rules_of,
)
from siyu.campaigns.journey_models import JourneyStatus
from siyu.campaigns.journey_repository import DueState
from siyu.db import Database
from siyu.kit.problems import Problem
from siyu.segments import facade as segments
from siyu.tenancy import facade as tenancy

log = logging.getLogger("siyu.journeys")

BATCH = 200
"""States claimed per transaction: large enough to amortise the commit, small enough that a
crash redoes little and the write lock (SQLite) is held briefly."""
PAUSE_RECHECK = timedelta(minutes=5)
"""A paused campaign's due members are looked at again this much later."""
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)
JOURNEY_KIND = "journey"
RUNNING = "running"
ENDED = ("completed", "cancelled")
HOLDOUT = "holdout"


def check_journey(
    document: object, *, session: Session | None = None, merchant_id: str | None = None, prefix: str = ""
) -> JourneyGraph:
    """Parse and validate a journey document: its structure, its segment rules and — given the
    merchant — its treatments (templates exist…, by ``campaigns.facade.check_treatment``) and the
    segments it names. Raises a 422 naming the JSON pointer of the bad node, under ``prefix``
    (``"/journey"`` when the graph is a field of a campaign body)."""
    try:
        graph = parse_graph(document)
    except JourneyInvalid as exc:
        raise JourneyInvalid(prefix + exc.pointer, exc.detail) from None
    for pointer, rule in rules_of(graph):
        try:
            segments.check_rule(rule)
        except segments.RuleInvalid as exc:
            raise JourneyInvalid(prefix + pointer + exc.pointer, exc.detail) from None
    if session is None or merchant_id is None:
        return graph
    for i, node in enumerate(graph.nodes):
        here = f"{prefix}/nodes/{i}"
        if isinstance(node, ActionNode):
            for j, treatment in enumerate(node.treatments):
                campaigns.check_treatment(
                    session, merchant_id, treatment.model_dump(mode="json"), f"{here}/treatments/{j}"
                )
        segment_id = node.segment_id if isinstance(node, BranchNode | EntryNode) else None
        if segment_id is not None and segments.get_segment(session, merchant_id, segment_id) is None:
            raise JourneyInvalid(f"{here}/segment_id", f"no segment {segment_id}")
    return graph


# --- advancing --------------------------------------------------------------------------------


_Found = tuple[campaigns.CampaignView, JourneyGraph | None]


@dataclass
class _Context:
    """What one batch has looked up once: campaigns and their graphs, the merchant's zone."""

    session: Session
    merchant_id: str
    now: datetime
    zone: ZoneInfo
    cache: dict[str, _Found | None] = field(default_factory=dict)

    def campaign(self, campaign_id: str) -> _Found | None:
        if campaign_id not in self.cache:
            view = campaigns.get_campaign(self.session, self.merchant_id, campaign_id)
            self.cache[campaign_id] = None if view is None else (view, graph_of(view))
        return self.cache[campaign_id]


@dataclass(frozen=True)
class AdvanceReport:
    steps: int
    """Steps taken (state changes)."""
    postponed: int
    """Due members left where they were: campaign paused, or a step failed (retried later)."""


def advance_batch(session: Session, merchant_id: str, *, now: datetime, limit: int = BATCH) -> AdvanceReport:
    """Claim up to ``limit`` of the merchant's due members and take one step for each, in the
    caller's transaction. A step that fails is undone alone (a savepoint) and retried later with
    back-off; the others stand."""
    claimed = repo.claim_due(session, merchant_id, now=now, limit=limit)
    if not claimed:
        return AdvanceReport(0, 0)
    ctx = _Context(session, merchant_id, now, tenancy.merchant_zone(session, merchant_id))
    steps = postponed = 0
    logs: list[dict[str, Any]] = []
    for state in claimed:
        savepoint = session.begin_nested()
        try:
            entries = _step(ctx, state)
            savepoint.commit()
        except OperationalError:
            raise  # the connection or the database is in trouble: the whole batch is retried
        except StaleState:
            savepoint.rollback()  # another advancer took this step first: undo ours, treatments too
            continue
        except Exception as exc:
            savepoint.rollback()
            delay = min(RETRY_BASE * 2 ** min(state.failures, 12), RETRY_MAX)
            detail = f"{type(exc).__name__}: {exc}"
            log.warning(
                "journey %s member %s at %s failed: %s",
                state.campaign_id,
                state.member_id,
                state.node_id,
                detail,
            )
            repo.postpone(session, merchant_id, state, due_at=now + delay, error=detail, now=now)
            postponed += 1
            continue
        if entries:
            steps += 1
            logs.extend(entries)
        else:
            postponed += 1
    repo.log_steps(session, logs)
    return AdvanceReport(steps, postponed)


def _step(ctx: _Context, state: DueState) -> list[dict[str, Any]]:
    """One step of one claimed member; the log rows it writes (none: postponed)."""
    session, merchant_id, now = ctx.session, ctx.merchant_id, ctx.now
    found = ctx.campaign(state.campaign_id)
    if found is None or found[0].kind != JOURNEY_KIND:
        return _finish(ctx, state, JourneyStatus.EXITED, "campaign_gone", node_id=state.node_id)
    campaign, graph = found
    if campaign.status in ENDED:
        return _finish(ctx, state, JourneyStatus.EXITED, "campaign_ended", node_id=state.node_id)
    if campaign.status != RUNNING:  # paused (or not started): hold the member where it is
        repo.postpone(session, merchant_id, state, due_at=now + PAUSE_RECHECK, error=None, now=now)
        return []
    if graph is None:  # the stored graph does not validate (edited badly): hold, retried with back-off
        raise ValueError(f"the journey of campaign {campaign.id} is not a valid graph")
    try:
        node = graph.node(state.node_id)
    except KeyError:
        return _finish(ctx, state, JourneyStatus.EXITED, "node_gone", node_id=state.node_id)
    group = state.group
    if isinstance(node, EntryNode):
        assignment = campaigns.assign(
            session,
            merchant_id,
            campaign,
            state.member_id,
            now=now,
            source=campaigns.AssignmentSource.JOURNEY,
        )
        group = assignment.group
        if group == HOLDOUT:  # measured, never treated: straight out, still recorded for results
            return _finish(ctx, state, JourneyStatus.EXITED, HOLDOUT, node_id=node.id, group=group)
    elif group == HOLDOUT:  # cannot happen through the entry; never treat a holdout member
        return _finish(ctx, state, JourneyStatus.EXITED, HOLDOUT, node_id=node.id, group=group)
    if isinstance(node, ExitNode):
        return _finish(ctx, state, JourneyStatus.DONE, "exit", node_id=node.id, group=group)
    matches: bool | None = None
    if isinstance(node, BranchNode):
        matches = _test(ctx, node, state.member_id)
    move = leave(
        graph,
        node.id,
        campaign_id=campaign.id,
        member_id=state.member_id,
        event_seen=state.event_seen,
        matches=matches,
    )
    detail: str | None = None
    if move.treatments:
        done = campaigns.treat(
            session, merchant_id, campaign, state.member_id, list(move.treatments), step=node.id, now=now
        )
        detail = ",".join(f"{t.action}:{t.status}" for t in done)[:500] or None
    assert move.next_node is not None
    target = graph.node(move.next_node)
    entry = _log(ctx, state, state.steps + 1, node.id, move.outcome, detail)
    if isinstance(target, ExitNode):  # nothing to wait for at an exit: finish in this step
        _moved(repo.move(
            session, merchant_id, state, node_id=target.id, status=JourneyStatus.DONE, due_at=None,
            awaiting_event=None, group=group, now=now,
        ))  # fmt: skip
        return [entry, _log(ctx, state, state.steps + 2, target.id, "exit", None)]
    due_at, awaiting = arrive(target, now=now, zone=ctx.zone)
    _moved(repo.move(
        session, merchant_id, state, node_id=target.id, status=JourneyStatus.WAITING, due_at=due_at,
        awaiting_event=awaiting, group=group, now=now,
    ))  # fmt: skip
    return [entry]


class StaleState(Exception):
    """The state changed since it was claimed (its ``steps`` moved on): this step is void."""


def _moved(changed: bool) -> None:
    if not changed:
        raise StaleState


def _test(ctx: _Context, node: BranchNode, member_id: str) -> bool:
    rule: Mapping[str, Any] | None = node.rule
    if node.segment_id is not None:
        segment = segments.get_segment(ctx.session, ctx.merchant_id, node.segment_id)
        if segment is None:
            raise LookupError(f"branch {node.id}: segment {node.segment_id} is gone")
        rule = segment.rule
    assert rule is not None
    return bool(segments.contains(ctx.session, ctx.merchant_id, rule, member_id, now=ctx.now))


def _finish(
    ctx: _Context,
    state: DueState,
    status: JourneyStatus,
    outcome: str,
    *,
    node_id: str,
    group: str | None = None,
) -> list[dict[str, Any]]:
    _moved(repo.move(
        ctx.session, ctx.merchant_id, state, node_id=node_id, status=status, due_at=None, awaiting_event=None,
        group=group if group is not None else state.group, now=ctx.now,
    ))  # fmt: skip
    return [_log(ctx, state, state.steps + 1, node_id, outcome, None)]


def _log(
    ctx: _Context, state: DueState, seq: int, node_id: str, outcome: str, detail: str | None
) -> dict[str, Any]:
    return {
        "merchant_id": ctx.merchant_id,
        "campaign_id": state.campaign_id,
        "member_id": state.member_id,
        "seq": seq,
        "node_id": node_id,
        "outcome": outcome,
        "detail": detail,
        "at": ctx.now,
    }


def advance_due(
    db: Database,
    *,
    now: datetime,
    limit: int = 10_000,
    batch: int = BATCH,
    merchant_id: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> AdvanceReport:
    """Take up to ``limit`` steps of due members, ``batch`` per transaction, merchant by merchant.

    ``now`` is fixed for the call: a member that moves to a node due at once (anything but a wait)
    is claimed again by a later batch of the same call, so one call walks members from one wait to
    the next. ``progress(merchant_id, steps)`` is called after each batch."""
    steps = postponed = 0
    if merchant_id is not None:
        merchants = [merchant_id]
    else:
        with db.reading() as session:
            merchants = repo.merchants_with_journeys(session)
    for merchant in merchants:
        with db.unit_of_work() as session:
            enrol_due(session, merchant, now=now)
        while steps + postponed < limit:
            size = min(batch, limit - steps - postponed)
            with db.unit_of_work() as session:
                report = advance_batch(session, merchant, now=now, limit=size)
            steps += report.steps
            postponed += report.postponed
            if progress is not None:
                progress(merchant, report.steps)
            if report.steps + report.postponed == 0:
                break  # nobody due (members who moved are due again: only an empty claim ends it)
    return AdvanceReport(steps, postponed)


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeCount:
    node_id: str
    type: str
    waiting: int
    done: int
    exited: int


@dataclass(frozen=True)
class JourneyOverview:
    campaign_id: str
    graph: dict[str, Any]
    nodes: list[NodeCount]
    members: int
    holdout: int


@dataclass(frozen=True)
class StepView:
    seq: int
    node_id: str
    outcome: str
    detail: str | None
    at: datetime


@dataclass(frozen=True)
class MemberPath:
    campaign_id: str
    member_id: str
    node_id: str
    status: str
    group: str | None
    due_at: datetime | None
    awaiting_event: str | None
    entered_at: datetime
    updated_at: datetime
    failures: int
    last_error: str | None
    steps: list[StepView]


def overview(session: Session, merchant_id: str, campaign_id: str) -> JourneyOverview | None:
    """The journey graph with the number of members at each node (waiting there, finished
    there); ``None`` if the campaign does not exist or is not a journey."""
    campaign = campaigns.get_campaign(session, merchant_id, campaign_id)
    if campaign is None or campaign.kind != JOURNEY_KIND:
        return None
    graph = graph_of(campaign)
    counts: dict[str, dict[str, int]] = {}
    total = 0
    for node_id, status, count in repo.node_counts(session, merchant_id, campaign_id):
        counts.setdefault(node_id, {})[status] = count
        total += count
    types = {n.id: n.type for n in graph.nodes} if graph else {}
    ordered = [*types, *sorted(set(counts) - set(types))]
    nodes = [
        NodeCount(
            node_id=node_id,
            type=types.get(node_id, "unknown"),
            waiting=counts.get(node_id, {}).get(JourneyStatus.WAITING, 0),
            done=counts.get(node_id, {}).get(JourneyStatus.DONE, 0),
            exited=counts.get(node_id, {}).get(JourneyStatus.EXITED, 0),
        )
        for node_id in ordered
    ]
    return JourneyOverview(
        campaign_id=campaign_id,
        graph=dict(campaign.journey or {}),
        nodes=nodes,
        members=total,
        holdout=repo.holdout_count(session, merchant_id, campaign_id),
    )


def member_path(session: Session, merchant_id: str, campaign_id: str, member_id: str) -> MemberPath | None:
    """Where a member stands in a journey and every step it took; ``None`` if not enrolled."""
    state = repo.get_state(session, merchant_id, campaign_id, member_id)
    if state is None:
        return None
    return MemberPath(
        campaign_id=campaign_id,
        member_id=member_id,
        node_id=state.node_id,
        status=state.status,
        group=state.group,
        due_at=state.due_at,
        awaiting_event=state.awaiting_event,
        entered_at=state.entered_at,
        updated_at=state.updated_at,
        failures=state.failures,
        last_error=state.last_error,
        steps=[
            StepView(seq=s.seq, node_id=s.node_id, outcome=s.outcome, detail=s.detail, at=s.at)
            for s in repo.steps_of(session, merchant_id, campaign_id, member_id)
        ],
    )


__all__ = [
    "AdvanceReport",
    "JourneyInvalid",
    "JourneyOverview",
    "MemberPath",
    "Problem",
    "advance_batch",
    "advance_due",
    "check_journey",
    "enrol",
    "enrol_segment",
    "graph_of",
    "member_path",
    "overview",
]
