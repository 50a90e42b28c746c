"""The journey graph language: parsing, structural validation with JSON pointers, the pure step."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.campaigns.journey_graph import (
    MAX_NODES,
    JourneyInvalid,
    arrive,
    journey_json_schema,
    leave,
    next_local_time,
    parse_graph,
    split_bucket,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai


def journey() -> dict[str, Any]:
    """entry visit → wait 3 days → branch ordered? → yes: exit / no: coupon → wait 1 day → message → exit."""
    return {
        "nodes": [
            {"id": "start", "type": "entry", "trigger": {"event": "visit"}, "next": "wait3"},
            {"id": "wait3", "type": "wait", "duration": {"days": 3}, "next": "ordered"},
            {"id": "ordered", "type": "branch", "rule": {"any": True}, "yes": "end", "no": "coupon"},
            {
                "id": "coupon",
                "type": "action",
                "treatments": [{"action": "coupon", "template_id": "cpt_1"}],
                "next": "wait1",
            },
            {"id": "wait1", "type": "wait", "duration": {"days": 1}, "next": "remind"},
            {
                "id": "remind",
                "type": "action",
                "treatments": [{"action": "message", "template_id": "tpl_1", "variables": {"n": "1"}}],
                "next": "end",
            },
            {"id": "end", "type": "exit"},
        ]
    }


def invalid(document: object) -> JourneyInvalid:
    with pytest.raises(JourneyInvalid) as caught:
        parse_graph(document)
    assert caught.value.status == 422
    assert caught.value.to_dict()["errors"][0]["pointer"] == caught.value.pointer
    return caught.value


class TestParse:
    def test_the_example_parses_and_round_trips(self) -> None:
        # given
        document = journey()
        # when
        graph = parse_graph(document)
        # then
        assert graph.entry.id == "start"
        assert [n.id for n in graph.nodes] == [n["id"] for n in document["nodes"]]
        assert parse_graph(graph.to_json()) == graph

    def test_a_node_field_error_names_the_field(self) -> None:
        # given
        document = journey()
        del document["nodes"][3]["treatments"][0]["template_id"]
        # when
        error = invalid(document)
        # then: the union tags (action, type) are not part of the pointer
        assert error.pointer == "/nodes/3/treatments/0/template_id"

    def test_an_unknown_node_type_is_named(self) -> None:
        # given
        document = journey()
        document["nodes"][1]["type"] = "sleep"
        # when / then
        assert invalid(document).pointer.startswith("/nodes/1")

    def test_an_unknown_field_is_refused(self) -> None:
        # given
        document = journey()
        document["nodes"][4]["colour"] = "red"
        # when / then
        assert invalid(document).pointer == "/nodes/4/colour"

    @pytest.mark.parametrize("node_id", ["Start", "a:b", "", "x" * 41, "中文"])
    def test_node_ids_are_plain_ascii(self, node_id: str) -> None:
        # given
        document = journey()
        document["nodes"][6]["id"] = node_id
        # when / then
        assert invalid(document).pointer == "/nodes/6/id"

    def test_not_an_object(self) -> None:
        assert invalid([1, 2]).pointer == ""
        assert invalid({"nodes": "x"}).pointer == "/nodes"


class TestStructure:
    def test_a_cycle_is_named_by_the_edge_that_closes_it(self) -> None:
        # given: remind → wait3 closes wait3 → ordered → coupon → wait1 → remind → wait3
        document = journey()
        document["nodes"][5]["next"] = "wait3"
        # when
        error = invalid(document)
        # then
        assert error.pointer == "/nodes/5/next"
        assert "cycle" in error.detail

    def test_a_self_loop_is_a_cycle(self) -> None:
        document = journey()
        document["nodes"][1]["next"] = "wait1"
        document["nodes"][4]["next"] = "wait1"
        error = invalid(document)
        assert error.pointer == "/nodes/4/next"

    def test_an_unreachable_node_is_named(self) -> None:
        # given: nothing leads to the orphan
        document = journey()
        document["nodes"].insert(
            2,
            {
                "id": "orphan",
                "type": "action",
                "treatments": [{"action": "points", "points": 5}],
                "next": "end",
            },
        )
        # when
        error = invalid(document)
        # then
        assert error.pointer == "/nodes/2"
        assert "reached" in error.detail

    def test_a_journey_without_an_exit_is_refused(self) -> None:
        # given
        document = journey()
        document["nodes"].pop()
        # when
        error = invalid(document)
        # then
        assert error.pointer == "/nodes"
        assert "exit" in error.detail

    def test_an_edge_to_a_missing_node_is_named(self) -> None:
        # given
        document = journey()
        document["nodes"][2]["yes"] = "nowhere"
        # when / then
        assert invalid(document).pointer == "/nodes/2/yes"

    def test_exactly_one_entry(self) -> None:
        # given
        document = journey()
        second = copy.deepcopy(document["nodes"][0]) | {"id": "again"}
        document["nodes"].append(second)
        # when / then
        assert invalid(document).pointer == f"/nodes/{len(document['nodes']) - 1}"
        document = journey()
        document["nodes"][0] = {"id": "start", "type": "exit"}
        assert invalid(document).pointer == "/nodes"

    def test_no_edge_may_lead_back_to_the_entry(self) -> None:
        document = journey()
        document["nodes"][2]["yes"] = "start"
        assert invalid(document).pointer == "/nodes/2/yes"

    def test_duplicate_ids(self) -> None:
        document = journey()
        document["nodes"][5]["id"] = "coupon"
        assert invalid(document).pointer == "/nodes/5/id"

    def test_at_most_max_nodes(self) -> None:
        # given: a chain entry → a0 → … → exit of MAX_NODES + 1 nodes
        count = MAX_NODES - 1
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "entry", "trigger": {"event": "visit"}, "next": "a0"}
        ]
        for i in range(count):
            target = f"a{i + 1}" if i + 1 < count else "end"
            nodes.append({"id": f"a{i}", "type": "wait", "duration": {"minutes": 5}, "next": target})
        nodes.append({"id": "end", "type": "exit"})
        # when / then
        assert len(nodes) == MAX_NODES + 1
        assert invalid({"nodes": nodes}).pointer == "/nodes"

    def test_the_longest_allowed_chain_parses(self) -> None:
        count = MAX_NODES - 2
        nodes: list[dict[str, Any]] = [
            {"id": "start", "type": "entry", "trigger": {"event": "visit"}, "next": "a0"}
        ]
        for i in range(count):
            target = f"a{i + 1}" if i + 1 < count else "end"
            nodes.append({"id": f"a{i}", "type": "wait", "duration": {"minutes": 5}, "next": target})
        nodes.append({"id": "end", "type": "exit"})
        assert len(parse_graph({"nodes": nodes}).nodes) == MAX_NODES


class TestNodeRules:
    @pytest.mark.parametrize(
        ("wait", "pointer"),
        [
            ({"duration": {"days": 0}}, "/nodes/1/duration"),
            ({"duration": {"days": 400}}, "/nodes/1/duration/days"),
            ({"duration": {"days": 1}, "until_local_time": "10:00"}, "/nodes/1"),
            ({}, "/nodes/1"),
            ({"until_local_time": "25:00"}, "/nodes/1/until_local_time"),
            ({"until_event": "order_paid", "timeout_next": "end"}, "/nodes/1/timeout"),
            ({"until_event": "order_paid", "timeout": {"days": 2}}, "/nodes/1/timeout_next"),
            ({"duration": {"days": 1}, "timeout_next": "end"}, "/nodes/1/timeout"),
        ],
    )
    def test_waits(self, wait: dict[str, Any], pointer: str) -> None:
        document = journey()
        document["nodes"][1] = {"id": "wait3", "type": "wait", "next": "ordered", **wait}
        assert invalid(document).pointer == pointer

    def test_entry_needs_exactly_one_source(self) -> None:
        document = journey()
        document["nodes"][0]["segment_id"] = "seg_1"
        assert invalid(document).pointer == "/nodes/0"

    def test_stage_entered_needs_the_stage(self) -> None:
        document = journey()
        document["nodes"][0]["trigger"] = {"event": "stage_entered"}
        assert invalid(document).pointer == "/nodes/0/trigger/stage"

    def test_split_weights_add_up(self) -> None:
        document = journey()
        document["nodes"][2] = {
            "id": "ordered",
            "type": "split",
            "branches": [{"weight_bp": 5000, "next": "end"}, {"weight_bp": 4000, "next": "coupon"}],
        }
        assert invalid(document).pointer == "/nodes/2/branches"

    def test_branch_needs_rule_or_segment(self) -> None:
        document = journey()
        document["nodes"][2]["segment_id"] = "seg_1"
        assert invalid(document).pointer == "/nodes/2"

    def test_points_must_be_positive(self) -> None:
        document = journey()
        document["nodes"][3]["treatments"] = [{"action": "points", "points": 0}]
        assert invalid(document).pointer == "/nodes/3/treatments/0/points"


class TestStep:
    def test_the_example_walks_entry_wait_branch_action(self) -> None:
        # given
        graph = parse_graph(journey())
        ids = {"campaign_id": "cmp_1", "member_id": "mbr_1"}
        # when / then
        assert leave(graph, "start", **ids).next_node == "wait3"
        assert leave(graph, "wait3", **ids).next_node == "ordered"
        assert leave(graph, "ordered", **ids).needs_test
        assert leave(graph, "ordered", matches=True, **ids).next_node == "end"
        move = leave(graph, "ordered", matches=False, **ids)
        assert (move.outcome, move.next_node) == ("no", "coupon")
        move = leave(graph, "coupon", **ids)
        assert move.treatments == ({"action": "coupon", "template_id": "cpt_1"},)
        assert move.next_node == "wait1"
        assert leave(graph, "end", **ids).next_node is None

    def test_arriving_at_a_wait_is_due_later_and_elsewhere_now(self) -> None:
        graph = parse_graph(journey())
        assert arrive(graph.node("wait3"), now=NOW, zone=SHANGHAI) == (NOW + timedelta(days=3), None)
        assert arrive(graph.node("coupon"), now=NOW, zone=SHANGHAI) == (NOW, None)

    def test_until_event_leads_by_next_on_the_event_and_timeout_next_without(self) -> None:
        # given
        document = journey()
        document["nodes"][1] = {
            "id": "wait3",
            "type": "wait",
            "until_event": "order_paid",
            "timeout": {"days": 3},
            "next": "end",
            "timeout_next": "ordered",
        }
        graph = parse_graph(document)
        ids = {"campaign_id": "cmp_1", "member_id": "mbr_1"}
        # when / then
        assert arrive(graph.node("wait3"), now=NOW, zone=SHANGHAI) == (NOW + timedelta(days=3), "order_paid")
        assert leave(graph, "wait3", event_seen=True, **ids).next_node == "end"
        assert leave(graph, "wait3", event_seen=False, **ids).next_node == "ordered"

    def test_until_local_time_is_the_next_such_moment_in_the_merchants_zone(self) -> None:
        # 11:00 Shanghai: 10:00 is tomorrow, 12:30 is today
        assert next_local_time(NOW, "10:00", SHANGHAI) == datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
        assert next_local_time(NOW, "12:30", SHANGHAI) == datetime(2026, 11, 28, 4, 30, tzinfo=UTC)
        assert next_local_time(NOW, "11:00", SHANGHAI) == datetime(2026, 11, 29, 3, 0, tzinfo=UTC)

    def test_until_local_time_across_a_daylight_saving_gap(self) -> None:
        # New York skips 02:00–03:00 on 2026-03-08; 01:30 local the day before asks for 02:30
        zone = ZoneInfo("America/New_York")
        now = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST
        due = next_local_time(now, "02:30", zone)
        assert due > now
        assert due - now <= timedelta(days=1)

    @given(hour=st.integers(0, 23), minute=st.integers(0, 59), offset=st.integers(0, 10**7))
    def test_next_local_time_is_within_a_day_after_now(self, hour: int, minute: int, offset: int) -> None:
        now = NOW + timedelta(seconds=offset)
        due = next_local_time(now, f"{hour:02d}:{minute:02d}", SHANGHAI)
        assert now < due <= now + timedelta(days=1)
        local = due.astimezone(SHANGHAI)
        assert (local.hour, local.minute) == (hour, minute)

    def test_split_is_stable_and_follows_the_weights(self) -> None:
        # given
        document = journey()
        document["nodes"][2] = {
            "id": "ordered",
            "type": "split",
            "branches": [{"weight_bp": 2500, "next": "end"}, {"weight_bp": 7500, "next": "coupon"}],
        }
        graph = parse_graph(document)
        # when
        picks = [
            leave(graph, "ordered", campaign_id="cmp_1", member_id=f"m{i}").next_node for i in range(8000)
        ]
        # then: 25 % ± 5 sd (sd ≈ 39 of 8000)
        assert abs(picks.count("end") - 2000) < 200
        assert picks == [
            leave(graph, "ordered", campaign_id="cmp_1", member_id=f"m{i}").next_node for i in range(8000)
        ]
        assert all(0 <= split_bucket("c", f"m{i}", "n") < 10_000 for i in range(100))


class TestSchema:
    def test_the_schema_describes_every_node_type(self) -> None:
        schema = journey_json_schema()
        text = str(schema)
        for kind in ("entry", "action", "wait", "branch", "split", "exit"):
            assert f"'{kind}'" in text
        assert schema["$schema"].startswith("https://json-schema.org/")

    def test_the_schema_in_the_docs_is_current(self) -> None:
        # given
        path = Path(__file__).parents[2] / "docs" / "journey.schema.json"
        # when / then: regenerate with `python -c "…journey_json_schema()…"` (docs/journeys.md)
        assert json.loads(path.read_text(encoding="utf-8")) == journey_json_schema()


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid journey: nodes in a topological order, every edge pointing forward, every
    node reachable (its first edge in comes from an earlier node), exits at the end."""
    count = draw(st.integers(3, 25))
    kinds = [draw(st.sampled_from(["action", "wait", "branch", "split"])) for _ in range(count - 2)]
    ids = ["start", *[f"n{i}" for i in range(count - 2)], "end"]
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "entry", "trigger": {"event": "visit"}}]
    for i, kind in enumerate(kinds, start=1):
        nodes.append({"id": ids[i], "type": kind})
    nodes.append({"id": "end", "type": "exit"})

    def forward(i: int) -> str:
        return ids[draw(st.integers(i + 1, count - 1))]

    for i, node in enumerate(nodes[:-1]):
        kind = node["type"]
        if kind in ("entry", "action"):
            node["next"] = ids[i + 1]  # the chain keeps every node reachable
            if kind == "action":
                node["treatments"] = [{"action": "points", "points": 1}]
        elif kind == "wait":
            node |= {"duration": {"hours": 1}, "next": ids[i + 1]}
        elif kind == "branch":
            node |= {"rule": {"any": True}, "yes": ids[i + 1], "no": forward(i)}
        else:
            node["branches"] = [
                {"weight_bp": 5000, "next": ids[i + 1]},
                {"weight_bp": 5000, "next": forward(i)},
            ]
    return {"nodes": nodes}


class TestProperties:
    @given(document=dags(), answers=st.lists(st.booleans(), min_size=30, max_size=30))
    def test_every_walk_of_a_valid_graph_ends_at_an_exit_within_len_nodes_steps(
        self, document: dict[str, Any], answers: list[bool]
    ) -> None:
        # given
        graph = parse_graph(document)
        node: str | None = graph.entry.id
        # when: walking with arbitrary branch answers and wait outcomes
        steps = 0
        while node is not None:
            kind = graph.node(node).type
            move = leave(
                graph, node, campaign_id="c", member_id=f"m{steps}", matches=answers[steps], event_seen=True
            )
            if kind == "exit":
                assert move.next_node is None
            node = move.next_node
            steps += 1
        # then
        assert steps <= len(graph.nodes)

    @given(document=dags(), data=st.data())
    def test_any_edge_pointing_back_is_refused_as_a_cycle_at_that_edge(
        self, document: dict[str, Any], data: st.DataObject
    ) -> None:
        # given: one edge of a non-entry node turned back to itself or an earlier non-entry node
        nodes = document["nodes"]
        candidates = [i for i, n in enumerate(nodes) if n["type"] in ("action", "wait", "branch")]
        if not candidates:
            return
        i = data.draw(st.sampled_from(candidates))
        target = nodes[data.draw(st.integers(1, i))]["id"]
        field = "yes" if nodes[i]["type"] == "branch" else "next"
        nodes[i][field] = target
        # when / then: the pointer names an edge that really closes a cycle
        error = invalid(document)
        assert "cycle" in error.detail
        assert error.pointer.startswith("/nodes/")
