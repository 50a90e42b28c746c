"""``siyu analytics sync | rebuild | status``, the sync loop of ``siyu serve``, and the status."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.analytics import mirror
from siyu.analytics.mirror_loop import BackgroundSync, embedded_sync
from siyu.analytics.mirror_status import mirror_status
from siyu.cli.main import app
from siyu.config import Settings, load_settings
from siyu.db import Database
from tests.analytics.mirrorkit import Shop, make_shop, row_set
from tests.conftest import DatabaseUnderTest, Tenant

runner = CliRunner()


@pytest.fixture
def shop(db: Database, tmp_path: Path) -> Shop:
    return make_shop(db, tmp_path / "analytics")


@pytest.fixture
def cli_env(tmp_path: Path, test_database: DatabaseUnderTest, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)
    monkeypatch.setenv("SIYU_ANALYTICS_DIR", str(tmp_path / "analytics"))
    return tmp_path / "analytics"


class TestCli:
    def test_sync_then_status_then_rebuild(self, shop: Shop, cli_env: Path) -> None:
        # given two events ingested now (the CLI syncs with the real clock)
        from siyu.kit.clock import utcnow

        shop.now = utcnow()
        shop.event("p1")
        shop.event("p2", "order_paid", amount=990)
        # when
        synced = runner.invoke(app, ["analytics", "sync", "-m", shop.merchant_id, "--json"])
        status = runner.invoke(app, ["analytics", "status", "-m", shop.merchant_id, "--json"])
        rebuilt = runner.invoke(app, ["analytics", "rebuild", "--json"])
        # then
        assert synced.exit_code == 0, synced.output
        assert json.loads(synced.stdout)["merchants"][0]["events"] == 2
        assert status.exit_code == 0, status.output
        (row,) = json.loads(status.stdout)
        assert (row["events"], row["members"], row["pending_events"]) == (2, 2, 0)
        assert row["files"] >= 2
        assert row["bytes"] > 0
        assert rebuilt.exit_code == 0, rebuilt.output
        mine = [m for m in json.loads(rebuilt.stdout)["merchants"] if m["merchant_id"] == shop.merchant_id]
        assert mine[0]["events"] == 2

    def test_an_unknown_merchant_is_one_error_line(self, cli_env: Path, db: Database) -> None:
        # when
        result = runner.invoke(app, ["analytics", "sync", "-m", "mch_nope"])
        # then
        assert result.exit_code == 2
        assert "no merchant mch_nope" in result.output
        assert "Traceback" not in result.output

    def test_status_shows_the_lag_of_unsynced_events(self, shop: Shop) -> None:
        # given one synced event and one after it
        shop.event("p1")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        shop.tick(10)
        shop.event("p1")
        # when
        with shop.db.reading() as session:
            found = mirror_status(session, shop.root, shop.merchant_id)
        # then
        assert (found.events, found.pending_events, found.lag_seconds) == (1, 1, 660.0)


class TestSyncLoop:
    def test_the_loop_syncs_in_a_child_process_until_stopped(self, shop: Shop) -> None:
        # given
        shop.event("p1")
        loop = BackgroundSync(shop.db, shop.root, interval=0.05)
        # when
        loop.start()
        assert loop.process.pid not in (None, os.getpid())  # the server's GIL stays free
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not shop.mirror("events"):
            time.sleep(0.05)
        loop.stop()
        # then
        assert [r["event_id"] for r in shop.mirror("events")] == ["ev-00001"]
        assert not loop.process.is_alive()
        assert loop.process.exitcode == 0  # stopped when asked, not killed

    def test_stopping_after_the_child_was_killed_does_not_hang(self, shop: Shop) -> None:
        # given: the SIGTERM that `timeout` and systemd send the whole process group
        import signal
        import threading

        shop.event("p1")
        loop = BackgroundSync(shop.db, shop.root, interval=1.0)
        loop.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not shop.mirror("events"):
            time.sleep(0.02)
        time.sleep(0.2)  # a round is done: the child is inside its one-second wait
        assert loop.process.pid is not None
        os.kill(loop.process.pid, signal.SIGTERM)
        loop.process.join(30)
        # when: the server stops its loop
        stopper = threading.Thread(target=loop.stop, daemon=True)
        stopper.start()
        stopper.join(30)
        # then: it returned (a multiprocessing.Event whose lock the dead child held hung here)
        assert not stopper.is_alive()
        assert loop.process.exitcode == -signal.SIGTERM

    def test_the_loop_rewrites_the_member_snapshot_at_most_once_a_minute_unless_merged(
        self, shop: Shop
    ) -> None:
        # given: a first sync (snapshot written), then events from a new person 10 s later
        def loop_round() -> mirror.MerchantSync:
            (done,) = mirror.sync(shop.db, shop.root, now=shop.now, snapshot_every=60).merchants
            return done

        shop.event("p1")
        assert loop_round().members == 1
        shop.now += timedelta(seconds=10)
        shop.event("p2")
        # when / then: the events arrive, the snapshot (a read of every member) waits its minute
        early = loop_round()
        assert (early.events, early.members) == (1, 0)
        assert len(shop.mirror("members")) == 1
        shop.now += timedelta(seconds=51)
        assert loop_round().members == 2
        # and a merge rewrites it at once (members change identity)
        shop.now += timedelta(seconds=1)
        shop.event("p2", extra_identity="m-1")
        shop.event("p1", extra_identity="m-1")
        assert loop_round().members == 2
        assert row_set(shop.mirror("members")) == row_set(shop.state("members"))

    def test_an_interval_of_zero_starts_no_loop(self, db: Database, tmp_path: Path) -> None:
        # given
        settings = load_settings(data_dir=tmp_path, analytics_sync_interval=0)
        # then
        assert embedded_sync(settings, db) is None
        assert settings.resolved_analytics_dir == tmp_path / "analytics"


class TestStatusEndpoint:
    def test_a_merchant_sees_only_its_own_mirror(
        self, db: Database, client: TestClient, settings: Settings, make_tenant: Callable[..., Tenant]
    ) -> None:
        # given two merchants, the first with two mirrored events
        first, second = make_tenant("甲"), make_tenant("乙")
        shop = Shop(db, settings.resolved_analytics_dir, first.merchant_id)
        shop.event("p1")
        shop.event("p2")
        mirror.sync(db, shop.root, now=shop.tick(), merchant_ids=[first.merchant_id])
        # when
        mine = client.get("/api/v1/analytics/mirror", headers=first.headers)
        theirs = client.get("/api/v1/analytics/mirror", headers=second.headers)
        # then
        assert mine.status_code == 200, mine.text
        assert (mine.json()["events"], mine.json()["members"], mine.json()["pending_events"]) == (2, 2, 0)
        assert theirs.status_code == 200
        assert (theirs.json()["events"], theirs.json()["watermark"]) == (0, None)

    def test_a_key_without_merchant_read_is_refused(
        self, client: TestClient, make_tenant: Callable[..., Tenant]
    ) -> None:
        # given
        tenant = make_tenant(scopes=["events:write"])
        # when
        response = client.get("/api/v1/analytics/mirror", headers=tenant.headers)
        # then
        assert response.status_code == 403
