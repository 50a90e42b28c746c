"""The tiers API and CLI: the ladder, bad input, members' tiers, paid and joint membership,
birthdays on the member, export and erasure, ``siyu tiers``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.db import Database
from tests.conftest import DatabaseUnderTest, Tenant

API = "/api/v1"
runner = CliRunner()


def post(client: TestClient, tenant: Tenant, path: str, body: Any) -> Any:
    return client.post(f"{API}{path}", json=body, headers=tenant.headers)


def ladder(client: TestClient, tenant: Tenant) -> dict[str, str]:
    ids = {}
    for body in (
        {"name": "普卡", "rank": 0, "threshold": 0},
        {"name": "银卡", "rank": 1, "threshold": 1_000, "points_multiplier_bp": 12_000},
        {"name": "金卡", "rank": 2, "threshold": 5_000, "price_fen": 29_900, "paid_days": 365},
    ):
        answer = post(client, tenant, "/tiers", body)
        assert answer.status_code == 201, answer.text
        ids[body["name"]] = answer.json()["id"]
    return ids


def member(client: TestClient, tenant: Tenant, phone: str = "13800138000", amount_fen: int = 0) -> str:
    event: dict[str, Any] = {
        "event_id": f"e-{phone}-{amount_fen}",
        "type": "order_paid" if amount_fen else "visit",
        "occurred_at": datetime.now(UTC).isoformat(),
        "identities": {"phone": phone},
    }
    if amount_fen:
        event["properties"] = {"order_id": f"o-{phone}", "amount_fen": amount_fen}
    answer = post(client, tenant, "/events/batch", {"events": [event]})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["results"][0]["member_id"])


class TestLadder:
    def test_the_ladder_is_listed_lowest_first_and_can_be_changed(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        ids = ladder(client, tenant)
        listed = client.get(f"{API}/tiers", headers=tenant.headers).json()
        assert [t["name"] for t in listed] == ["普卡", "银卡", "金卡"]
        patched = client.patch(
            f"{API}/tiers/{ids['银卡']}", json={"threshold": 2_000}, headers=tenant.headers
        )
        assert patched.status_code == 200
        assert patched.json()["threshold"] == 2_000
        settings = client.put(
            f"{API}/tier-settings", json={"basis": "spend_365", "period_months": 3}, headers=tenant.headers
        )
        assert settings.json() == {"basis": "spend_365", "growth_per_yuan": 1, "period_months": 3}

    @pytest.mark.parametrize(
        ("path", "body", "status", "pointer"),
        [
            ("/tiers", {"name": "x", "rank": 3, "threshold": -1}, 422, "/threshold"),
            (
                "/tiers",
                {"name": "钻石", "rank": 3, "threshold": 100},
                422,
                "/threshold",
            ),  # below 金卡's 5 000
            ("/tiers", {"name": "银卡", "rank": 3, "threshold": 9_000}, 409, None),
            ("/tiers", {"name": "y", "rank": 1, "threshold": 9_000}, 409, None),
            ("/tiers", {"name": "z", "rank": 3, "threshold": 9_000, "price_fen": 100}, 422, "/paid_days"),
            (
                "/tiers",
                {"name": "w", "rank": 3, "threshold": 9_000, "monthly_coupon_template_id": "cpt_nope"},
                422,
                "/monthly_coupon_template_id",
            ),
        ],
    )
    def test_bad_tiers_are_refused_and_change_nothing(
        self,
        client: TestClient,
        tenant: Tenant,
        path: str,
        body: dict[str, Any],
        status: int,
        pointer: str | None,
    ) -> None:
        ladder(client, tenant)
        answer = post(client, tenant, path, body)
        assert answer.status_code == status, answer.text
        if pointer:
            assert pointer in [e["pointer"] for e in answer.json()["errors"]]
        assert len(client.get(f"{API}/tiers", headers=tenant.headers).json()) == 3

    def test_a_period_that_does_not_tile_the_year_is_refused(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        answer = client.put(f"{API}/tier-settings", json={"period_months": 5}, headers=tenant.headers)
        assert answer.status_code == 422
        assert client.get(f"{API}/tier-settings", headers=tenant.headers).json()["period_months"] == 12

    def test_scopes_guard_reading_and_writing(self, client: TestClient, make_tenant: Any) -> None:
        reader = make_tenant(name="只读", scopes=["tiers:read"])
        assert client.get(f"{API}/tiers", headers=reader.headers).status_code == 200
        assert post(client, reader, "/tiers", {"name": "x", "rank": 0, "threshold": 0}).status_code == 403


class TestMemberTier:
    def test_the_360_view_and_the_tier_endpoint_show_tier_progress_and_history(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        ladder(client, tenant)
        someone = member(client, tenant, amount_fen=150_000)  # ¥1 500 → 银卡
        view = client.get(f"{API}/members/{someone}", headers=tenant.headers).json()
        assert view["tier"]["tier"]["name"] == "银卡"
        assert view["tier"]["value"] == 1_500
        assert view["tier"]["next_tier"]["name"] == "金卡"
        assert view["tier"]["to_next"] == 3_500
        assert view["tier"]["multiplier_bp"] == 12_000
        assert [c["reason"] for c in view["tier_history"]] == ["upgrade"]
        tier = client.get(f"{API}/members/{someone}/tier", headers=tenant.headers).json()
        assert tier["tier"] == view["tier"]
        assert tier["links"] == []

    def test_paid_and_joint_membership_over_http(self, client: TestClient, tenant: Tenant) -> None:
        ids = ladder(client, tenant)
        someone = member(client, tenant)
        bought = post(
            client, tenant, f"/members/{someone}/tier/purchases", {"tier_id": ids["金卡"], "order_id": "m-1"}
        )
        again = post(
            client, tenant, f"/members/{someone}/tier/purchases", {"tier_id": ids["金卡"], "order_id": "m-1"}
        )
        assert (bought.status_code, again.status_code) == (201, 200)
        assert bought.json()["amount_fen"] == 29_900
        cancelled = post(client, tenant, "/tier-purchases/m-1/cancel", {})
        assert cancelled.status_code == 200
        assert cancelled.json()["cancelled_at"]
        mapping = client.put(
            f"{API}/tier-joint-mappings/app", json={"levels": {"silver": ids["银卡"]}}, headers=tenant.headers
        )
        assert mapping.status_code == 200, mapping.text
        linked = client.put(
            f"{API}/members/{someone}/joint-links/app",
            json={"external_level": "silver"},
            headers=tenant.headers,
        )
        assert linked.status_code == 200
        assert linked.json()["tier"]["tier"]["name"] == "银卡"
        unlinked = client.delete(f"{API}/members/{someone}/joint-links/app", headers=tenant.headers)
        assert unlinked.json()["tier"]["tier"]["name"] == "普卡"
        assert [c["reason"] for c in unlinked.json()["history"]] == [
            "joint_unlinked",
            "joint_linked",
            "paid_ended",
            "paid",
        ]
        bad_platform = client.put(
            f"{API}/tier-joint-mappings/{'x' * 65}", json={"levels": {}}, headers=tenant.headers
        )
        assert bad_platform.status_code == 422
        missing = client.delete(f"{API}/members/{someone}/joint-links/app", headers=tenant.headers)
        assert missing.status_code == 404
        unknown = post(
            client, tenant, "/members/mbr_nope/tier/purchases", {"tier_id": ids["金卡"], "order_id": "m-2"}
        )
        assert unknown.status_code == 404

    def test_birthday_is_kept_on_the_member_exported_and_erased(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        ladder(client, tenant)
        someone = member(client, tenant, amount_fen=100_000)
        bad = client.put(
            f"{API}/members/{someone}/birthday", json={"birthday": "02-30"}, headers=tenant.headers
        )
        assert bad.status_code == 422
        good = client.put(
            f"{API}/members/{someone}/birthday", json={"birthday": "02-29"}, headers=tenant.headers
        )
        assert good.status_code == 200
        assert good.json()["birthday"] == "02-29"
        exported = client.get(f"{API}/members/{someone}/export", headers=tenant.headers).json()
        assert exported["member"]["birthday"] == "02-29"
        assert exported["tier"]["progress"][0]["spend_fen"] == 100_000
        assert post(client, tenant, f"/members/{someone}/erase", {}).status_code == 200
        erased = client.get(f"{API}/members/{someone}", headers=tenant.headers).json()
        assert erased["birthday"] is None
        assert erased["tier_history"] == []


@pytest.fixture
def cli_env(
    tmp_path: Path, test_database: DatabaseUnderTest, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)


@pytest.mark.usefixtures("cli_env")
class TestCli:
    def test_ladder_show_and_run(self, client: TestClient, tenant: Tenant) -> None:
        ladder(client, tenant)
        someone = member(client, tenant, amount_fen=600_000)
        shown = runner.invoke(app, ["tiers", "ladder", "-m", tenant.merchant_id, "--json"])
        assert shown.exit_code == 0, shown.output
        assert [t["name"] for t in json.loads(shown.output)["tiers"]] == ["普卡", "银卡", "金卡"]
        member_view = runner.invoke(app, ["tiers", "show", someone, "-m", tenant.merchant_id, "--json"])
        assert json.loads(member_view.output)["tier"]["tier"]["name"] == "金卡"
        ran = runner.invoke(app, ["tiers", "run", "-m", tenant.merchant_id, "--json"])
        assert ran.exit_code == 0, ran.output
        assert json.loads(ran.output)[tenant.merchant_id]["changed"] == 0
        unknown = runner.invoke(app, ["tiers", "run", "-m", "mch_nope"])
        assert unknown.exit_code != 0
        assert "no merchant" in unknown.output
