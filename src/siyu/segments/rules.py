"""The segment language (人群规则): JSON rules, nestable ``and``/``or``/``not`` over leaves.

A rule is a JSON object with exactly one key: ``and`` / ``or`` (a list of rules), ``not`` (one
rule), or the kind of a leaf (``attribute``, ``tags``, ``stage``, ``tier``, ``points``, ``rfm``,
``behaviour``, ``coupon``, ``near``, ``reachable``, ``score``) whose value is that leaf's body.

The tree is walked here (so that every error names the JSON pointer of its node, and depth and
leaf count are capped); each leaf body is a strict Pydantic model (``extra="forbid"``).
:func:`rule_json_schema` exports the same models as a JSON Schema. The semantics of every leaf
are in docs/segments.md; the compiler is :mod:`siyu.segments.compiler`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    ValidationError,
    create_model,
)

from siyu.kit.problems import UnprocessableEntity, json_pointer

MAX_DEPTH = 8
"""Nesting levels of ``and``/``or``/``not`` (the leaves sit below)."""
MAX_LEAVES = 64
MAX_LIST = 200
"""Items in an ``in`` list or a tag list."""
MAX_DAYS = 3660
MAX_KM = 500.0

EVENT_TYPE = re.compile(r"^(custom\.[a-z0-9][a-z0-9_.-]{0,56}|[a-z][a-z0-9_]{0,63})$")
"""A built-in event type (``order_paid``) or a merchant's own (``custom.…``), as events accept."""


class RuleInvalid(UnprocessableEntity):
    """A rule that is not valid (422); ``pointer`` is the JSON pointer of the bad node in the rule."""

    slug, title = "rule-invalid", "Invalid segment rule"

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(detail, extra={"errors": [{"pointer": pointer, "detail": detail}]})
        self.pointer = pointer

    def under(self, prefix: str) -> RuleInvalid:
        """The same error with its pointer inside a request body (``prefix`` = ``/rule``)."""
        return RuleInvalid(prefix + self.pointer, self.detail)


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"
    EXISTS = "exists"
    WITHIN_DAYS = "within_days"
    """A time in the last N days: ``now − N·24 h ≤ t ≤ now``."""
    OLDER_THAN_DAYS = "older_than_days"
    """A time more than N days ago: ``t < now − N·24 h``."""


Count = Literal["eq", "ne", "gt", "gte", "lt", "lte"]
COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte")


class FieldKind(StrEnum):
    NUMBER = "number"
    TEXT = "text"
    TIME = "time"


class AttributeField(StrEnum):
    """Profile attributes and event rollups of a member."""

    CREATED_AT = "created_at"
    BIRTHDAY_MONTH = "birthday_month"
    FIRST_SEEN_AT = "first_seen_at"
    LAST_SEEN_AT = "last_seen_at"
    FIRST_ORDER_AT = "first_order_at"
    LAST_ORDER_AT = "last_order_at"
    ORDER_COUNT = "order_count"
    TOTAL_SPEND_FEN = "total_spend_fen"
    REFUND_COUNT = "refund_count"
    REFUND_FEN = "refund_fen"
    VISIT_COUNT = "visit_count"
    LAST_CHANNEL = "last_channel"
    LAST_STORE_ID = "last_store_id"
    ACQUISITION_CHANNEL = "acquisition_channel"
    ACQUISITION_STORE_ID = "acquisition_store_id"
    ACQUISITION_CAMPAIGN = "acquisition_campaign"
    ACQUISITION_REFERRER = "acquisition_referrer"


FIELD_KINDS: dict[AttributeField, FieldKind] = {
    AttributeField.CREATED_AT: FieldKind.TIME,
    AttributeField.BIRTHDAY_MONTH: FieldKind.NUMBER,
    AttributeField.FIRST_SEEN_AT: FieldKind.TIME,
    AttributeField.LAST_SEEN_AT: FieldKind.TIME,
    AttributeField.FIRST_ORDER_AT: FieldKind.TIME,
    AttributeField.LAST_ORDER_AT: FieldKind.TIME,
    AttributeField.ORDER_COUNT: FieldKind.NUMBER,
    AttributeField.TOTAL_SPEND_FEN: FieldKind.NUMBER,
    AttributeField.REFUND_COUNT: FieldKind.NUMBER,
    AttributeField.REFUND_FEN: FieldKind.NUMBER,
    AttributeField.VISIT_COUNT: FieldKind.NUMBER,
    AttributeField.LAST_CHANNEL: FieldKind.TEXT,
    AttributeField.LAST_STORE_ID: FieldKind.TEXT,
    AttributeField.ACQUISITION_CHANNEL: FieldKind.TEXT,
    AttributeField.ACQUISITION_STORE_ID: FieldKind.TEXT,
    AttributeField.ACQUISITION_CAMPAIGN: FieldKind.TEXT,
    AttributeField.ACQUISITION_REFERRER: FieldKind.TEXT,
}
OPS_OF_KIND: dict[FieldKind, frozenset[str]] = {
    FieldKind.NUMBER: frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "exists"}),
    FieldKind.TEXT: frozenset({"eq", "ne", "in", "exists"}),
    FieldKind.TIME: frozenset({"gt", "gte", "lt", "lte", "exists", "within_days", "older_than_days"}),
}


class LeafError(ValueError):
    """A leaf whose fields are each valid but do not fit together; ``field`` names the bad one."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class Leaf(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self) -> None:
        """Cross-field checks (raise :class:`LeafError`)."""


Days = Annotated[int, Field(ge=0, le=MAX_DAYS)]
Short = Annotated[str, Field(min_length=1, max_length=128)]


class Attribute(Leaf):
    """``{"attribute": {"field": "order_count", "op": "gte", "value": 2}}``."""

    field: AttributeField
    op: Op
    value: int | bool | datetime | str | list[int | str] | None = None

    def check(self) -> None:
        kind = FIELD_KINDS[self.field]
        if self.op.value not in OPS_OF_KIND[kind]:
            allowed = ", ".join(sorted(OPS_OF_KIND[kind]))
            raise LeafError("op", f"{self.field.value} is a {kind.value} field; its ops are {allowed}")
        if kind is FieldKind.TIME and isinstance(self.value, str):
            object.__setattr__(self, "value", _parse_time(self.value))
        v = self.value
        if self.op is Op.EXISTS:
            if not isinstance(v, bool):
                raise LeafError("value", "exists takes true (has a value) or false (has none)")
        elif self.op in (Op.WITHIN_DAYS, Op.OLDER_THAN_DAYS):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_DAYS:
                raise LeafError("value", f"{self.op.value} takes a whole number of days, 0–{MAX_DAYS}")
        elif self.op is Op.IN:
            if not isinstance(v, list) or not 1 <= len(v) <= MAX_LIST:
                raise LeafError("value", f"in takes a list of 1–{MAX_LIST} values")
            for item in v:
                _check_scalar(kind, item)
        else:
            _check_scalar(kind, v)


def _parse_time(text: str) -> datetime | str:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def _check_scalar(kind: FieldKind, v: object) -> None:
    if kind is FieldKind.NUMBER and (isinstance(v, bool) or not isinstance(v, int)):
        raise LeafError("value", "this field compares with an integer")
    if kind is FieldKind.TEXT and not (isinstance(v, str) and 0 < len(v) <= 200):
        raise LeafError("value", "this field compares with a string of 1–200 characters")
    if kind is FieldKind.TIME and not (isinstance(v, datetime) and v.tzinfo is not None):
        raise LeafError("value", "this field compares with an ISO 8601 time with a UTC offset")


class Tags(Leaf):
    """``{"tags": {"any": ["vip"]}}`` — exactly one of ``any``, ``all``, ``none``."""

    any: list[Short] | None = Field(default=None, min_length=1, max_length=MAX_LIST)
    all: list[Short] | None = Field(default=None, min_length=1, max_length=MAX_LIST)
    none: list[Short] | None = Field(default=None, min_length=1, max_length=MAX_LIST)

    def check(self) -> None:
        given = [k for k in ("any", "all", "none") if getattr(self, k) is not None]
        if len(given) != 1:
            raise LeafError("", "give exactly one of any, all, none")


class StageName(StrEnum):
    STRANGER = "stranger"
    HIGH_POTENTIAL = "high_potential"
    FIRST_ORDER = "first_order"
    REPEAT = "repeat"
    SUPER = "super"
    DORMANT = "dormant"
    LOST = "lost"


class StageLeaf(Leaf):
    """``{"stage": {"in": ["repeat", "super"]}}`` — the member's lifecycle stage."""

    in_: list[StageName] = Field(alias="in", min_length=1, max_length=7)


class TierLeaf(Leaf):
    """``{"tier": {"in": ["金卡", "tir_…"]}}`` — the effective tier, by id or name."""

    in_: list[Short] = Field(alias="in", min_length=1, max_length=MAX_LIST)


class Points(Leaf):
    """``{"points": {"op": "gte", "value": 500}}`` — the points balance (no account: 0)."""

    op: Count
    value: int


class RfmMeasure(StrEnum):
    RECENCY_DAYS = "recency_days"
    """Whole days since the last order (no order: never matches)."""
    FREQUENCY = "frequency"
    """Orders paid (``order_count``)."""
    MONETARY_FEN = "monetary_fen"
    """Total paid (``total_spend_fen``, before refunds)."""


class Rfm(Leaf):
    """``{"rfm": {"measure": "recency_days", "op": "lte", "value": 30}}``."""

    measure: RfmMeasure
    op: Count
    value: int = Field(ge=0)


class Behaviour(Leaf):
    """``{"behaviour": {"event": "order_paid", "op": "gte", "count": 2, "within_days": 30}}``."""

    event: str = Field(min_length=1, max_length=64)
    op: Count = "gte"
    count: int = Field(default=1, ge=0, le=1_000_000)
    within_days: Days | None = None
    store_id: Short | None = None
    channel: Short | None = None

    def check(self) -> None:
        if not EVENT_TYPE.match(self.event):
            raise LeafError("event", "an event type: a built-in one (order_paid, visit…) or custom.…")


class CouponState(StrEnum):
    CLAIMED = "claimed"
    """Has a coupon (of the template) claimed in the window, whatever became of it."""
    REDEEMED = "redeemed"
    """Has such a coupon that is redeemed."""
    UNREDEEMED = "unredeemed"
    """Has such a coupon that was never redeemed (available, expired or void)."""


class CouponLeaf(Leaf):
    """``{"coupon": {"template_id": "cpt_…", "state": "unredeemed", "within_days": 30}}``."""

    template_id: Short | None = None
    state: CouponState = CouponState.CLAIMED
    within_days: Days | None = None


class Near(Leaf):
    """``{"near": {"store_id": "str_…", "km": 3}}``; without ``store_id``: any open store."""

    store_id: Short | None = None
    km: float = Field(gt=0, le=MAX_KM)


class ReachChannelName(StrEnum):
    ANY = "any"
    SUBSCRIPTION = "subscription"
    LIFE_ACCOUNT = "life_account"
    MINI_PROGRAM = "mini_program"
    SMS = "sms"
    GUIDE = "guide"


class Reachable(Leaf):
    """``{"reachable": {"channel": "subscription", "target": "tpl_…"}}``; ``any`` = operable."""

    channel: ReachChannelName = ReachChannelName.ANY
    target: Annotated[str, Field(max_length=128)] | None = None

    def check(self) -> None:
        if self.channel is ReachChannelName.ANY and self.target is not None:
            raise LeafError("target", "a target needs a channel")


class Score(Leaf):
    """``{"score": {"model": "churn_risk", "op": "gte", "value": 0.7}}`` (no score: no match)."""

    model: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")]
    op: Count
    value: float


LEAVES: dict[str, type[Leaf]] = {
    "attribute": Attribute,
    "tags": Tags,
    "stage": StageLeaf,
    "tier": TierLeaf,
    "points": Points,
    "rfm": Rfm,
    "behaviour": Behaviour,
    "coupon": CouponLeaf,
    "near": Near,
    "reachable": Reachable,
    "score": Score,
}


@dataclass(frozen=True)
class AllOf:
    """``{"and": [...]}``: every child matches."""

    children: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    """``{"or": [...]}``: at least one child matches."""

    children: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    """``{"not": {...}}``: the child does not match."""

    child: Rule


@dataclass(frozen=True)
class LeafNode:
    kind: str
    leaf: Leaf


Rule = AllOf | AnyOf | Not | LeafNode


def check_rule(rule: object) -> Rule:
    """Parse and validate a rule; :class:`RuleInvalid` names the first bad node."""
    if isinstance(rule, AllOf | AnyOf | Not | LeafNode):
        return rule
    counter = [0]
    return _parse(rule, [], 0, counter)


def _parse(node: object, path: list[str | int], depth: int, leaves: list[int]) -> Rule:
    here = json_pointer(path)
    if not isinstance(node, dict) or len(node) != 1:
        kinds = ", ".join(["and", "or", "not", *LEAVES])
        raise RuleInvalid(here, f"a rule is an object with exactly one key, one of: {kinds}")
    ((key, body),) = node.items()
    if key in ("and", "or", "not"):
        if depth >= MAX_DEPTH:
            raise RuleInvalid(here, f"rules nest at most {MAX_DEPTH} levels of and/or/not")
        if key == "not":
            return Not(_parse(body, [*path, "not"], depth + 1, leaves))
        if not isinstance(body, list) or not body:
            raise RuleInvalid(json_pointer([*path, key]), f"{key} takes a non-empty list of rules")
        children = tuple(_parse(child, [*path, key, i], depth + 1, leaves) for i, child in enumerate(body))
        return AllOf(children) if key == "and" else AnyOf(children)
    model = LEAVES.get(key)
    if model is None:
        kinds = ", ".join(["and", "or", "not", *LEAVES])
        raise RuleInvalid(json_pointer([*path, key]), f"unknown rule kind {key!r}; kinds are: {kinds}")
    leaves[0] += 1
    if leaves[0] > MAX_LEAVES:
        raise RuleInvalid(here, f"a rule has at most {MAX_LEAVES} leaves")
    if not isinstance(body, dict):
        raise RuleInvalid(json_pointer([*path, key]), f"{key} takes an object")
    try:
        leaf = model.model_validate(body)
        leaf.check()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [part for part in first["loc"] if not isinstance(part, str) or not part.startswith("function-")]
        raise RuleInvalid(json_pointer([*path, key, *_loc(loc)]), first["msg"]) from None
    except LeafError as exc:
        where = [*path, key, exc.field] if exc.field else [*path, key]
        raise RuleInvalid(json_pointer(where), exc.detail) from None
    return LeafNode(key, leaf)


def _loc(loc: Sequence[Any]) -> list[str | int]:
    """Pydantic locations name union members (``int``, ``list[...]``): keep only the field path."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", part)):
            if isinstance(part, str) and part in ("int", "bool", "str", "datetime", "float", "list"):
                break
            out.append(part)
        else:
            break
    return out


def to_json(rule: Rule) -> dict[str, Any]:
    """A rule back to its JSON form (canonical: defaults filled in, as stored)."""
    if isinstance(rule, AllOf):
        return {"and": [to_json(c) for c in rule.children]}
    if isinstance(rule, AnyOf):
        return {"or": [to_json(c) for c in rule.children]}
    if isinstance(rule, Not):
        return {"not": to_json(rule.child)}
    return {rule.kind: rule.leaf.model_dump(mode="json", by_alias=True, exclude_none=True)}


# ---------------------------------------------------------------- JSON Schema


def _leaf_rule(kind: str, model: type[Leaf]) -> type[BaseModel]:
    fields: dict[str, Any] = {kind: (model, ...)}
    return create_model(f"{model.__name__}Rule", __config__=ConfigDict(extra="forbid"), **fields)


class _And(BaseModel):
    model_config = ConfigDict(extra="forbid")
    and_: list[RuleSchema] = Field(alias="and", min_length=1)


class _Or(BaseModel):
    model_config = ConfigDict(extra="forbid")
    or_: list[RuleSchema] = Field(alias="or", min_length=1)


class _Not(BaseModel):
    model_config = ConfigDict(extra="forbid")
    not_: RuleSchema = Field(alias="not")


def _key_of(value: object) -> str | None:
    return next(iter(value)) if isinstance(value, dict) and len(value) == 1 else None


_LEAF_RULES = {kind: _leaf_rule(kind, model) for kind, model in LEAVES.items()}


def _union() -> Any:
    """and | or | not | each leaf, told apart by their one key (a tagged union in the schema)."""
    tagged = [Annotated[_And, Tag("and")], Annotated[_Or, Tag("or")], Annotated[_Not, Tag("not")]]
    tagged += [Annotated[model, Tag(kind)] for kind, model in _LEAF_RULES.items()]
    return Annotated[Union[tuple(tagged)], Discriminator(_key_of)]  # noqa: UP007


if TYPE_CHECKING:
    RuleSchema = Any
else:
    RuleSchema = _union()
_And.model_rebuild()
_Or.model_rebuild()
_Not.model_rebuild()


class RuleDocument(RootModel[RuleSchema]):
    """A segment rule (the whole language, as one JSON Schema)."""


def rule_json_schema() -> dict[str, Any]:
    """The JSON Schema of the language (draft 2020-12), from the same models the parser uses."""
    schema = RuleDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Siyu segment rule"
    schema["description"] = (
        f"One key per object: and/or (lists), not, or a leaf. At most {MAX_DEPTH} levels of "
        f"and/or/not and {MAX_LEAVES} leaves; cross-field rules (which ops a field takes) are "
        "checked by the server and reported with a JSON pointer."
    )
    return schema
