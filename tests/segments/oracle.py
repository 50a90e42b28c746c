"""A slow reference evaluator of segment rules, written from docs/segments.md alone.

It walks a rule's JSON and a generated world of plain Python objects, one member at a time.
It shares no code with :mod:`siyu.segments` (not its parser, not its compiler): the property
test compares the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DAY = timedelta(days=1)
KM_PER_DEGREE = 6371.0088 * math.pi / 180.0


@dataclass
class WMember:
    id: str
    status: str
    created_at: datetime
    birthday: str | None = None
    rollup: dict[str, Any] | None = None
    tags: set[str] = field(default_factory=set)
    stage_row: bool = False
    stage: str | None = None
    tier_row: bool = False
    tier_id: str | None = None
    points: int | None = None
    phone: bool = False
    location: tuple[float, float] | None = None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class WEvent:
    member_id: str
    type: str
    occurred_at: datetime
    store_id: str | None
    channel: str | None


@dataclass
class WCoupon:
    member_id: str
    template_id: str
    status: str
    issued_at: datetime


@dataclass
class WReach:
    member_id: str
    channel: str
    target: str
    active: bool
    remaining: int


@dataclass
class WStore:
    id: str
    latitude: float
    longitude: float
    open: bool


@dataclass
class WTier:
    id: str
    name: str
    rank: int


@dataclass
class World:
    members: list[WMember]
    events: list[WEvent]
    coupons: list[WCoupon]
    reach: list[WReach]
    stores: list[WStore]
    tiers: list[WTier]


NUMBER_FIELDS = {"order_count", "total_spend_fen", "refund_count", "refund_fen", "visit_count"}


def matching(world: World, rule: dict[str, Any], now: datetime) -> set[str]:
    return {m.id for m in world.members if m.status == "active" and holds(world, m, rule, now)}


def holds(world: World, m: WMember, rule: dict[str, Any], now: datetime) -> bool:
    ((kind, body),) = rule.items()
    if kind == "and":
        return all(holds(world, m, r, now) for r in body)
    if kind == "or":
        return any(holds(world, m, r, now) for r in body)
    if kind == "not":
        return not holds(world, m, body, now)
    return LEAVES[kind](world, m, body, now)


def compare(left: Any, op: str, right: Any) -> bool:
    return {
        "eq": left == right,
        "ne": left != right,
        "gt": left > right,
        "gte": left >= right,
        "lt": left < right,
        "lte": left <= right,
    }[op]


def value_of(m: WMember, name: str) -> Any:
    if name == "created_at":
        return m.created_at
    if name == "birthday_month":
        return int(m.birthday[:2]) if m.birthday else None
    if name in NUMBER_FIELDS:
        return (m.rollup or {}).get(name, 0)
    return (m.rollup or {}).get(name)


def to_time(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) and "T" in value else value


def attribute(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    have, op, want = value_of(m, body["field"]), body["op"], body.get("value")
    if op == "exists":
        return (have is not None) == want
    if have is None:
        return False
    if op == "in":
        return have in want
    if op == "within_days":
        return now - want * DAY <= have <= now
    if op == "older_than_days":
        return have < now - want * DAY
    return compare(have, op, to_time(want))


def tags(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    if "any" in body:
        return bool(m.tags & set(body["any"]))
    if "all" in body:
        return set(body["all"]) <= m.tags
    return not (m.tags & set(body["none"]))


def stage(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    return m.stage_row and m.stage is not None and m.stage in body["in"]


def tier(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    ladder = sorted(world.tiers, key=lambda t: t.rank)
    wanted = {t.id for t in ladder for key in body["in"] if key in (t.id, t.name)}
    effective = m.tier_id if m.tier_row else (ladder[0].id if ladder else None)
    return effective is not None and effective in wanted


def points(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    return compare(m.points if m.points is not None else 0, body["op"], body["value"])


def rfm(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    rollup = m.rollup or {}
    if body["measure"] == "frequency":
        return compare(rollup.get("order_count", 0), body["op"], body["value"])
    if body["measure"] == "monetary_fen":
        return compare(rollup.get("total_spend_fen", 0), body["op"], body["value"])
    last = rollup.get("last_order_at")
    if last is None:
        return False
    days = (now - last) // DAY
    return compare(days, body["op"], body["value"])


def in_window(at: datetime, now: datetime, days: int | None) -> bool:
    return at <= now and (days is None or at >= now - days * DAY)


def behaviour(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    n = sum(
        1
        for e in world.events
        if e.member_id == m.id
        and e.type == body["event"]
        and in_window(e.occurred_at, now, body.get("within_days"))
        and (body.get("store_id") is None or e.store_id == body["store_id"])
        and (body.get("channel") is None or e.channel == body["channel"])
    )
    return compare(n, body.get("op", "gte"), body.get("count", 1))


def coupon(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    state = body.get("state", "claimed")
    for c in world.coupons:
        if c.member_id != m.id or not in_window(c.issued_at, now, body.get("within_days")):
            continue
        if body.get("template_id") is not None and c.template_id != body["template_id"]:
            continue
        if state == "claimed" or (state == "redeemed") == (c.status == "redeemed"):
            return True
    return False


def distance_ok(here: tuple[float, float], store: WStore, km: float) -> bool:
    dy = (here[0] - store.latitude) * KM_PER_DEGREE
    dx = (here[1] - store.longitude) * (KM_PER_DEGREE * math.cos(math.radians(store.latitude)))
    return dx * dx + dy * dy <= km * km


def near(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    if m.location is None:
        return False
    if body.get("store_id") is not None:
        stores = [s for s in world.stores if s.id == body["store_id"]]
    else:
        stores = [s for s in world.stores if s.open]
    return any(distance_ok(m.location, s, body["km"]) for s in stores)


def reachable(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    channel, target = body.get("channel", "any"), body.get("target")
    for r in world.reach:
        if r.member_id != m.id:
            continue
        if channel != "any" and r.channel != channel:
            continue
        if target is not None and r.target != target:
            continue
        if r.channel == "subscription" and (r.active or r.remaining > 0):
            return True
        if r.channel == "sms" and r.active and m.phone:
            return True
        if r.channel in ("life_account", "mini_program", "guide") and r.active:
            return True
    return False


def score(world: World, m: WMember, body: dict[str, Any], now: datetime) -> bool:
    have = m.scores.get(body["model"])
    return have is not None and compare(have, body["op"], body["value"])


LEAVES = {
    "attribute": attribute,
    "tags": tags,
    "stage": stage,
    "tier": tier,
    "points": points,
    "rfm": rfm,
    "behaviour": behaviour,
    "coupon": coupon,
    "near": near,
    "reachable": reachable,
    "score": score,
}
