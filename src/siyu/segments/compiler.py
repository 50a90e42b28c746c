"""Rule → one SQLAlchemy Core ``SELECT`` of the ids of the merchant's ACTIVE members that match.

The shape is the same for every rule::

    SELECT m.id FROM members m
      LEFT JOIN member_rollups r ON …          -- one-to-one facts, joined once if used
      LEFT JOIN (SELECT member_id, count(*) n FROM events WHERE … GROUP BY member_id) b1 ON …
      …                                        -- one grouped source per many-valued leaf
    WHERE m.merchant_id = :m AND m.status = 'active' AND <the rule as a boolean expression>

Each leaf becomes a predicate over its joined columns that is never NULL (``x IS NOT NULL AND
x op v``, ``coalesce(n, 0) op v``), so ``not`` is plain negation and the boolean structure of the
rule maps onto SQL unchanged, on SQLite and PostgreSQL alike. Nothing is evaluated member by
member in Python; constants (store coordinates, tier ids, ``now``) are resolved here, once.

With ``only_member`` every source is restricted to that member as well (membership tests for
triggers read a handful of rows instead of grouping the merchant's events).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause

from siyu.kit.problems import json_pointer
from siyu.segments import sources as src
from siyu.segments.rules import (
    FIELD_KINDS,
    AllOf,
    AnyOf,
    Attribute,
    AttributeField,
    Behaviour,
    CouponLeaf,
    CouponState,
    FieldKind,
    LeafNode,
    Near,
    Not,
    Op,
    Points,
    Reachable,
    ReachChannelName,
    Rfm,
    RfmMeasure,
    Rule,
    RuleInvalid,
    Score,
    StageLeaf,
    Tags,
    TierLeaf,
)

DAY = timedelta(days=1)
EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180.0
"""111.195 km per degree of latitude (and of longitude at the equator): the mean Earth radius."""

Path = list[str | int]

EXISTENCE: dict[tuple[str, int], bool] = {
    ("gte", 1): True,
    ("gt", 0): True,
    ("ne", 0): True,
    ("eq", 0): False,
    ("lt", 1): False,
    ("lte", 0): False,
}
"""Count conditions that only ask whether an event exists (``True``) or never happened (``False``)."""


@dataclass
class _Joins:
    """The sources a rule needs, in order: one-to-one tables once, grouped sources per leaf."""

    merchant_id: str
    only_member: str | None
    one_to_one: dict[str, Any] = field(default_factory=dict)
    grouped: list[tuple[FromClause, ColumnElement[bool]]] = field(default_factory=list)


def compile_rule(
    session: Session, merchant_id: str, rule: Rule, *, now: datetime, only_member: str | None = None
) -> Select[Any]:
    """The one-column ``SELECT`` of matching active member ids (see the module docstring)."""
    member = src.members_alias()
    joins = _Joins(merchant_id, only_member)
    compiler = _Compiler(session, merchant_id, now, member, joins)
    condition = compiler.rule(rule, [])
    statement = select(member.id.label("member_id")).select_from(member)
    for table, on in [*joins.one_to_one.values(), *joins.grouped]:
        statement = statement.outerjoin(table, on)
    statement = statement.where(member.merchant_id == merchant_id, member.status == src.ACTIVE, condition)
    if only_member is not None:
        statement = statement.where(member.id == only_member)
    return statement


def _compare(expr: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "eq":
        return expr == value  # type: ignore[no-any-return]
    if op == "ne":
        return expr != value  # type: ignore[no-any-return]
    if op == "gt":
        return expr > value  # type: ignore[no-any-return]
    if op == "gte":
        return expr >= value  # type: ignore[no-any-return]
    if op == "lt":
        return expr < value  # type: ignore[no-any-return]
    if op == "lte":
        return expr <= value  # type: ignore[no-any-return]
    raise AssertionError(op)  # pragma: no cover


def _known(expr: Any, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """A comparison on a missing value is false (never SQL's unknown), so ``not`` inverts it."""
    return and_(expr.is_not(None), condition)


class _Compiler:
    def __init__(self, session: Session, merchant_id: str, now: datetime, member: Any, joins: _Joins) -> None:
        self.session = session
        self.merchant_id = merchant_id
        self.now = now
        self.m = member
        self.joins = joins

    # ------------------------------------------------------------ structure

    def rule(self, rule: Rule, path: Path) -> ColumnElement[bool]:
        if isinstance(rule, AllOf):
            return and_(true(), *(self.rule(c, [*path, "and", i]) for i, c in enumerate(rule.children)))
        if isinstance(rule, AnyOf):
            return or_(false(), *(self.rule(c, [*path, "or", i]) for i, c in enumerate(rule.children)))
        if isinstance(rule, Not):
            return not_(self.rule(rule.child, [*path, "not"]))
        assert isinstance(rule, LeafNode)
        return self.leaf(rule, [*path, rule.kind])

    def leaf(self, node: LeafNode, path: Path) -> ColumnElement[bool]:
        leaf = node.leaf
        if isinstance(leaf, Attribute):
            return self.attribute(leaf)
        if isinstance(leaf, Tags):
            return self.tags(leaf)
        if isinstance(leaf, StageLeaf):
            stage = self.one_to_one("stage")
            return _known(stage.stage, stage.stage.in_([s.value for s in leaf.in_]))
        if isinstance(leaf, TierLeaf):
            return self.tier(leaf, path)
        if isinstance(leaf, Points):
            balance = func.coalesce(self.one_to_one("points").balance, 0)
            return _compare(balance, leaf.op, leaf.value)
        if isinstance(leaf, Rfm):
            return self.rfm(leaf)
        if isinstance(leaf, Behaviour):
            return self.behaviour(leaf)
        if isinstance(leaf, CouponLeaf):
            return self.coupon(leaf)
        if isinstance(leaf, Near):
            return self.near(leaf, path)
        if isinstance(leaf, Reachable):
            return self.reachable(leaf)
        if isinstance(leaf, Score):
            return self.score(leaf)
        raise AssertionError(node.kind)  # pragma: no cover

    # ------------------------------------------------------------ sources

    def one_to_one(self, name: str) -> Any:
        """A table with at most one row per member, LEFT JOINed once whatever the rule's size."""
        if name not in self.joins.one_to_one:
            table = src.one_to_one(name)
            on = and_(table.merchant_id == self.merchant_id, table.member_id == self.m.id)
            self.joins.one_to_one[name] = (table, on)
        return self.joins.one_to_one[name][0]

    def grouped(self, statement: Any, member_column: Any) -> Any:
        """A per-member aggregate (``member_id``, …) LEFT JOINed under its own alias."""
        if self.joins.only_member is not None:
            statement = statement.where(member_column == self.joins.only_member)
        sub = statement.subquery(f"s{len(self.joins.grouped) + 1}")
        self.joins.grouped.append((sub, sub.c.member_id == self.m.id))
        return sub

    def exists(self, statement: Select[Any]) -> ColumnElement[bool]:
        """A correlated ``EXISTS`` (already restricted to ``m.id``): PostgreSQL plans it as a
        semi/anti-join or a hashed sub-plan, SQLite as an index probe per candidate member."""
        return statement.exists()

    def window(self, column: Any, within_days: int | None) -> list[ColumnElement[bool]]:
        """``now − D·24 h ≤ t ≤ now`` (no lower bound without ``within_days``)."""
        conditions = [column <= self.now]
        if within_days is not None:
            conditions.append(column >= self.now - within_days * DAY)
        return conditions

    # ------------------------------------------------------------ leaves

    def attribute(self, leaf: Attribute) -> ColumnElement[bool]:
        kind = FIELD_KINDS[leaf.field]
        expr: Any
        if leaf.field is AttributeField.CREATED_AT:
            expr = self.m.created_at
        elif leaf.field is AttributeField.BIRTHDAY_MONTH:
            expr = cast(func.substr(self.m.birthday, 1, 2), Integer)
        else:
            expr = getattr(self.one_to_one("rollup"), leaf.field.value)
            if kind is FieldKind.NUMBER:
                expr = func.coalesce(expr, 0)  # no rollup yet: nothing counted
        op, value = leaf.op, leaf.value
        if op is Op.EXISTS:
            return expr.is_not(None) if value else expr.is_(None)  # type: ignore[no-any-return]
        if op is Op.IN:
            assert isinstance(value, list)
            return _known(expr, expr.in_(value))
        if op is Op.WITHIN_DAYS:
            assert isinstance(value, int)
            return _known(expr, and_(*self.window(expr, value)))
        if op is Op.OLDER_THAN_DAYS:
            assert isinstance(value, int)
            return _known(expr, expr < self.now - value * DAY)
        return _known(expr, _compare(expr, op.value, value))

    def tags(self, leaf: Tags) -> ColumnElement[bool]:
        wanted = sorted(set(leaf.any or leaf.all or leaf.none or []))
        tag = src.MemberTag
        if leaf.all is None:
            found = self.exists(
                select(tag.member_id).where(
                    tag.merchant_id == self.merchant_id, tag.member_id == self.m.id, tag.tag.in_(wanted)
                )
            )
            return found if leaf.any is not None else not_(found)
        sub = self.grouped(
            select(tag.member_id.label("member_id"), func.count().label("n"))
            .where(tag.merchant_id == self.merchant_id, tag.tag.in_(wanted))
            .group_by(tag.member_id),
            tag.member_id,
        )
        return func.coalesce(sub.c.n, 0) == len(wanted)

    def tier(self, leaf: TierLeaf, path: Path) -> ColumnElement[bool]:
        ladder = src.tiers_of(self.session, self.merchant_id)  # [(id, name, rank)], by rank
        by_key = {t[0]: t[0] for t in ladder} | {t[1]: t[0] for t in ladder}
        wanted: list[str] = []
        for i, key in enumerate(leaf.in_):
            if key not in by_key:
                raise RuleInvalid(json_pointer([*path, "in", i]), f"no tier {key!r} (give a tier id or name)")
            wanted.append(by_key[key])
        entry = ladder[0][0] if ladder else None
        row = self.one_to_one("tier")
        effective = case((row.member_id.is_(None), literal(entry)), else_=row.tier_id)
        return _known(effective, effective.in_(sorted(set(wanted))))

    def rfm(self, leaf: Rfm) -> ColumnElement[bool]:
        rollup = self.one_to_one("rollup")
        if leaf.measure is RfmMeasure.FREQUENCY:
            return _compare(func.coalesce(rollup.order_count, 0), leaf.op, leaf.value)
        if leaf.measure is RfmMeasure.MONETARY_FEN:
            return _compare(func.coalesce(rollup.total_spend_fen, 0), leaf.op, leaf.value)
        # recency_days = ⌊(now − last_order_at) / 24 h⌋, as bounds on last_order_at
        t, n = rollup.last_order_at, leaf.value
        at_least = {"gte": n, "gt": n + 1}.get(leaf.op)
        below = {"lte": n + 1, "lt": n}.get(leaf.op)
        if leaf.op in ("eq", "ne"):
            exact = and_(t <= self.now - n * DAY, t > self.now - (n + 1) * DAY)
            return _known(t, exact if leaf.op == "eq" else not_(exact))
        if at_least is not None:
            return _known(t, t <= self.now - at_least * DAY)
        assert below is not None
        return _known(t, t > self.now - below * DAY)

    def behaviour(self, leaf: Behaviour) -> ColumnElement[bool]:
        event = src.Event
        conditions = [event.merchant_id == self.merchant_id, event.type == leaf.event]
        conditions += self.window(event.occurred_at, leaf.within_days)
        if leaf.store_id is not None:
            conditions.append(event.store_id == leaf.store_id)
        if leaf.channel is not None:
            conditions.append(event.channel == leaf.channel)
        existence = EXISTENCE.get((leaf.op, leaf.count))
        if existence is not None:  # "at least once" / "never": no count needed
            found = self.exists(select(event.member_id).where(*conditions, event.member_id == self.m.id))
            return found if existence else not_(found)
        sub = self.grouped(
            select(event.member_id.label("member_id"), func.count().label("n"))
            .where(*conditions)
            .group_by(event.member_id),
            event.member_id,
        )
        return _compare(func.coalesce(sub.c.n, 0), leaf.op, leaf.count)

    def coupon(self, leaf: CouponLeaf) -> ColumnElement[bool]:
        coupon = src.Coupon
        conditions = [
            coupon.merchant_id == self.merchant_id,
            *self.window(coupon.issued_at, leaf.within_days),
        ]
        if leaf.template_id is not None:
            conditions.append(coupon.template_id == leaf.template_id)
        if leaf.state is CouponState.REDEEMED:
            conditions.append(coupon.status == src.REDEEMED)
        elif leaf.state is CouponState.UNREDEEMED:
            conditions.append(coupon.status != src.REDEEMED)
        return self.exists(select(coupon.member_id).where(*conditions, coupon.member_id == self.m.id))

    def near(self, leaf: Near, path: Path) -> ColumnElement[bool]:
        stores = src.stores_with_location(self.session, self.merchant_id)  # id → (lat, lon, open)
        if leaf.store_id is not None:
            found = stores.get(leaf.store_id)
            if found is None:
                raise RuleInvalid(
                    json_pointer([*path, "store_id"]), f"no store {leaf.store_id!r} with a location"
                )
            centres = [found[:2]]
        else:
            centres = [(lat, lon) for lat, lon, is_open in stores.values() if is_open]
        if not centres:
            return false()
        location = self.one_to_one("location")
        return or_(*(within_km(location.latitude, location.longitude, c, leaf.km) for c in centres))

    def reachable(self, leaf: Reachable) -> ColumnElement[bool]:
        statement, member_column = src.reachable_ids(
            self.merchant_id,
            None if leaf.channel is ReachChannelName.ANY else leaf.channel.value,
            leaf.target,
        )
        return self.exists(statement.where(member_column == self.m.id))

    def score(self, leaf: Score) -> ColumnElement[bool]:
        scores = src.MemberScore
        sub = self.grouped(
            select(scores.member_id.label("member_id"), scores.score.label("score")).where(
                scores.merchant_id == self.merchant_id, scores.model == leaf.model
            ),
            scores.member_id,
        )
        return _known(sub.c.score, _compare(sub.c.score, leaf.op, leaf.value))


def within_km(lat: Any, lon: Any, centre: Sequence[float], km: float) -> ColumnElement[bool]:
    """Equirectangular distance from a constant centre, arithmetic only (both engines).

    ``dy = (lat − φ)·K``, ``dx = (lon − λ)·K·cos φ`` with ``K`` km per degree; inside when
    ``dx² + dy² ≤ km²``. A bounding box (1 ‰ wider, so it never decides) lets the engine skip
    the arithmetic for far rows. Good to well under 1 % at city distances (see docs/segments.md).
    """
    phi, lam = float(centre[0]), float(centre[1])
    ky = KM_PER_DEGREE
    kx = KM_PER_DEGREE * math.cos(math.radians(phi))
    dlat = km / ky * 1.001
    dlon = km / max(kx, 1e-9) * 1.001
    dy = (lat - phi) * ky
    dx = (lon - lam) * kx
    return and_(
        lat.is_not(None),
        lon.is_not(None),
        lat.between(phi - dlat, phi + dlat),
        lon.between(lam - dlon, lam + dlon),
        dx * dx + dy * dy <= km * km,
    )
