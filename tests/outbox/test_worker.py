"""The worker inside ``siyu serve`` (started and stopped by the app's lifespan), the worker loop,
and the CLI: ``siyu worker --once``, ``siyu outbox list``, ``siyu outbox retry``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.app import create_app
from siyu.cli.main import app as cli
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.outbox import facade as outbox
from siyu.outbox.worker import Worker
from tests.conftest import DatabaseUnderTest, Tenant
from tests.outbox import helpers
from tests.outbox.helpers import Recorder, item

runner = CliRunner()
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def rec() -> Iterator[Recorder]:
    yield from helpers.reset()


def enqueue(db: Database, merchant_id: str, key: str, kind: str = "test.record") -> None:
    with db.unit_of_work() as session:
        outbox.enqueue(session, merchant_id, kind, {"k": key}, key=key, now=utcnow())


def wait_for(predicate, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class TestEmbeddedWorker:
    def test_serve_delivers_what_is_enqueued_and_stops_with_the_app(
        self, db: Database, settings: Settings, tenant: Tenant, rec: Recorder
    ) -> None:
        # given: an app with the embedded worker on
        app = create_app(settings.model_copy(update={"worker_embedded": True, "worker_poll": 0.05}), db=db)
        with TestClient(app):
            # when: work arrives while it runs
            enqueue(db, tenant.merchant_id, "live-1")
            enqueue(db, tenant.merchant_id, "live-2")
            # then
            wait_for(lambda: len(rec.keys()) == 2)
            workers = [t for t in threading.enumerate() if t.name == "siyu-outbox-worker"]
            assert len(workers) == 1
        assert not workers[0].is_alive(), "the lifespan stops the worker"
        assert sorted(rec.keys()) == ["live-1", "live-2"]

    def test_it_can_be_turned_off(self, db: Database, settings: Settings) -> None:
        with TestClient(create_app(settings, db=db)):
            assert not [t for t in threading.enumerate() if t.name == "siyu-outbox-worker"]


class TestWorkerLoop:
    def test_once_drains_and_returns_the_totals(self, db: Database, tenant: Tenant, rec: Recorder) -> None:
        for n in range(7):
            enqueue(db, tenant.merchant_id, f"k{n}")
        enqueue(db, tenant.merchant_id, "bad", kind="test.permanent")
        total = Worker(db, batch=3).run(threading.Event(), once=True)
        assert (total.claimed, total.done, total.dead, total.retried) == (8, 7, 1, 0)

    def test_a_set_stop_event_ends_the_loop(self, db: Database) -> None:
        stop = threading.Event()
        stop.set()
        assert Worker(db).run(stop).claimed == 0


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, test_database: DatabaseUnderTest, settings: Settings, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_SECRET_KEY", settings.resolved_secret_key())


class TestCli:
    def test_worker_once_then_list_and_retry_a_dead_item(
        self, env: None, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given
        enqueue(db, tenant.merchant_id, "fine")
        enqueue(db, tenant.merchant_id, "refused", kind="test.permanent")
        # when
        ran = runner.invoke(cli, ["worker", "--once"])
        # then
        assert ran.exit_code == 0, ran.output
        assert "2 processed: 1 delivered, 0 to retry, 1 dead" in ran.output
        listed = runner.invoke(
            cli, ["outbox", "list", "-m", tenant.merchant_id, "--status", "dead", "--json"]
        )
        assert listed.exit_code == 0, listed.output
        data = json.loads(listed.stdout)
        assert data["counts"] == {"dead": 1, "done": 1}
        (dead,) = data["items"]
        assert dead["key"] == "refused"
        assert "permanent" in dead["last_error"]
        # when: requeued
        retried = runner.invoke(cli, ["outbox", "retry", "-m", tenant.merchant_id, dead["id"]])
        # then
        assert retried.exit_code == 0, retried.output
        assert (
            item(db, tenant.merchant_id, "refused").status,
            item(db, tenant.merchant_id, "refused").attempts,
        ) == (
            "pending",
            0,
        )
        again = runner.invoke(cli, ["outbox", "retry", "-m", tenant.merchant_id, dead["id"]])
        assert again.exit_code == 2
        assert "not dead" in again.output
