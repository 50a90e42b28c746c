"""Building blocks of the points tests: merchants, members, facts, direct service calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.db import Database
from siyu.kit.ids import IdKind, new_id
from siyu.kit.orders import OrderFact, OrderFactKind
from siyu.members.models import Member
from siyu.points import facade, rules, service
from siyu.points.models import PointsAccount, PointsEntry, PointsLot
from siyu.tenancy import facade as tenancy
from tests.conftest import Tenant

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def make_merchant(db: Database, timezone: str = "Asia/Shanghai") -> str:
    with db.unit_of_work() as session:
        return tenancy.create_merchant(session, name="积分", timezone=timezone).id


def make_member(db: Database, merchant_id: str) -> str:
    member_id = new_id(IdKind.MEMBER)
    with db.unit_of_work() as session:
        session.add(
            Member(merchant_id=merchant_id, id=member_id, status="active", created_at=T0, updated_at=T0)
        )
    return member_id


def paid(member_id: str, order_id: str, amount_fen: int, at: datetime = T0) -> OrderFact:
    return OrderFact(OrderFactKind.PAID, member_id, order_id, f"ev-{order_id}", amount_fen, at)


def refunded(member_id: str, order_id: str, event_id: str, amount_fen: int, at: datetime = T0) -> OrderFact:
    return OrderFact(OrderFactKind.REFUNDED, member_id, order_id, event_id, amount_fen, at)


def action(member_id: str, event_id: str, type_: str, at: datetime) -> facade.ActionFact:
    return facade.ActionFact(member_id, event_id, type_, at)


def earn(db: Database, merchant_id: str, *orders: OrderFact, bp: dict[str, int] | None = None) -> None:
    with db.unit_of_work() as session:
        facade.earn_for_orders(session, merchant_id, list(orders), multipliers_bp=bp or {}, now=T0)


def refund(db: Database, merchant_id: str, *refunds: OrderFact) -> None:
    with db.unit_of_work() as session:
        facade.reverse_for_refunds(session, merchant_id, list(refunds), now=T0)


def adjust(db: Database, merchant_id: str, member_id: str, points: int, key: str | None = None) -> None:
    with db.unit_of_work() as session:
        service.adjust(
            session,
            merchant_id,
            member_id,
            points=points,
            reason="test",
            key=key or new_id(IdKind.POINTS_ENTRY),
            source="test",
            now=T0,
        )


def settings(db: Database, merchant_id: str, **values: Any) -> None:
    with db.unit_of_work() as session:
        service.save_settings(session, merchant_id, rules.Settings(**values), now=T0)


def balance(db: Database, merchant_id: str, member_id: str) -> int:
    with db.reading() as session:
        return facade.balance_of(session, merchant_id, member_id, now=T0).balance


def entries(db: Database, merchant_id: str, member_id: str | None = None) -> list[PointsEntry]:
    with db.reading() as session:
        statement = select(PointsEntry).where(PointsEntry.merchant_id == merchant_id).order_by(PointsEntry.id)
        if member_id:
            statement = statement.where(PointsEntry.member_id == member_id)
        return list(session.execute(statement).scalars())


def ledger_totals(db: Database, merchant_id: str, member_id: str) -> tuple[int, int, int, int]:
    """``(account balance, sum of entries, sum of lot remainders, lowest lot remainder)``."""
    with db.reading() as session:
        account = session.execute(
            select(PointsAccount.balance).where(
                PointsAccount.merchant_id == merchant_id, PointsAccount.member_id == member_id
            )
        ).scalar_one_or_none()
        total = session.execute(
            select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
                PointsEntry.merchant_id == merchant_id, PointsEntry.member_id == member_id
            )
        ).scalar_one()
        lots = session.execute(
            select(
                func.coalesce(func.sum(PointsLot.remaining), 0),
                func.coalesce(func.min(PointsLot.remaining), 0),
            ).where(PointsLot.merchant_id == merchant_id, PointsLot.member_id == member_id)
        ).one()
    return int(account or 0), int(total), int(lots[0]), int(lots[1])


def days(n: int) -> timedelta:
    return timedelta(days=n)


# ---------------------------------------------------------------- API


def api_member(client: TestClient, tenant: Tenant, identity: str = "13800138000") -> str:
    """A member created through event ingestion (the way members really come to be)."""
    event = {
        "event_id": f"reg-{identity}",
        "type": "visit",
        "occurred_at": T0.isoformat(),
        "identities": {"phone": identity},
        "properties": {},
    }
    response = client.post("/api/v1/events/batch", json={"events": [event]}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["results"][0]["member_id"])


def post(client: TestClient, tenant: Tenant, path: str, body: dict[str, Any]) -> Any:
    return client.post(f"/api/v1{path}", json=body, headers=tenant.headers)


def get(client: TestClient, tenant: Tenant, path: str) -> Any:
    return client.get(f"/api/v1{path}", headers=tenant.headers)
