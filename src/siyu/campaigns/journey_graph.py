"""The journey graph language (旅程): entry → actions, waits and branches → exit.

A journey campaign's ``journey`` is a JSON document ``{"nodes": [...]}``; each node has an ``id``
(lower-case ASCII, it becomes part of treatment keys) and a ``type``:

* ``entry`` — how members come in: ``trigger`` (the same shape as a trigger campaign's: an event
  type, ``stage_entered`` with a stage, or ``birthday``; optional ``condition`` rule) or a
  one-off enrolment of a segment when the campaign starts (``segment_id``, or an inline ``rule``).
* ``action`` — ``treatments`` (the campaign treatment JSON), run with the campaign core's
  ``treat(step=<node id>)``.
* ``wait`` — ``duration`` (days/hours/minutes), ``until_local_time`` ("HH:MM" in the merchant's
  time zone, the next such moment), or ``until_event`` with a ``timeout``: the member moves on to
  ``next`` when the event arrives, to ``timeout_next`` when the timeout passes first.
* ``branch`` — a segment ``rule`` (or ``segment_id``) tested for the member: ``yes`` / ``no``.
* ``split`` — a random split by stable hash: ``branches`` of ``weight_bp`` (summing to 10 000).
* ``exit`` — the end.

:func:`check_graph` parses and validates a document: exactly one entry, every edge pointing at a
node, every node reachable from the entry, **no cycles** (a journey is a directed acyclic graph,
so a member takes at most ``len(nodes)`` steps), every path ending at an exit, at most
:data:`MAX_NODES` nodes. Errors are 422 problems naming the JSON pointer of the bad node or edge
(relative to the journey document: ``/nodes/3/next``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from siyu.kit.problems import UnprocessableEntity, json_pointer

MAX_NODES = 50
MAX_TREATMENTS = 10
MAX_WAIT = timedelta(days=366)
SPLIT_TOTAL_BP = 10_000

NodeId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
"""Lower-case ASCII: the id is part of treatment keys (``cmp_…:mbr_…:<node>:<i>``)."""
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]
SegmentId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Rule = dict[str, Any]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class JourneyInvalid(UnprocessableEntity):
    """A journey document that does not validate; ``pointer`` names the bad node or field."""

    slug = "invalid-journey"
    title = "Invalid journey"

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(detail, extra={"errors": [{"pointer": pointer, "detail": detail}]})
        self.pointer = pointer


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(_Strict):
    """A span of time; the parts add up (``{"days": 1, "hours": 12}`` is 36 hours)."""

    days: Annotated[int, Field(strict=True, ge=0, le=366)] = 0
    hours: Annotated[int, Field(strict=True, ge=0, le=8784)] = 0
    minutes: Annotated[int, Field(strict=True, ge=0, le=527_040)] = 0

    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes)


class Trigger(_Strict):
    """The campaign trigger shape: an event type (``visit``, ``order_paid``, a custom ``x_…``),
    ``stage_entered`` with ``stage``, or ``birthday``; ``condition`` is a segment rule the member
    must match when the trigger fires."""

    event: EventType = Field(examples=["visit", "order_paid", "stage_entered", "birthday"])
    stage: str | None = Field(default=None, description="with event stage_entered: the stage entered")
    condition: Rule | None = Field(default=None, description="a segment rule the member must match")
    delay_seconds: Annotated[int, Field(strict=True, ge=0, le=31_622_400)] = 0


class EntryNode(_Strict):
    type: Literal["entry"]
    id: NodeId
    trigger: Trigger | None = Field(default=None, description="enrol members when this trigger fires")
    segment_id: SegmentId | None = Field(default=None, description="enrol the segment's members at start")
    rule: Rule | None = Field(default=None, description="enrol the members matching this rule at start")
    next: NodeId


class CouponTreatment(_Strict):
    action: Literal["coupon"]
    template_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PointsTreatment(_Strict):
    action: Literal["points"]
    points: Annotated[int, Field(strict=True, ge=1, le=10_000_000)]


class MessageTreatment(_Strict):
    action: Literal["message"]
    template_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    variables: dict[str, str] = Field(default_factory=dict)


class GuideTaskTreatment(_Strict):
    action: Literal["guide_task"]
    title: Text
    body: Text


Treatment = Annotated[
    CouponTreatment | PointsTreatment | MessageTreatment | GuideTaskTreatment, Field(discriminator="action")
]


class ActionNode(_Strict):
    type: Literal["action"]
    id: NodeId
    treatments: Annotated[list[Treatment], Field(min_length=1, max_length=MAX_TREATMENTS)]
    next: NodeId


class WaitNode(_Strict):
    """Exactly one of ``duration``, ``until_local_time`` or ``until_event`` (with ``timeout`` and
    ``timeout_next``)."""

    type: Literal["wait"]
    id: NodeId
    duration: Duration | None = None
    until_local_time: LocalTime | None = Field(default=None, examples=["10:00"])
    until_event: EventType | None = Field(default=None, examples=["order_paid"])
    timeout: Duration | None = Field(default=None, description="with until_event: how long to wait at most")
    next: NodeId
    timeout_next: NodeId | None = Field(default=None, description="with until_event: where a timeout leads")


class BranchNode(_Strict):
    """A segment test: ``rule`` inline or ``segment_id`` (its rule at the time of the test)."""

    type: Literal["branch"]
    id: NodeId
    rule: Rule | None = None
    segment_id: SegmentId | None = None
    yes: NodeId
    no: NodeId


class SplitBranch(_Strict):
    weight_bp: Annotated[int, Field(strict=True, ge=1, le=SPLIT_TOTAL_BP)]
    next: NodeId


class SplitNode(_Strict):
    """A random split by a stable hash of campaign, member and node: the same member always
    takes the same branch."""

    type: Literal["split"]
    id: NodeId
    branches: Annotated[list[SplitBranch], Field(min_length=2, max_length=10)]


class ExitNode(_Strict):
    type: Literal["exit"]
    id: NodeId


Node = Annotated[
    EntryNode | ActionNode | WaitNode | BranchNode | SplitNode | ExitNode, Field(discriminator="type")
]


class JourneyGraph(_Strict):
    """A journey: its nodes, in any order (the entry is found by type)."""

    nodes: Annotated[list[Node], Field(min_length=2, max_length=MAX_NODES)]

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    @property
    def entry(self) -> EntryNode:
        return next(n for n in self.nodes if isinstance(n, EntryNode))

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


_NODE = TypeAdapter(Node)


def journey_json_schema() -> dict[str, Any]:
    """The JSON Schema of the journey language (served by the API and printed in the docs)."""
    schema = JourneyGraph.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Siyu journey"
    return schema


def edges(node: Node) -> Iterator[tuple[str, str]]:
    """``(field pointer relative to the node, target id)`` of each edge leaving ``node``."""
    if isinstance(node, EntryNode | ActionNode):
        yield "/next", node.next
    elif isinstance(node, WaitNode):
        yield "/next", node.next
        if node.timeout_next is not None:
            yield "/timeout_next", node.timeout_next
    elif isinstance(node, BranchNode):
        yield "/yes", node.yes
        yield "/no", node.no
    elif isinstance(node, SplitNode):
        for i, branch in enumerate(node.branches):
            yield f"/branches/{i}/next", branch.next


def parse_graph(document: object) -> JourneyGraph:
    """Parse ``document`` (node by node, so an error names the node) and check its structure."""
    if not isinstance(document, Mapping):
        raise JourneyInvalid("", 'a journey is an object {"nodes": [...]}')
    extra = sorted(set(document) - {"nodes"})
    if extra:
        raise JourneyInvalid(json_pointer([extra[0]]), f"unknown field {extra[0]!r}")
    raw_nodes = document.get("nodes")
    if not isinstance(raw_nodes, list):
        raise JourneyInvalid("/nodes", "nodes must be a list of nodes")
    if len(raw_nodes) > MAX_NODES:
        raise JourneyInvalid("/nodes", f"a journey has at most {MAX_NODES} nodes ({len(raw_nodes)} given)")
    nodes: list[Node] = []
    for i, raw in enumerate(raw_nodes):
        if isinstance(raw, Mapping):
            try:
                nodes.append(_NODE.validate_python(raw))
            except ValidationError as exc:
                error = exc.errors()[0]
                path = _document_path(raw, error["loc"])
                raise JourneyInvalid(json_pointer(["nodes", i, *path]), error["msg"]) from None
        else:
            raise JourneyInvalid(f"/nodes/{i}", "a node is an object with an id and a type")
    graph = JourneyGraph.model_construct(nodes=nodes)
    _check_structure(graph)
    return graph


def _document_path(raw: object, loc: Sequence[str | int]) -> list[str | int]:
    """Pydantic's error location without the tags of discriminated unions (``type``, ``action``),
    which Pydantic puts first inside the object they select and which name a union member rather
    than a place in the document."""
    path: list[str | int] = []
    here = raw
    entered = True  # the next part is the first one inside ``here``
    for part in loc:
        if entered and isinstance(here, Mapping) and part in (here.get("type"), here.get("action")):
            entered = False
            continue
        if isinstance(here, Mapping):
            here = here.get(part)
        elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
            here = here[part]
        else:
            here = None
        path.append(part)
        entered = True
    return path


def _check_structure(graph: JourneyGraph) -> None:
    nodes = graph.nodes
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.id in index:
            raise JourneyInvalid(f"/nodes/{i}/id", f"node id {node.id!r} is used twice")
        index[node.id] = i
    entries = [i for i, n in enumerate(nodes) if isinstance(n, EntryNode)]
    if not entries:
        raise JourneyInvalid("/nodes", "a journey needs one entry node")
    if len(entries) > 1:
        raise JourneyInvalid(f"/nodes/{entries[1]}", "a journey has exactly one entry node")
    if not any(isinstance(n, ExitNode) for n in nodes):
        raise JourneyInvalid("/nodes", "a journey needs at least one exit node: every path must end at one")
    for i, node in enumerate(nodes):
        _check_node(i, node)
        for field, target in edges(node):
            if target not in index:
                detail = f"no node {target!r}: every path must end at an exit"
                raise JourneyInvalid(f"/nodes/{i}{field}", detail)
            if isinstance(nodes[index[target]], EntryNode):
                raise JourneyInvalid(f"/nodes/{i}{field}", "no edge may lead back to the entry")
    _check_acyclic_and_reachable(graph, index)


def _check_node(i: int, node: Node) -> None:
    here = f"/nodes/{i}"
    if isinstance(node, EntryNode):
        given = [f for f in ("trigger", "segment_id", "rule") if getattr(node, f) is not None]
        if len(given) != 1:
            raise JourneyInvalid(here, "an entry has exactly one of trigger, segment_id or rule")
        if node.trigger is not None and node.trigger.event == "stage_entered" and not node.trigger.stage:
            raise JourneyInvalid(f"{here}/trigger/stage", "stage_entered needs the stage")
    elif isinstance(node, WaitNode):
        given = [f for f in ("duration", "until_local_time", "until_event") if getattr(node, f) is not None]
        if len(given) != 1:
            raise JourneyInvalid(here, "a wait has exactly one of duration, until_local_time or until_event")
        if node.duration is not None:
            _check_span(f"{here}/duration", node.duration)
        if node.until_event is not None:
            if node.timeout is None:
                raise JourneyInvalid(f"{here}/timeout", "until_event needs a timeout")
            if node.timeout_next is None:
                raise JourneyInvalid(f"{here}/timeout_next", "until_event needs timeout_next")
            _check_span(f"{here}/timeout", node.timeout)
        elif node.timeout is not None or node.timeout_next is not None:
            raise JourneyInvalid(f"{here}/timeout", "timeout and timeout_next go with until_event only")
    elif isinstance(node, BranchNode):
        if (node.rule is None) == (node.segment_id is None):
            raise JourneyInvalid(here, "a branch has exactly one of rule or segment_id")
    elif isinstance(node, SplitNode):
        total = sum(b.weight_bp for b in node.branches)
        if total != SPLIT_TOTAL_BP:
            detail = f"weights must add up to {SPLIT_TOTAL_BP} bp (got {total})"
            raise JourneyInvalid(f"{here}/branches", detail)


def _check_span(pointer: str, duration: Duration) -> None:
    delta = duration.delta()
    if delta <= timedelta(0):
        raise JourneyInvalid(pointer, "a wait must last at least a minute")
    if delta > MAX_WAIT:
        raise JourneyInvalid(pointer, f"a wait lasts at most {MAX_WAIT.days} days")


def _check_acyclic_and_reachable(graph: JourneyGraph, index: Mapping[str, int]) -> None:
    """Depth-first from the entry: an edge back to a node on the current path closes a cycle;
    nodes never visited are unreachable."""
    nodes = graph.nodes
    on_path: set[str] = set()
    done: set[str] = set()
    entry = graph.entry
    # Iterative DFS: (node id, iterator over its edges)
    stack: list[tuple[str, Iterator[tuple[str, str]]]] = [(entry.id, edges(entry))]
    on_path.add(entry.id)
    while stack:
        node_id, outgoing = stack[-1]
        step = next(outgoing, None)
        if step is None:
            stack.pop()
            on_path.discard(node_id)
            done.add(node_id)
            continue
        field, target = step
        if target in on_path:
            raise JourneyInvalid(
                f"/nodes/{index[node_id]}{field}",
                f"edge {node_id!r} → {target!r} closes a cycle; a journey is acyclic",
            )
        if target not in done:
            on_path.add(target)
            stack.append((target, edges(nodes[index[target]])))
    for i, node in enumerate(nodes):
        if node.id not in done:
            raise JourneyInvalid(f"/nodes/{i}", f"node {node.id!r} cannot be reached from the entry")


def rules_of(graph: JourneyGraph) -> Iterator[tuple[str, Rule]]:
    """``(pointer, rule)`` of every inline segment rule in the graph (for the segment checker)."""
    for i, node in enumerate(graph.nodes):
        if isinstance(node, BranchNode) and node.rule is not None:
            yield f"/nodes/{i}/rule", node.rule
        elif isinstance(node, EntryNode):
            if node.rule is not None:
                yield f"/nodes/{i}/rule", node.rule
            if node.trigger is not None and node.trigger.condition is not None:
                yield f"/nodes/{i}/trigger/condition", node.trigger.condition


# --- the pure step ----------------------------------------------------------------------------


def split_bucket(campaign_id: str, member_id: str, node_id: str) -> int:
    """A stable number in 0..9999 for the member at this split (sha256 of the three ids)."""
    digest = hashlib.sha256(f"{campaign_id}:{member_id}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SPLIT_TOTAL_BP


def next_local_time(now: datetime, hhmm: str, zone: ZoneInfo) -> datetime:
    """The first moment after ``now`` when the merchant's wall clock shows ``hhmm`` (UTC).

    A wall time skipped by a daylight-saving change resolves forward (``fold=0``), which is still
    after ``now``; the loop guards the rare case where it is not."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    local = now.astimezone(zone)
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    for _ in range(3):
        if candidate.astimezone(now.tzinfo) > now:
            return candidate.astimezone(now.tzinfo)
        candidate = (candidate.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    raise AssertionError("no next local time")  # pragma: no cover


def arrive(node: Node, *, now: datetime, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """When a member arriving at ``node`` at ``now`` is next due there, and the event type the
    member then waits for (``until_event`` waits only). Only waits lie in the future."""
    if isinstance(node, WaitNode):
        if node.duration is not None:
            return now + node.duration.delta(), None
        if node.until_local_time is not None:
            return next_local_time(now, node.until_local_time, zone), None
        assert node.timeout is not None
        return now + node.timeout.delta(), node.until_event
    return now, None


@dataclass(frozen=True)
class Move:
    """What a due member does at its node: the outcome to log, the treatments to run (action
    nodes), and the node to go to (``None``: the member is at an exit and is done)."""

    outcome: str
    next_node: str | None
    treatments: tuple[dict[str, Any], ...] = ()
    needs_test: bool = False


def leave(
    graph: JourneyGraph,
    node_id: str,
    *,
    campaign_id: str,
    member_id: str,
    event_seen: bool = False,
    matches: bool | None = None,
) -> Move:
    """The pure step: where a member who is due at ``node_id`` goes next.

    ``event_seen``: an ``until_event`` wait was woken by its event (else it timed out).
    ``matches``: a branch's segment test for the member (the caller evaluates it; a call without
    it answers ``needs_test``)."""
    node = graph.node(node_id)
    if isinstance(node, EntryNode):
        return Move(outcome="entered", next_node=node.next)
    if isinstance(node, ActionNode):
        treatments = tuple(t.model_dump(mode="json") for t in node.treatments)
        return Move(outcome="treated", next_node=node.next, treatments=treatments)
    if isinstance(node, WaitNode):
        if node.until_event is not None and not event_seen:
            assert node.timeout_next is not None
            return Move(outcome="timed_out", next_node=node.timeout_next)
        return Move(outcome="event" if node.until_event else "waited", next_node=node.next)
    if isinstance(node, BranchNode):
        if matches is None:
            return Move(outcome="test", next_node=None, needs_test=True)
        return Move(outcome="yes" if matches else "no", next_node=node.yes if matches else node.no)
    if isinstance(node, SplitNode):
        bucket = split_bucket(campaign_id, member_id, node.id)
        upper = 0
        for i, branch in enumerate(node.branches):
            upper += branch.weight_bp
            if bucket < upper:
                return Move(outcome=f"split:{i}", next_node=branch.next)
        raise AssertionError("weights add up to 10 000")  # pragma: no cover
    return Move(outcome="exit", next_node=None)


def max_steps(graph: JourneyGraph) -> int:
    """An upper bound on the steps of one member: the graph is acyclic, so a path visits each
    node at most once."""
    return len(graph.nodes)


def waits_for_events(graph: JourneyGraph) -> dict[str, str]:
    """``{node id: event type}`` of the ``until_event`` waits."""
    return {n.id: n.until_event for n in graph.nodes if isinstance(n, WaitNode) and n.until_event}
