"""``siyu demo --no-serve`` builds on the engine under test (SQLite, or PostgreSQL with
SIYU_TEST_DATABASE_URL)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from siyu.campaigns import facade as campaigns
from siyu.cli.main import app
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.members.models import Member
from siyu.reachability import facade as reachability
from siyu.tenancy import facade as tenancy
from tests.conftest import DatabaseUnderTest


class TestDemo:
    def test_small_demo_builds_finished_campaigns_with_holdouts(
        self, db: Database, test_database: DatabaseUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given
        monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)
        data_dir = tmp_path / "demo"
        # when
        result = CliRunner().invoke(
            app,
            [
                "demo",
                "--members",
                "600",
                "--days",
                "60",
                "--seed",
                "2",
                "--no-serve",
                "--data-dir",
                str(data_dir),
                "--password",
                "demo-pass-1234",
            ],
        )
        # then
        assert result.exit_code == 0, result.output
        assert "owner" in result.output
        assert "demo-pass-1234" in result.output
        with db.reading() as session:
            merchant = tenancy.first_merchant(session)
            assert merchant is not None
            assert merchant.name == "拾光咖啡"
            assert len(tenancy.list_stores(session, merchant.id)) == 12
            found = campaigns.list_campaigns(session, merchant.id)
            operable = reachability.summary(session, merchant.id, now=utcnow())
            first, last = session.execute(
                select(func.min(Member.created_at), func.max(Member.created_at)).where(
                    Member.merchant_id == merchant.id
                )
            ).one()
        assert [c.status for c in found] == ["completed", "completed"]
        assert last - first > timedelta(days=30)  # created on the simulated days, not all today
        assert operable.operable_members > 0  # subscriptions, favourites and follows reached reachability
        truth = json.loads((data_dir / "sim" / "truth.json").read_text())
        assert truth["members"] == 600
        assert len(truth["campaigns"]) == 2
        assert (data_dir / "sim" / "truth_members.csv").exists()

    def test_a_used_directory_is_refused_in_one_line(self, tmp_path: Path) -> None:
        # given
        (tmp_path / "something").write_text("x")
        # when
        result = CliRunner().invoke(app, ["demo", "--no-serve", "--data-dir", str(tmp_path)])
        # then
        assert result.exit_code == 2
        assert "not empty" in result.output
