"""Funnels on the fixed world (tests/analytics/worth_world.py), state store and DuckDB."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.analytics.metrics import funnels
from siyu.analytics.scope import Scope
from siyu.db import Database
from tests.analytics.worth_world import API, World, build, engines
from tests.conftest import Tenant

NOVEMBER = Scope(date(2025, 11, 1), date(2025, 11, 30))


@pytest.fixture
def world(client: TestClient, db: Database, tenant: Tenant) -> World:
    return build(client, db, tenant)


def _counts(db: Database, world: World, steps: list[str], window: int, scope: Scope = NOVEMBER) -> list[int]:
    with engines(db, world.merchant_id) as pairs:
        views = [
            funnels.funnel_view(steps, window, run(funnels.funnel(rel, scope, steps, window)))
            for _, rel, run in pairs
        ]
    assert views[0] == views[1]
    return [s.members for s in views[0].steps]


class TestFunnel:
    @pytest.mark.parametrize(
        ("steps", "window", "expected"),
        [
            # visits in November: A (1 Nov 09:00), C (the merge visit, 5 Nov), E (20 Nov)
            (["visit", "order_paid"], 7, [3, 1]),  # A pays 25 h later; C's next order is in December
            (["visit", "order_paid"], 2, [3, 1]),
            (["visit", "order_paid"], 1, [3, 0]),  # 25 h after the visit: outside a 24 h window
            # A's refund is on 10 Nov 00:30: 8 days 15.5 h after the visit
            (["visit", "order_paid", "order_refunded"], 7, [3, 1, 0]),
            (["visit", "order_paid", "order_refunded"], 9, [3, 1, 1]),
            # the same type twice needs two events: A (a1, a2) and C (c1, d1 merged in); B once
            (["order_paid", "order_paid"], 30, [3, 2]),
            (["order_paid"], 7, [3]),
            (["custom.never", "visit"], 7, [0, 0]),
        ],
    )
    def test_counts_per_step(
        self, db: Database, world: World, steps: list[str], window: int, expected: list[int]
    ) -> None:
        assert _counts(db, world, steps, window) == expected

    def test_rates(self) -> None:
        view = funnels.funnel_view(["visit", "order_paid", "order_refunded"], 7, [(0, 3), (1, 2), (2, 1)])
        assert [(s.from_first_bp, s.from_previous_bp) for s in view.steps] == [
            (10_000, 10_000),
            (6_667, 6_667),
            (3_333, 5_000),
        ]

    def test_empty_period(self, db: Database, world: World) -> None:
        assert _counts(db, world, ["visit", "order_paid"], 7, Scope(date(2025, 1, 1), date(2025, 1, 31))) == [
            0,
            0,
        ]


class TestApi:
    def test_funnel(self, client: TestClient, world: World, tenant: Tenant) -> None:
        # when
        answer = client.post(
            f"{API}/analytics/funnels",
            json={
                "start": "2025-11-01",
                "end": "2025-11-30",
                "steps": ["visit", "order_paid"],
                "window_days": 7,
            },
            headers=tenant.headers,
        )
        # then
        assert answer.status_code == 200, answer.text
        assert [(s["type"], s["members"], s["from_first_bp"]) for s in answer.json()["data"]["steps"]] == [
            ("visit", 3, 10_000),
            ("order_paid", 1, 3_333),
        ]

    def test_tenant_isolation(self, client: TestClient, world: World, make_tenant: Any) -> None:
        other = make_tenant("乙商户")
        answer = client.post(
            f"{API}/analytics/funnels",
            json={"start": "2025-11-01", "end": "2025-11-30", "steps": ["visit", "order_paid"]},
            headers=other.headers,
        )
        assert answer.status_code == 200
        assert [s["members"] for s in answer.json()["data"]["steps"]] == [0, 0]

    @pytest.mark.parametrize(
        ("body", "pointer"),
        [
            ({"start": "2025-11-30", "end": "2025-11-01", "steps": ["visit"]}, "/end"),
            ({"start": "2025-11-01", "end": "2025-11-30", "steps": []}, "/steps"),
            ({"start": "2025-11-01", "end": "2025-11-30", "steps": ["visit"] * 11}, "/steps"),
            (
                {"start": "2025-11-01", "end": "2025-11-30", "steps": ["visit"], "window_days": -1},
                "/window_days",
            ),
            ({"start": "2025-11-01", "end": "2025-11-30", "steps": [""]}, "/steps/0"),
            ({"start": "2025-11-01", "end": "2025-11-30", "steps": ["visit"], "extra": 1}, "/extra"),
        ],
    )
    def test_bad_body_is_422_with_pointer(
        self, client: TestClient, tenant: Tenant, body: dict[str, Any], pointer: str
    ) -> None:
        answer = client.post(f"{API}/analytics/funnels", json=body, headers=tenant.headers)
        assert answer.status_code == 422, answer.text
        assert [e["pointer"] for e in answer.json()["errors"]] == [pointer]
