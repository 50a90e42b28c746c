"""The language's parser: what is a rule, and the pointer of the first bad node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from siyu.segments.rules import MAX_DEPTH, MAX_LEAVES, RuleInvalid, check_rule, rule_json_schema, to_json

LEAF = {"tags": {"any": ["vip"]}}


def pointer_of(rule: Any) -> str:
    with pytest.raises(RuleInvalid) as caught:
        check_rule(rule)
    return caught.value.pointer


class TestCheckRule:
    def test_a_valid_rule_round_trips_with_defaults_filled(self) -> None:
        # given
        rule = {"or": [LEAF, {"not": {"behaviour": {"event": "order_paid", "within_days": 30}}}]}
        # when
        parsed = to_json(check_rule(rule))
        # then
        assert parsed == {
            "or": [
                LEAF,
                {"not": {"behaviour": {"event": "order_paid", "op": "gte", "count": 1, "within_days": 30}}},
            ]
        }
        assert to_json(check_rule(parsed)) == parsed

    @pytest.mark.parametrize(
        ("rule", "pointer"),
        [
            (
                {"and": [LEAF, {"behaviour": {"event": "order_paid", "within_days": -1}}]},
                "/and/1/behaviour/within_days",
            ),
            ({"or": [LEAF, {"bogus": {}}]}, "/or/1/bogus"),
            ({"and": []}, "/and"),
            ({"and": LEAF}, "/and"),
            ({"not": [LEAF]}, "/not"),
            ({}, ""),
            ({"tags": {"any": ["a"]}, "stage": {"in": ["repeat"]}}, ""),
            ({"attribute": {"field": "order_count", "op": "within_days", "value": 3}}, "/attribute/op"),
            ({"attribute": {"field": "last_channel", "op": "gt", "value": "a"}}, "/attribute/op"),
            (
                {"attribute": {"field": "created_at", "op": "gt", "value": "2026-01-01T00:00:00"}},
                "/attribute/value",
            ),
            ({"attribute": {"field": "order_count", "op": "in", "value": []}}, "/attribute/value"),
            ({"attribute": {"field": "order_count", "op": "eq", "value": True}}, "/attribute/value"),
            ({"attribute": {"field": "shoe_size", "op": "eq", "value": 3}}, "/attribute/field"),
            ({"tags": {"any": ["a"], "none": ["b"]}}, "/tags"),
            ({"stage": {"in": ["vip"]}}, "/stage/in/0"),
            ({"behaviour": {"event": "Order Paid"}}, "/behaviour/event"),
            ({"behaviour": {"event": "order_paid", "where": 1}}, "/behaviour/where"),
            ({"near": {"km": 0}}, "/near/km"),
            ({"reachable": {"target": "tpl"}}, "/reachable/target"),
            ({"score": {"model": "clv", "op": "in", "value": 1}}, "/score/op"),
            ({"coupon": "cpt_1"}, "/coupon"),
        ],
    )
    def test_the_first_bad_node_is_named(self, rule: Any, pointer: str) -> None:
        assert pointer_of(rule) == pointer

    def test_pointer_escapes_odd_keys(self) -> None:
        assert pointer_of({"and": [{"a/b": {}}]}) == "/and/0/a~1b"

    def test_nesting_is_capped(self) -> None:
        # given
        rule: dict[str, Any] = LEAF
        for _ in range(MAX_DEPTH + 1):
            rule = {"not": rule}
        # when / then
        assert pointer_of(rule) == "/not" * MAX_DEPTH
        with pytest.raises(RuleInvalid, match="nest at most"):
            check_rule(rule)

    def test_leaves_are_capped(self) -> None:
        # given
        rule = {"or": [LEAF] * (MAX_LEAVES + 1)}
        # when / then
        assert pointer_of(rule) == f"/or/{MAX_LEAVES}"
        check_rule({"or": [LEAF] * MAX_LEAVES})


class TestJsonSchema:
    def test_every_leaf_and_the_connectives_are_described(self) -> None:
        # when
        schema = rule_json_schema()
        # then
        names = set(schema["$defs"])
        for kind in (
            "Attribute",
            "Tags",
            "StageLeaf",
            "TierLeaf",
            "Points",
            "Rfm",
            "Behaviour",
            "CouponLeaf",
            "Near",
            "Reachable",
            "Score",
        ):
            assert f"{kind}Rule" in names, kind
        assert len(schema["oneOf"]) == 14
        assert schema["$defs"]["Behaviour"]["additionalProperties"] is False

    def test_the_copy_in_the_docs_is_the_served_schema(self) -> None:
        # given
        docs = (Path(__file__).parents[2] / "docs" / "segments.md").read_text(encoding="utf-8")
        # when
        copied = docs.split("<!-- schema:start -->")[1].split("```json\n")[1].split("\n```")[0]
        # then: regenerate with json.dumps(rule_json_schema(), indent=2, ensure_ascii=False, sort_keys=True)
        assert json.loads(copied) == rule_json_schema()
