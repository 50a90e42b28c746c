"""A visual editor of segment rules (docs/segments.md): nested and/or groups, "not" on any node,
and an editor for every leaf kind of the language.

The editor keeps a tree of plain dicts and turns it into the rule JSON with :func:`to_rule`
(and back with :func:`from_rule`, to edit a saved segment). Structural changes (add, remove,
change a leaf's kind) redraw the tree; edits of a value only update the dict and call
``on_change`` — the page debounces its preview on that.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from nicegui import ui

from siyu.console.fmt import testid
from siyu.console.i18n import t
from siyu.segments.rules import (
    COMPARISONS,
    FIELD_KINDS,
    OPS_OF_KIND,
    AttributeField,
    CouponState,
    FieldKind,
    ReachChannelName,
    RfmMeasure,
    StageName,
)

Node = dict[str, Any]

LEAF_KINDS = (
    "attribute",
    "tags",
    "stage",
    "tier",
    "points",
    "rfm",
    "behaviour",
    "coupon",
    "near",
    "reachable",
    "score",
)

DEFAULT_BODIES: dict[str, dict[str, Any]] = {
    "attribute": {"field": "order_count", "op": "gte", "value": 1},
    "tags": {"any": []},
    "stage": {"in": ["repeat"]},
    "tier": {"in": []},
    "points": {"op": "gte", "value": 100},
    "rfm": {"measure": "recency_days", "op": "lte", "value": 30},
    "behaviour": {"event": "order_paid", "op": "gte", "count": 1, "within_days": 30},
    "coupon": {"state": "claimed", "within_days": 30},
    "near": {"km": 3.0},
    "reachable": {"channel": "any"},
    "score": {"model": "churn_risk", "op": "gte", "value": 0.5},
}


def group(op: str = "and") -> Node:
    return {"type": "group", "op": op, "negate": False, "children": []}


def leaf(kind: str) -> Node:
    return {"type": "leaf", "kind": kind, "negate": False, "body": copy.deepcopy(DEFAULT_BODIES[kind])}


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v not in (None, "", [])}


def to_rule(node: Node) -> dict[str, Any] | None:
    """The rule JSON of the tree; ``None`` for an empty tree (no condition yet: every member)."""
    if node["type"] == "group":
        children = [r for r in (to_rule(c) for c in node["children"]) if r is not None]
        if not children:
            return None
        rule: dict[str, Any] = children[0] if len(children) == 1 else {node["op"]: children}
    else:
        rule = {node["kind"]: _clean(node["body"])}
    return {"not": rule} if node["negate"] else rule


def from_rule(rule: dict[str, Any] | None) -> Node:
    """The tree of a rule JSON (always a group at the root)."""
    if rule is None:
        return group()
    node = _node(rule)
    if node["type"] == "group" and not node["negate"]:
        return node
    root = group()
    root["children"].append(node)
    return root


def _node(rule: dict[str, Any]) -> Node:
    ((key, value),) = rule.items()
    if key == "not":
        inner = _node(value)
        inner["negate"] = not inner["negate"]
        return inner
    if key in ("and", "or"):
        node = group(key)
        node["children"] = [_node(child) for child in value]
        return node
    return {"type": "leaf", "kind": key, "negate": False, "body": copy.deepcopy(value)}


class Choices:
    """What the leaf editors offer to pick from (the merchant's stores, tiers, coupon templates)."""

    def __init__(
        self,
        stores: dict[str, str] | None = None,
        tiers: dict[str, str] | None = None,
        templates: dict[str, str] | None = None,
    ) -> None:
        self.stores = stores or {}
        self.tiers = tiers or {}
        self.templates = templates or {}


class RuleBuilder:
    """The editor on a page: ``root`` is the tree, ``on_change`` is called after every edit."""

    def __init__(self, choices: Choices, on_change: Callable[[], None], root: Node | None = None) -> None:
        self.choices = choices
        self.on_change = on_change
        self.root = root or group()
        self._counter = 0

    def load(self, rule: dict[str, Any] | None) -> None:
        self.root = from_rule(rule)
        self.draw.refresh()
        self.on_change()

    def rule(self) -> dict[str, Any] | None:
        return to_rule(self.root)

    def _structure_changed(self) -> None:
        self.draw.refresh()
        self.on_change()

    @ui.refreshable_method
    def draw(self) -> None:
        self._counter = 0
        self._group(self.root, None, "rule")

    def _ops(self) -> dict[str, str]:
        return {op: t(f"rule.op.{op}") for op in COMPARISONS}

    def _group(self, node: Node, parent: Node | None, path: str) -> None:
        box = ui.card().classes(
            "w-full p-2 gap-1 border-l-4 border-sky-400" if parent else "w-full p-2 gap-1"
        )
        with testid(box, f"{path}-group"):
            with ui.row().classes("items-center gap-2"):
                op = ui.toggle({"and": t("rule.and"), "or": t("rule.or")}, value=node["op"])
                testid(op, f"{path}-op")
                op.on_value_change(lambda e: (node.update(op=e.value), self.on_change()))
                self._negate(node, path)
                add = ui.select(
                    {k: t(f"rule.kind.{k}") for k in LEAF_KINDS}, label=t("rule.add_condition"), value=None
                ).classes("w-48")
                testid(add, f"{path}-add")

                def added(e: Any, node: Node = node, add: Any = add) -> None:
                    if e.value:
                        node["children"].append(leaf(e.value))
                        self._structure_changed()

                add.on_value_change(added)

                def add_group(node: Node = node) -> None:
                    node["children"].append(group("or"))
                    self._structure_changed()

                button = ui.button(t("rule.add_group"), icon="account_tree", on_click=add_group)
                testid(button.props("flat dense no-caps"), f"{path}-add-group")
                if parent is not None:
                    ui.button(icon="close", on_click=lambda: self._remove(parent, node)).props(
                        "flat dense round"
                    )
            if not node["children"]:
                ui.label(t("rule.empty_group")).classes("text-sm text-slate-500")
            for i, child in enumerate(node["children"]):
                child_path = f"{path}-{i}"
                if child["type"] == "group":
                    self._group(child, node, child_path)
                else:
                    self._leaf(child, node, child_path)

    def _negate(self, node: Node, path: str) -> None:
        box = ui.checkbox(t("rule.not"), value=node["negate"])
        testid(box, f"{path}-not")
        box.on_value_change(lambda e: (node.update(negate=bool(e.value)), self.on_change()))

    def _remove(self, parent: Node, node: Node) -> None:
        parent["children"].remove(node)
        self._structure_changed()

    def _leaf(self, node: Node, parent: Node, path: str) -> None:
        with testid(ui.row().classes("items-center gap-2 w-full pl-2"), f"{path}-leaf"):
            ui.label(t(f"rule.kind.{node['kind']}")).classes("font-medium w-20")
            self._negate(node, path)
            editor = getattr(self, f"_edit_{node['kind']}")
            editor(node["body"], path)
            ui.button(icon="delete", on_click=lambda: self._remove(parent, node)).props("flat dense round")

    # ------------------------------------------------------------------ field widgets

    def _set(self, body: dict[str, Any], key: str, value: Any) -> None:
        body[key] = value
        self.on_change()

    def _select(
        self, body: dict[str, Any], key: str, options: dict[str, str], label: str, path: str, **kw: Any
    ) -> Any:
        current = body.get(key)
        if kw.get("multiple"):
            value: Any = [v for v in current or [] if v in options]
        else:
            value = current if current in options else None
        widget = ui.select(options, label=t(label), value=value, **kw).classes("min-w-[8rem]")
        testid(widget, f"{path}-{key}")
        widget.on_value_change(
            lambda e: self._set(body, key, list(e.value or []) if kw.get("multiple") else e.value)
        )
        return widget

    def _number(self, body: dict[str, Any], key: str, label: str, path: str, *, integer: bool = True) -> Any:
        widget = ui.number(t(label), value=body.get(key), format="%d" if integer else None).classes("w-28")
        testid(widget, f"{path}-{key}")

        def changed(e: Any) -> None:
            value = e.value
            if value is not None and integer:
                value = int(value)
            self._set(body, key, value)

        widget.on_value_change(changed)
        return widget

    def _text(self, body: dict[str, Any], key: str, label: str, path: str) -> Any:
        widget = ui.input(t(label), value=body.get(key) or "").classes("w-40")
        testid(widget, f"{path}-{key}")
        widget.on_value_change(lambda e: self._set(body, key, e.value or None))
        return widget

    def _list(self, body: dict[str, Any], key: str, label: str, path: str) -> Any:
        """A comma-separated list of words (tags, channels)."""
        widget = ui.input(t(label), value=", ".join(str(v) for v in body.get(key) or [])).classes("w-56")
        testid(widget, f"{path}-{key}")

        def changed(e: Any) -> None:
            parts = [p.strip() for p in (e.value or "").replace("，", ",").split(",") if p.strip()]
            self._set(body, key, parts)

        widget.on_value_change(changed)
        return widget

    # ------------------------------------------------------------------ one editor per leaf kind

    def _edit_attribute(self, body: dict[str, Any], path: str) -> None:
        fields = {f.value: t(f"rule.field.{f.value}") for f in AttributeField}
        kind = FIELD_KINDS[AttributeField(body["field"])]

        def field_changed(e: Any) -> None:
            new_kind = FIELD_KINDS[AttributeField(e.value)]
            body["field"] = e.value
            if body["op"] not in OPS_OF_KIND[new_kind]:
                body["op"] = "within_days" if new_kind is FieldKind.TIME else "eq"
            if new_kind is not kind:
                body["value"] = 30 if new_kind is FieldKind.TIME else None
            self._structure_changed()

        field = ui.select(fields, label=t("rule.field"), value=body["field"]).classes("w-44")
        testid(field, f"{path}-field")
        field.on_value_change(field_changed)
        ops = {op: t(f"rule.op.{op}") for op in sorted(OPS_OF_KIND[kind], key=_op_order)}
        op = ui.select(ops, label=t("rule.operator"), value=body["op"]).classes("w-36")
        testid(op, f"{path}-op")

        def op_changed(e: Any) -> None:
            body["op"] = e.value
            body["value"] = True if e.value == "exists" else None
            self._structure_changed()

        op.on_value_change(op_changed)
        self._attribute_value(body, kind, path)

    def _attribute_value(self, body: dict[str, Any], kind: FieldKind, path: str) -> None:
        op = body["op"]
        if op == "exists":
            self._select(body, "value", {True: t("ops.yes"), False: t("ops.no")}, "rule.value", path)  # type: ignore[dict-item]
            return
        if op in ("within_days", "older_than_days"):
            self._number(body, "value", "rule.days", path)
            return
        if op == "in":
            widget = ui.input(
                t("rule.values"), value=", ".join(str(v) for v in body.get("value") or [])
            ).classes("w-56")
            testid(widget, f"{path}-value")

            def changed(e: Any) -> None:
                parts = [p.strip() for p in (e.value or "").replace("，", ",").split(",") if p.strip()]
                self._set(
                    body, "value", [int(p) if kind is FieldKind.NUMBER and p.isdigit() else p for p in parts]
                )

            widget.on_value_change(changed)
            return
        if kind is FieldKind.NUMBER:
            self._number(body, "value", "rule.value", path)
        elif kind is FieldKind.TIME:
            self._text(body, "value", "rule.time", path)
        else:
            self._text(body, "value", "rule.value", path)

    def _edit_tags(self, body: dict[str, Any], path: str) -> None:
        mode = next((m for m in ("any", "all", "none") if m in body), "any")
        values = body.get(mode) or []
        select = ui.select({m: t(f"rule.tags.{m}") for m in ("any", "all", "none")}, value=mode).classes(
            "w-32"
        )
        testid(select, f"{path}-mode")

        def mode_changed(e: Any) -> None:
            kept = [v for m in ("any", "all", "none") for v in body.pop(m, None) or []]
            body[e.value] = kept
            self._structure_changed()

        select.on_value_change(mode_changed)
        body.setdefault(mode, values)
        self._list(body, mode, "rule.tags", path)

    def _edit_stage(self, body: dict[str, Any], path: str) -> None:
        self._select(
            body,
            "in",
            {s.value: t(f"stage.{s.value}") for s in StageName},
            "rule.stages",
            path,
            multiple=True,
        )

    def _edit_tier(self, body: dict[str, Any], path: str) -> None:
        widget = ui.select(
            self.choices.tiers,
            label=t("rule.tiers"),
            value=[v for v in body.get("in") or [] if v in self.choices.tiers],
            multiple=True,
        ).classes("min-w-[10rem]")
        testid(widget, f"{path}-in")
        widget.on_value_change(lambda e: self._set(body, "in", list(e.value or [])))

    def _edit_points(self, body: dict[str, Any], path: str) -> None:
        self._select(body, "op", self._ops(), "rule.operator", path)
        self._number(body, "value", "rule.points", path)

    def _edit_rfm(self, body: dict[str, Any], path: str) -> None:
        self._select(
            body, "measure", {m.value: t(f"rule.rfm.{m.value}") for m in RfmMeasure}, "rule.measure", path
        )
        self._select(body, "op", self._ops(), "rule.operator", path)
        self._number(body, "value", "rule.value", path)

    def _edit_behaviour(self, body: dict[str, Any], path: str) -> None:
        self._text(body, "event", "rule.event", path)
        self._select(body, "op", self._ops(), "rule.operator", path)
        self._number(body, "count", "rule.count", path)
        self._number(body, "within_days", "rule.within_days", path)
        self._select(body, "store_id", self.choices.stores, "rule.store", path, clearable=True)
        self._text(body, "channel", "rule.channel", path)

    def _edit_coupon(self, body: dict[str, Any], path: str) -> None:
        self._select(body, "template_id", self.choices.templates, "rule.template", path, clearable=True)
        self._select(
            body, "state", {s.value: t(f"rule.coupon.{s.value}") for s in CouponState}, "rule.state", path
        )
        self._number(body, "within_days", "rule.within_days", path)

    def _edit_near(self, body: dict[str, Any], path: str) -> None:
        self._select(body, "store_id", self.choices.stores, "rule.store_any", path, clearable=True)
        self._number(body, "km", "rule.km", path, integer=False)

    def _edit_reachable(self, body: dict[str, Any], path: str) -> None:
        self._select(
            body,
            "channel",
            {c.value: t(f"channel.{c.value}") for c in ReachChannelName},
            "rule.channel",
            path,
        )
        self._text(body, "target", "rule.target", path)

    def _edit_score(self, body: dict[str, Any], path: str) -> None:
        self._text(body, "model", "rule.model", path)
        self._select(body, "op", self._ops(), "rule.operator", path)
        self._number(body, "value", "rule.value", path, integer=False)


def _op_order(op: str) -> int:
    order = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "exists", "within_days", "older_than_days")
    return order.index(op)
