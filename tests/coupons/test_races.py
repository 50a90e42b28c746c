"""Races with real threads, each in its own transaction (on PostgreSQL they really overlap; on
SQLite the writers queue on ``BEGIN IMMEDIATE``): never oversold, never redeemed twice, per-member
limits never exceeded, stock totals exact while stock is added. The HTTP races run against a live
uvicorn on PostgreSQL, as the bench does."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from siyu.coupons import facade
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.problems import Conflict
from tests.conftest import Tenant
from tests.coupons.helpers import (
    API,
    claim_counts,
    claimed,
    make_members,
    make_template,
    stock_state,
    template,
)
from tests.threads import run_threads


def issue(db: Database, tenant: Tenant, template_id: str, member: str, outcomes: Counter[str]) -> None:
    """One claim in its own transaction; ``busy`` (stock held by claims in flight) is retried,
    as a client does."""
    outcome = "busy"
    while outcome == "busy":
        try:
            with db.unit_of_work() as session:
                facade.issue_coupon(
                    session,
                    tenant.merchant_id,
                    template_id,
                    member,
                    source="api",
                    source_ref=None,
                    now=utcnow(),
                )
            outcome = "issued"
        except facade.CouponRefused as refused:
            outcome = refused.reason
    with LOCK:
        outcomes[outcome] += 1


LOCK = threading.Lock()


class TestClaimRaces:
    def test_200_claimants_against_stock_50_get_exactly_50(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        members = make_members(db, tenant.merchant_id, 200)
        t = make_template(client, tenant, total_stock=50, per_member_limit=1)
        outcomes: Counter[str] = Counter()
        # when
        run_threads(200, lambda i: issue(db, tenant, t["id"], members[i], outcomes))
        # then
        assert outcomes == Counter({"issued": 50, "out_of_stock": 150})
        assert stock_state(db, tenant.merchant_id, t["id"]) == (50, 0, 0)
        view = template(client, tenant, t["id"])
        assert (view["issued"], view["remaining"]) == (50, 0)

    def test_one_member_racing_20_claims_against_a_limit_of_2_gets_exactly_2(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant, total_stock=100, per_member_limit=2, period="day", period_limit=5)
        outcomes: Counter[str] = Counter()
        # when
        run_threads(20, lambda _i: issue(db, tenant, t["id"], member, outcomes))
        # then
        assert outcomes == Counter({"issued": 2, "member_limit": 18})
        assert stock_state(db, tenant.merchant_id, t["id"])[:2] == (2, 98)
        counts = claim_counts(db, tenant.merchant_id, member)
        assert counts[(t["id"], "*")] == 2
        assert sum(counts.values()) == 4  # lifetime 2 + today 2

    def test_claims_and_stock_additions_at_once_keep_the_totals_exact(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: stock 10; 60 claimants and 10 additions of 3 run together
        members = make_members(db, tenant.merchant_id, 60)
        t = make_template(client, tenant, total_stock=10)
        outcomes: Counter[str] = Counter()

        def work(index: int) -> None:
            if index < 10:
                with db.unit_of_work() as session:
                    from siyu.coupons import service

                    service.add_stock(session, tenant.merchant_id, t["id"], 3, now=utcnow())
            else:
                issue(db, tenant, t["id"], members[index - 10], outcomes)

        # when
        run_threads(70, work)
        # then: Σ remaining = stock − issued, nothing negative, nothing oversold
        issued, remaining, lowest = stock_state(db, tenant.merchant_id, t["id"])
        view = template(client, tenant, t["id"])
        assert view["stock"] == 40
        assert issued == outcomes["issued"] <= 40
        assert remaining == 40 - issued
        assert lowest >= 0
        assert (view["issued"], view["remaining"]) == (issued, remaining)


class TestRedemptionRaces:
    def test_20_concurrent_redemptions_of_one_coupon_exactly_one_succeeds(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant, budget_fen=100_000)
        code = claimed(client, tenant, t["id"], member)["code"]
        outcomes: Counter[str] = Counter()

        def work(index: int) -> None:
            from siyu.coupons import redemption
            from siyu.coupons.schemas import RedemptionIn

            body = RedemptionIn(member_id=member, order_id=f"o-{index}", codes=[code], amount_fen=5000)
            try:
                with db.unit_of_work() as session:
                    redemption.redeem(session, tenant.merchant_id, body, now=utcnow(), source="test")
                outcome = "redeemed"
            except Conflict as exc:
                outcome = str(exc.extra.get("reason"))
            with LOCK:
                outcomes[outcome] += 1

        # when
        run_threads(20, work)
        # then
        assert outcomes == Counter({"redeemed": 1, "already_redeemed": 19})
        view = template(client, tenant, t["id"])
        assert (view["redeemed"], view["budget_used_fen"]) == (1, 1000)


@pytest.mark.postgres_only
class TestOverHttp:
    def test_200_http_claimants_against_stock_50_and_one_member_against_a_limit_of_2(
        self, client: TestClient, tenant: Tenant, db: Database, live_server: str
    ) -> None:
        # given
        members = make_members(db, tenant.merchant_id, 200)
        hot = make_template(client, tenant, total_stock=50, per_member_limit=1)
        limited = make_template(client, tenant, total_stock=100, per_member_limit=2)
        statuses: list[Any] = []

        def work(index: int) -> None:
            template_id, member = (hot["id"], members[index]) if index < 200 else (limited["id"], members[0])
            reason: str | None = "busy"
            with httpx.Client(base_url=live_server, headers=tenant.headers, timeout=60) as http:
                while reason == "busy":  # retryable: stock left but held by claims in flight
                    answer = http.post(
                        f"{API}/coupon-templates/{template_id}/claims", json={"member_id": member}
                    )
                    reason = answer.json().get("reason") if answer.status_code != 201 else None
            with LOCK:
                statuses.append((template_id, answer.status_code, reason))

        # when
        run_threads(220, work)
        # then
        assert Counter(statuses) == Counter(
            {
                (hot["id"], 201, None): 50,
                (hot["id"], 409, "out_of_stock"): 150,
                (limited["id"], 201, None): 2,
                (limited["id"], 409, "member_limit"): 18,
            }
        )
        assert stock_state(db, tenant.merchant_id, hot["id"]) == (50, 0, 0)
        assert stock_state(db, tenant.merchant_id, limited["id"])[0] == 2

    def test_once_a_pause_is_answered_no_claim_sent_after_it_issues(
        self, client: TestClient, tenant: Tenant, db: Database, live_server: str
    ) -> None:
        # given: 40 clients claiming a template with plenty of stock
        members = make_members(db, tenant.merchant_id, 400)
        hot = make_template(client, tenant, total_stock=1000, per_member_limit=1)
        answers: list[tuple[float, int, str | None]] = []
        paused_at: list[float] = []
        pauses: list[bool] = []

        def work(index: int) -> None:
            path = f"{API}/coupon-templates/{hot['id']}"
            with httpx.Client(base_url=live_server, headers=tenant.headers, timeout=60) as http:
                for member in members[index * 10 : index * 10 + 10]:
                    sent = time.monotonic()
                    answer = http.post(f"{path}/claims", json={"member_id": member})
                    reason = answer.json().get("reason") if answer.status_code != 201 else None
                    with LOCK:
                        answers.append((sent, answer.status_code, reason))
                        pausing = len(answers) >= 40 and not pauses
                        if pausing:
                            pauses.append(True)
                    if pausing:  # one client pauses the template mid-drop
                        pause = http.post(f"{path}/pause")
                        assert pause.status_code == 200
                        paused_at.append(time.monotonic())

        # when
        run_threads(40, work)
        # then: the pause stopped the drop at once (the template is re-read by every claim)
        assert paused_at
        late = [(status, reason) for sent, status, reason in answers if sent > paused_at[0]]
        assert late
        assert set(late) == {(409, "not_active")}
        issued = sum(1 for _, status, _ in answers if status == 201)
        assert stock_state(db, tenant.merchant_id, hot["id"])[0] == issued
