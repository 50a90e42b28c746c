"""`siyu campaigns list | show | run` against the suite's database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.db import Database
from tests.campaigns.helpers import API, campaign_body
from tests.conftest import DatabaseUnderTest
from tests.coupons.helpers import make_members

runner = CliRunner()


@pytest.fixture
def cli_env(
    tmp_path: Path, test_database: DatabaseUnderTest, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI pointed at the suite's (migrated) test database."""
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)


def invoke_json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestCampaignsCli:
    def test_list_run_show(
        self,
        cli_env: None,
        db: Database,
        client: TestClient,
        make_tenant: Any,
    ) -> None:
        # given: a running broadcast to 40 members
        tenant = make_tenant()
        make_members(db, tenant.merchant_id, 40)
        created = client.post(
            f"{API}/campaigns", json=campaign_body(holdout_bp=0), headers=tenant.headers
        ).json()
        client.post(f"{API}/campaigns/{created['id']}/start", headers=tenant.headers)
        # when
        listed = invoke_json("campaigns", "list", "-m", tenant.merchant_id)
        ran = invoke_json("campaigns", "run", "-m", tenant.merchant_id)
        shown = invoke_json("campaigns", "show", created["id"], "-m", tenant.merchant_id)
        # then
        assert [c["id"] for c in listed] == [created["id"]]
        assert ran[tenant.merchant_id]["members_assigned"] == 40
        assert ran[tenant.merchant_id]["members_treated"] == 40
        assert shown["campaign"]["status"] == "running"
        assert [(r["occurrence"], r["status"], r["treated"]) for r in shown["runs"]] == [("once", "done", 40)]

    def test_unknown_campaign_is_one_line(self, cli_env: None, make_tenant: Any) -> None:
        # given
        tenant = make_tenant()
        # when
        result = runner.invoke(app, ["campaigns", "show", "cmp_nope", "-m", tenant.merchant_id])
        # then
        assert result.exit_code != 0
        assert "no campaign cmp_nope" in result.output
