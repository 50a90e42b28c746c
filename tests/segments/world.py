"""Generated merchants for the segment tests: hypothesis strategies for a world of members with
every fact a rule can read, and for random nested rules over that world's values; plus writing a
world into the database as ingestion and the other modules would have stored it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.orm import Session

from siyu.coupons.models import Coupon
from siyu.events.models import Event, MemberRollup
from siyu.kit.ids import IdKind, new_id
from siyu.lifecycle.models import MemberStage
from siyu.members.models import Member, MemberIdentity, MemberTag
from siyu.points.models import PointsAccount
from siyu.reachability.models import ReachState
from siyu.segments.models import MemberLocation, MemberScore
from siyu.tenancy import facade as tenancy
from siyu.tenancy.models import StoreStatus
from siyu.tiers.models import MemberTier, Tier
from tests.segments.oracle import WCoupon, WEvent, WMember, World, WReach, WStore, WTier

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TAGS = ["vip", "coffee", "tea", "新客"]
STAGES = ["stranger", "high_potential", "first_order", "repeat", "super", "dormant", "lost"]
EVENT_TYPES = ["order_paid", "visit", "custom.like"]
CHANNELS = ["alipay", "wechat"]
TEMPLATES = ["cpt_a", "cpt_b"]
TARGETS = ["tpl_a", "tpl_b"]
MODELS = ["clv", "churn_risk"]
TIER_NAMES = ["普卡", "银卡", "金卡"]
CENTRE = (31.2304, 121.4737)
KMS = [0.5, 1.0, 2.0, 3.5, 8.0]
DAYS = [0, 1, 7, 30, 90]

# ---------------------------------------------------------------- the world

hours = st.integers(min_value=-48, max_value=24 * 120)  # mostly in the past, a little in the future


def when(h: int, seconds: int = 0) -> datetime:
    return NOW - timedelta(hours=h, seconds=seconds)


@st.composite
def members(draw: st.DrawFn, index: int, store_ids: list[str], tier_ids: list[str]) -> WMember:
    status = draw(st.sampled_from(["active"] * 6 + ["merged", "erased"]))
    m = WMember(id=f"mbr_{index:03d}", status=status, created_at=when(draw(hours), draw(st.integers(0, 59))))
    m.birthday = draw(
        st.none() | st.builds(lambda mo, d: f"{mo:02d}-{d:02d}", st.integers(1, 12), st.integers(1, 28))
    )
    if draw(st.booleans()):
        first_seen = when(draw(hours))
        orders = draw(st.integers(0, 5))
        m.rollup = {
            "first_seen_at": first_seen,
            "last_seen_at": max(first_seen, when(draw(hours))),
            "first_order_at": when(draw(hours)) if orders else None,
            "last_order_at": when(draw(hours), draw(st.integers(0, 3599))) if orders else None,
            "order_count": orders,
            "total_spend_fen": orders * draw(st.integers(0, 20_000)),
            "refund_count": draw(st.integers(0, 2)),
            "refund_fen": draw(st.integers(0, 5_000)),
            "visit_count": draw(st.integers(0, 9)),
            "last_channel": draw(st.none() | st.sampled_from(CHANNELS)),
            "last_store_id": draw(st.none() | st.sampled_from(store_ids)),
            "acquisition_channel": draw(st.none() | st.sampled_from(CHANNELS)),
            "acquisition_store_id": draw(st.none() | st.sampled_from(store_ids)),
            "acquisition_campaign": draw(st.none() | st.sampled_from(["spring", "618"])),
            "acquisition_referrer": None,
        }
    m.tags = set(draw(st.lists(st.sampled_from(TAGS), max_size=3)))
    m.stage_row = draw(st.booleans())
    m.stage = draw(st.none() | st.sampled_from(STAGES)) if m.stage_row else None
    m.tier_row = draw(st.booleans())
    m.tier_id = draw(st.none() | st.sampled_from(tier_ids)) if m.tier_row and tier_ids else None
    m.points = draw(st.none() | st.integers(-50, 600))
    m.phone = draw(st.booleans())
    if draw(st.booleans()):
        m.location = (
            CENTRE[0] + draw(st.integers(-900, 900)) * 0.0001 + 0.00003,
            CENTRE[1] + draw(st.integers(-900, 900)) * 0.0001 + 0.00007,
        )
    m.scores = draw(
        st.dictionaries(st.sampled_from(MODELS), st.integers(0, 100).map(lambda x: x / 100 + 0.005))
    )
    return m


@st.composite
def worlds(draw: st.DrawFn) -> World:
    stores = [
        WStore("str_near", CENTRE[0], CENTRE[1], True),
        WStore("str_east", CENTRE[0] + 0.01, CENTRE[1] + 0.05, draw(st.booleans())),
    ]
    tiers = [WTier(f"tir_{i}", name, i) for i, name in enumerate(TIER_NAMES)] if draw(st.booleans()) else []
    store_ids = [s.id for s in stores]
    people = [
        draw(members(i, store_ids, [t.id for t in tiers]))
        for i in range(draw(st.integers(min_value=2, max_value=12)))
    ]
    ids = [m.id for m in people]
    events = draw(
        st.lists(
            st.builds(
                WEvent,
                st.sampled_from(ids),
                st.sampled_from(EVENT_TYPES),
                st.builds(when, hours, st.integers(0, 3599)),
                st.none() | st.sampled_from(store_ids),
                st.none() | st.sampled_from(CHANNELS),
            ),
            max_size=25,
        )
    )
    coupons = draw(
        st.lists(
            st.builds(
                WCoupon,
                st.sampled_from(ids),
                st.sampled_from(TEMPLATES),
                st.sampled_from(["available", "redeemed", "expired", "void"]),
                st.builds(when, hours),
            ),
            max_size=8,
        )
    )
    reach = draw(
        st.lists(
            st.one_of(
                st.builds(
                    WReach,
                    st.sampled_from(ids),
                    st.just("subscription"),
                    st.sampled_from(TARGETS),
                    st.booleans(),
                    st.integers(0, 2),
                ),
                st.builds(
                    WReach,
                    st.sampled_from(ids),
                    st.sampled_from(["sms", "guide", "mini_program"]),
                    st.just(""),
                    st.booleans(),
                    st.just(0),
                ),
                st.builds(
                    WReach,
                    st.sampled_from(ids),
                    st.just("life_account"),
                    st.just(""),
                    st.booleans(),
                    st.just(0),
                ),
            ),
            max_size=10,
            unique_by=lambda r: (r.member_id, r.channel, r.target),
        )
    )
    return World(people, events, coupons, reach, stores, tiers)


# ---------------------------------------------------------------- rules


def _cmp() -> st.SearchStrategy[str]:
    return st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"])


def _iso(h: int) -> str:
    return when(h).isoformat()


attribute_leaves = st.one_of(
    st.builds(
        lambda f, op, v: {"attribute": {"field": f, "op": op, "value": v}},
        st.sampled_from(["order_count", "total_spend_fen", "refund_count", "visit_count", "refund_fen"]),
        _cmp(),
        st.sampled_from([0, 1, 2, 3, 5000]),
    ),
    st.builds(
        lambda f, v: {"attribute": {"field": f, "op": "in", "value": v}},
        st.sampled_from(["order_count", "birthday_month"]),
        st.lists(st.integers(0, 12), min_size=1, max_size=3),
    ),
    st.builds(
        lambda f, op, v: {"attribute": {"field": f, "op": op, "value": v}},
        st.sampled_from(["last_channel", "acquisition_channel", "last_store_id", "acquisition_campaign"]),
        st.sampled_from(["eq", "ne"]),
        st.sampled_from(["alipay", "wechat", "str_near", "spring"]),
    ),
    st.builds(
        lambda f, v: {"attribute": {"field": f, "op": "exists", "value": v}},
        st.sampled_from(["birthday_month", "last_channel", "first_order_at", "order_count"]),
        st.booleans(),
    ),
    st.builds(
        lambda f, op, v: {"attribute": {"field": f, "op": op, "value": v}},
        st.sampled_from(["created_at", "first_seen_at", "last_seen_at", "first_order_at", "last_order_at"]),
        st.sampled_from(["within_days", "older_than_days"]),
        st.sampled_from(DAYS),
    ),
    st.builds(
        lambda f, op, v: {"attribute": {"field": f, "op": op, "value": v}},
        st.sampled_from(["created_at", "last_order_at", "last_seen_at"]),
        st.sampled_from(["gt", "gte", "lt", "lte"]),
        st.builds(_iso, hours),
    ),
)

leaves = st.one_of(
    attribute_leaves,
    st.builds(
        lambda k, v: {"tags": {k: v}},
        st.sampled_from(["any", "all", "none"]),
        st.lists(st.sampled_from(TAGS), min_size=1, max_size=3),
    ),
    st.builds(
        lambda v: {"stage": {"in": v}}, st.lists(st.sampled_from(STAGES), min_size=1, max_size=3, unique=True)
    ),
    st.builds(lambda op, v: {"points": {"op": op, "value": v}}, _cmp(), st.sampled_from([0, 1, 100, 500])),
    st.builds(
        lambda m, op, v: {"rfm": {"measure": m, "op": op, "value": v}},
        st.sampled_from(["recency_days", "frequency", "monetary_fen"]),
        _cmp(),
        st.sampled_from([0, 1, 2, 3, 7, 30, 20_000]),
    ),
    st.builds(
        lambda e, op, n, d, s, c: {
            "behaviour": {
                k: v
                for k, v in {
                    "event": e,
                    "op": op,
                    "count": n,
                    "within_days": d,
                    "store_id": s,
                    "channel": c,
                }.items()
                if v is not None
            }
        },
        st.sampled_from(EVENT_TYPES),
        _cmp(),
        st.integers(0, 3),
        st.none() | st.sampled_from(DAYS),
        st.none() | st.sampled_from(["str_near", "str_east"]),
        st.none() | st.sampled_from(CHANNELS),
    ),
    st.builds(
        lambda t, s, d: {
            "coupon": {
                k: v for k, v in {"template_id": t, "state": s, "within_days": d}.items() if v is not None
            }
        },
        st.none() | st.sampled_from(TEMPLATES),
        st.sampled_from(["claimed", "redeemed", "unredeemed"]),
        st.none() | st.sampled_from(DAYS),
    ),
    st.builds(
        lambda s, km: {"near": {k: v for k, v in {"store_id": s, "km": km}.items() if v is not None}},
        st.none() | st.sampled_from(["str_near", "str_east"]),
        st.sampled_from(KMS),
    ),
    st.one_of(
        st.just({"reachable": {"channel": "any"}}),
        st.builds(
            lambda c: {"reachable": {"channel": c}},
            st.sampled_from(["subscription", "sms", "guide", "mini_program", "life_account"]),
        ),
        st.builds(
            lambda t: {"reachable": {"channel": "subscription", "target": t}}, st.sampled_from(TARGETS)
        ),
    ),
    st.builds(
        lambda m, op, v: {"score": {"model": m, "op": op, "value": v}},
        st.sampled_from(MODELS),
        _cmp(),
        st.sampled_from([0.0, 0.3, 0.5, 0.9]),
    ),
)

tier_leaves = st.builds(
    lambda v: {"tier": {"in": v}},
    st.lists(st.sampled_from([*TIER_NAMES, "tir_0", "tir_2"]), min_size=1, max_size=2),
)

rules = st.recursive(
    leaves | tier_leaves,
    lambda children: st.one_of(
        st.builds(lambda xs: {"and": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda xs: {"or": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, children),
    ),
    max_leaves=6,
)


def uses_tier(rule: Any) -> bool:
    if isinstance(rule, dict):
        return "tier" in rule or any(uses_tier(v) for v in rule.values())
    if isinstance(rule, list):
        return any(uses_tier(v) for v in rule)
    return False


# ---------------------------------------------------------------- into the database


def seed(session: Session, world: World) -> tuple[str, dict[str, str]]:
    """Write the world under a new merchant; answers the merchant id and world id → stored id
    (member ids are fresh per merchant so examples never collide)."""
    merchant_id = tenancy.create_merchant(session, name="人群").id
    ids = {m.id: new_id(IdKind.MEMBER) for m in world.members}
    stores = {}
    for s in world.stores:
        view = tenancy.create_store(
            session, merchant_id, name=s.id, latitude=s.latitude, longitude=s.longitude
        )
        if not s.open:
            tenancy.update_store(session, merchant_id, view.id, status=StoreStatus.CLOSED)
        stores[s.id] = view.id
    ids.update(stores)

    def store(value: str | None) -> str | None:
        return stores.get(value, value) if value is not None else None

    for t in world.tiers:
        session.execute(
            insert(Tier).values(
                merchant_id=merchant_id,
                id=t.id,
                name=t.name,
                rank=t.rank,
                threshold=t.rank * 1000,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    rows: dict[Any, list[dict[str, Any]]] = {}

    def add(table: Any, **values: Any) -> None:
        rows.setdefault(table, []).append({"merchant_id": merchant_id, **values})

    for m in world.members:
        mid = ids[m.id]
        add(
            Member,
            id=mid,
            status=m.status,
            birthday=m.birthday,
            created_at=m.created_at,
            updated_at=m.created_at,
            merged_into_id=None,
        )
        if m.rollup is not None:
            values = dict(m.rollup)
            values["last_store_id"] = store(values["last_store_id"])
            values["acquisition_store_id"] = store(values["acquisition_store_id"])
            add(MemberRollup, member_id=mid, **values)
        for tag in m.tags:
            add(MemberTag, member_id=mid, tag=tag, created_at=NOW)
        if m.stage_row:
            add(MemberStage, member_id=mid, stage=m.stage, seq=1)
        if m.tier_row:
            add(MemberTier, member_id=mid, tier_id=m.tier_id, since=NOW, updated_at=NOW)
        if m.points is not None:
            add(PointsAccount, member_id=mid, balance=m.points, updated_at=NOW)
        if m.phone:
            add(
                MemberIdentity,
                kind="phone",
                blind_index=new_id(IdKind.MEMBER),
                member_id=mid,
                encrypted_value="x",
                masked_value="138****0000",
                source="test",
                first_seen_at=NOW,
            )
        if m.location is not None:
            add(
                MemberLocation,
                member_id=mid,
                latitude=m.location[0],
                longitude=m.location[1],
                at=NOW,
                source="event:x",
            )
        for model, value in m.scores.items():
            add(MemberScore, member_id=mid, model=model, score=value, computed_at=NOW)
    for i, e in enumerate(world.events):
        add(
            Event,
            event_id=f"ev-{i}",
            member_id=ids[e.member_id],
            type=e.type,
            occurred_at=e.occurred_at,
            received_at=NOW,
            channel=e.channel,
            store_id=store(e.store_id),
            amount_fen=100 if e.type == "order_paid" else None,
            properties={},
        )
    for i, c in enumerate(world.coupons):
        add(
            Coupon,
            id=f"cpn_{i}",
            template_id=c.template_id,
            member_id=ids[c.member_id],
            issued_to=ids[c.member_id],
            code=f"code{i}",
            status=c.status,
            source="api",
            source_ref=f"r{i}",
            valid_from=c.issued_at,
            valid_until=c.issued_at + timedelta(days=30),
            issued_at=c.issued_at,
            redeemed_at=c.issued_at if c.status == "redeemed" else None,
            updated_at=NOW,
        )
    for r in world.reach:
        add(
            ReachState,
            member_id=ids[r.member_id],
            channel=r.channel,
            target=r.target,
            active=r.active,
            remaining=r.remaining,
            source="test",
            updated_at=NOW,
        )
    for table in [Member, *[t for t in rows if t is not Member]]:
        if rows.get(table):
            session.execute(insert(table), rows[table])
    session.flush()
    return merchant_id, ids


def in_store_ids(rule: Any, ids: dict[str, str]) -> Any:
    """The rule with the world's store names replaced by the stored store ids."""
    if isinstance(rule, dict):
        return {k: in_store_ids(v, ids) for k, v in rule.items()}
    if isinstance(rule, list):
        return [in_store_ids(v, ids) for v in rule]
    if isinstance(rule, str) and rule.startswith("str_"):
        return ids[rule]
    return rule
