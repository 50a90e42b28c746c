"""Background upkeep: expired idempotency records go, recent ones stay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from siyu.app import create_app
from siyu.config import Settings
from siyu.coupons.models import Coupon
from siyu.db import Database
from siyu.housekeeping import background_upkeep, run_expiry, run_once
from siyu.kit import idempotency
from siyu.kit.clock import utcnow
from siyu.points.models import ExpiryPolicy
from tests.conftest import Tenant
from tests.coupons.helpers import claimed, coupon, make_members, make_template
from tests.pgstats import grow_merchants, last_analysis
from tests.points.helpers import T0, balance, earn, entries, make_member, make_merchant, paid
from tests.points.helpers import settings as save_settings


class TestHousekeeping:
    def test_purges_only_expired_idempotency_records(self, db: Database) -> None:
        # given
        now = utcnow()
        with db.unit_of_work() as session:
            idempotency.reserve(session, "p", "old", "h", now - idempotency.RETENTION - timedelta(minutes=1))
            idempotency.reserve(session, "p", "new", "h", now - timedelta(days=1))
        # when
        result = run_once(db)
        # then
        assert result["idempotency_records_purged"] == 1
        with db.reading() as session:
            keys = session.execute(select(idempotency.IdempotencyRecord.key)).scalars().all()
        assert keys == ["new"]


class TestExpiryRound:
    def test_coupons_and_points_past_their_end_expire_and_a_second_round_finds_nothing(
        self, db: Database, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a coupon whose validity ended an hour ago, one still valid; points earned in
        # March with a 30-day expiry (well past), on another merchant
        template = make_template(client, tenant)
        ended, valid = (
            claimed(client, tenant, template["id"], m) for m in make_members(db, tenant.merchant_id, 2)
        )
        with db.unit_of_work() as session:
            session.execute(
                update(Coupon)
                .where(Coupon.merchant_id == tenant.merchant_id, Coupon.id == ended["id"])
                .values(valid_until=utcnow() - timedelta(hours=1))
            )
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        save_settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=30)
        earn(db, merchant, paid(member, "o1", 5_000, T0))
        # when
        first, second = run_expiry(db), run_expiry(db)
        # then
        assert first == {"coupons_expired": 1, "points_lots_expired": 1}
        assert second == {"coupons_expired": 0, "points_lots_expired": 0}
        assert coupon(client, tenant, ended["id"])["status"] == "expired"
        assert coupon(client, tenant, valid["id"])["status"] == "available"
        assert balance(db, merchant, member) == 0
        assert [e.kind for e in entries(db, merchant, member)] == ["earn", "expire"]


class TestUpkeepSwitch:
    """``SIYU_UPKEEP=false`` keeps the background jobs out of a server (all but one replica; the
    test servers, whose real-clock expiry would otherwise race tests that inject their clock)."""

    def _points_past_expiry(self, db: Database) -> tuple[str, str]:
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        save_settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=30)
        earn(db, merchant, paid(member, "o1", 5_000, T0))  # March: long past its 30 days
        return merchant, member

    def _serve_briefly(self, app_settings: Settings, db: Database, merchant: str, member: str) -> list[str]:
        import time

        with TestClient(create_app(app_settings, db=db, console=False)):
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and len(entries(db, merchant, member)) < 2:
                time.sleep(0.05)
        return [e.kind for e in entries(db, merchant, member)]

    def test_a_server_with_upkeep_off_runs_no_background_job(self, db: Database, settings: Settings) -> None:
        merchant, member = self._points_past_expiry(db)
        assert settings.upkeep is False  # the test servers' setting
        assert self._serve_briefly(settings, db, merchant, member) == ["earn"]

    def test_a_server_with_upkeep_on_expires_at_start(self, db: Database, settings: Settings) -> None:
        merchant, member = self._points_past_expiry(db)
        on = settings.model_copy(update={"upkeep": True})
        assert self._serve_briefly(on, db, merchant, member) == ["earn", "expire"]


@pytest.mark.postgres_only
class TestStatisticsLoop:
    def test_the_server_loop_analyzes_a_grown_table(self, db: Database) -> None:
        # given: 2,000 merchants added since the table's statistics were taken
        grow_merchants(db, "mch_loop_")

        def changed_since_analyze() -> int:
            return last_analysis(db, "merchants")[1]

        assert changed_since_analyze() >= 2000

        # when: the app's background upkeep runs with a short statistics interval
        async def serve_briefly() -> None:
            async with background_upkeep(db, interval=3600, statistics_interval=0.05):
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    if changed_since_analyze() < 1000:
                        return

        asyncio.run(serve_briefly())
        # then: analyzed (other tests' servers may have touched a row or two since)
        assert changed_since_analyze() < 1000
