"""Building blocks of the tier tests: a merchant with a ladder, members, orders at given times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from siyu.db import Database
from siyu.kit.ids import IdKind, new_id
from siyu.kit.orders import OrderFact, OrderFactKind
from siyu.members.models import Member
from siyu.tenancy import facade as tenancy
from siyu.tiers import facade, membership
from siyu.tiers.facade import TierView

T0 = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)


def make_merchant(db: Database, timezone: str = "Asia/Shanghai", **settings: Any) -> str:
    with db.unit_of_work() as session:
        merchant_id = tenancy.create_merchant(session, name="等级", timezone=timezone).id
        if settings:
            membership.put_settings(session, merchant_id, settings, now=T0)
    return merchant_id


def make_ladder(db: Database, merchant_id: str, *tiers: dict[str, Any]) -> dict[str, str]:
    """Tiers by name → id. Default: 普卡 0, 银卡 1 000 (1.2×), 金卡 5 000 (1.5×)."""
    tiers = tiers or (
        {"name": "普卡", "rank": 0, "threshold": 0},
        {"name": "银卡", "rank": 1, "threshold": 1_000, "points_multiplier_bp": 12_000},
        {"name": "金卡", "rank": 2, "threshold": 5_000, "points_multiplier_bp": 15_000},
    )
    with db.unit_of_work() as session:
        return {t["name"]: membership.create_tier(session, merchant_id, t, now=T0).id for t in tiers}


def make_member(db: Database, merchant_id: str, birthday: str | None = None) -> str:
    member_id = new_id(IdKind.MEMBER)
    with db.unit_of_work() as session:
        session.add(
            Member(
                merchant_id=merchant_id,
                id=member_id,
                status="active",
                birthday=birthday,
                created_at=T0,
                updated_at=T0,
            )
        )
    return member_id


def paid(member_id: str, order_id: str, amount_fen: int, at: datetime) -> OrderFact:
    return OrderFact(OrderFactKind.PAID, member_id, order_id, f"ev-{order_id}", amount_fen, at)


def refunded(member_id: str, order_id: str, event_id: str, amount_fen: int, at: datetime) -> OrderFact:
    return OrderFact(OrderFactKind.REFUNDED, member_id, order_id, event_id, amount_fen, at)


def record(db: Database, merchant_id: str, *facts: OrderFact, now: datetime | None = None) -> int:
    """Record orders as ingestion does (``now`` defaults to the latest fact's time)."""
    with db.unit_of_work() as session:
        return facade.record_orders(
            session,
            merchant_id,
            [f for f in facts if f.kind is OrderFactKind.PAID],
            [f for f in facts if f.kind is OrderFactKind.REFUNDED],
            now=now or max(f.occurred_at for f in facts),
        )


def tier_at(db: Database, merchant_id: str, member_id: str, now: datetime) -> TierView:
    with db.unit_of_work() as session:
        return facade.tier_of(session, merchant_id, member_id, now=now)


def name_at(db: Database, merchant_id: str, member_id: str, now: datetime) -> str | None:
    view = tier_at(db, merchant_id, member_id, now)
    return view.tier.name if view.tier else None


def run_jobs(db: Database, merchant_id: str, now: datetime) -> facade.JobReport:
    with db.unit_of_work() as session:
        return facade.run_due(session, merchant_id, now=now)


def history(db: Database, merchant_id: str, member_id: str) -> list[tuple[str, str]]:
    """(reason, to-tier id) oldest first."""
    with db.reading() as session:
        changes = facade.history_of(session, merchant_id, member_id, limit=100)
    return [(c.reason, c.to_tier_id or "") for c in reversed(changes)]
