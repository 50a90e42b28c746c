"""Building blocks of the coupons tests: members, templates and API calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from siyu.coupons.models import Coupon, CouponClaimCount, CouponStockBucket
from siyu.db import Database
from siyu.kit.ids import IdKind, new_id
from siyu.members.models import Member
from tests.conftest import Tenant

API = "/api/v1"


def make_members(db: Database, merchant_id: str, count: int) -> list[str]:
    now = datetime.now(UTC)
    ids = [new_id(IdKind.MEMBER) for _ in range(count)]
    with db.unit_of_work() as session:
        session.execute(
            insert(Member),
            [
                {
                    "merchant_id": merchant_id,
                    "id": i,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in ids
            ],
        )
    return ids


def make_template(
    client: TestClient, tenant: Tenant, *, activate: bool = True, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "立减 10 元",
        "kind": "cash",
        "value_fen": 1000,
        "total_stock": 100,
        "valid_days": 30,
    }
    body.update(fields)
    created = client.post(f"{API}/coupon-templates", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    template: dict[str, Any] = created.json()
    if activate:
        answer = client.post(f"{API}/coupon-templates/{template['id']}/activate", headers=tenant.headers)
        assert answer.status_code == 200, answer.text
        template = answer.json()
    return template


def claim(client: TestClient, tenant: Tenant, template_id: str, member_id: str, **extra: Any) -> Any:
    return client.post(
        f"{API}/coupon-templates/{template_id}/claims",
        json={"member_id": member_id, **extra},
        headers=tenant.headers,
    )


def claimed(
    client: TestClient, tenant: Tenant, template_id: str, member_id: str, **extra: Any
) -> dict[str, Any]:
    response = claim(client, tenant, template_id, member_id, **extra)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def redeem(client: TestClient, tenant: Tenant, **body: Any) -> Any:
    return client.post(f"{API}/redemptions", json=body, headers=tenant.headers)


def template(client: TestClient, tenant: Tenant, template_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/coupon-templates/{template_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def coupon(client: TestClient, tenant: Tenant, id_or_code: str) -> dict[str, Any]:
    response = client.get(f"{API}/coupons/{id_or_code}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def stock_state(db: Database, merchant_id: str, template_id: str) -> tuple[int, int, int]:
    """(coupons issued, Σ bucket remaining, lowest bucket) read from the database."""
    with db.reading() as session:
        issued = session.scalar(
            select(func.count()).where(Coupon.merchant_id == merchant_id, Coupon.template_id == template_id)
        )
        remaining, lowest = session.execute(
            select(func.sum(CouponStockBucket.remaining), func.min(CouponStockBucket.remaining)).where(
                CouponStockBucket.merchant_id == merchant_id, CouponStockBucket.template_id == template_id
            )
        ).one()
    return int(issued or 0), int(remaining or 0), int(lowest or 0)


def claim_counts(db: Database, merchant_id: str, member_id: str) -> dict[tuple[str, str], int]:
    with db.reading() as session:
        rows = session.execute(
            select(CouponClaimCount.template_id, CouponClaimCount.period_key, CouponClaimCount.claimed).where(
                CouponClaimCount.merchant_id == merchant_id, CouponClaimCount.member_id == member_id
            )
        ).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}
