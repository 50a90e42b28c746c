"""``siyu points expire|adjust|liability``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.db import Database
from siyu.points.models import ExpiryPolicy
from tests.conftest import DatabaseUnderTest
from tests.points.helpers import balance, earn, entries, make_member, make_merchant, paid, settings

runner = CliRunner()


@pytest.fixture
def cli_env(
    tmp_path: Path, test_database: DatabaseUnderTest, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)


@pytest.mark.usefixtures("cli_env")
class TestPointsCli:
    def test_adjust_needs_a_reason_and_changes_the_balance(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        # when
        done = runner.invoke(
            app, ["points", "adjust", member, "120", "-m", merchant, "--reason", "补偿", "--json"]
        )
        taken = runner.invoke(
            app, ["points", "adjust", "-m", merchant, "--reason", "纠错", "--json", "--", member, "-20"]
        )
        too_much = runner.invoke(
            app, ["points", "adjust", "-m", merchant, "--reason", "x", "--", member, "-500"]
        )
        no_reason = runner.invoke(app, ["points", "adjust", member, "5", "-m", merchant, "--reason", " "])
        unknown = runner.invoke(app, ["points", "adjust", "mbr_nope", "5", "-m", merchant, "--reason", "x"])
        # then
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["balance_after"] == 120
        assert json.loads(taken.stdout)["balance_after"] == 100
        assert [r.exit_code != 0 for r in (too_much, no_reason, unknown)] == [True] * 3
        assert "100 points" in too_much.output
        assert balance(db, merchant, member) == 100

    def test_expire_and_liability(self, db: Database) -> None:
        # given: points earned in March with a 30-day expiry (long past), and some that never expire
        merchant = make_merchant(db)
        member = make_member(db, merchant)
        settings(db, merchant, expiry_policy=ExpiryPolicy.DAYS, expiry_days=30)
        earn(db, merchant, paid(member, "o1", 5_000))
        settings(db, merchant, expiry_policy=ExpiryPolicy.NEVER)
        earn(db, merchant, paid(member, "o2", 2_000))
        # when
        expired = runner.invoke(app, ["points", "expire", "--json"])
        report = runner.invoke(app, ["points", "liability", "-m", merchant, "--json"])
        # then
        assert expired.exit_code == 0, expired.output
        assert json.loads(expired.stdout)["lots_expired"] >= 1
        assert entries(db, merchant, member)[-1].points == -50
        data = json.loads(report.stdout)
        assert (data["total"], data["by_expiry_month"]) == (20, [{"month": None, "points": 20}])
        assert runner.invoke(app, ["points", "liability", "-m", "mch_nope"]).exit_code != 0
