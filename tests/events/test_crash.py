"""A server killed in the middle of a batch loses nothing it accepted.

A real ``siyu serve`` process on the suite's database (a SQLite file, or PostgreSQL) receives
batches from a client; it is killed with SIGKILL while a batch is in flight, then started again.
Every event of every answered batch must be there, intact, and re-sending everything must end
with each event stored exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from siyu.db import Database
from siyu.events.models import Event, MemberRollup
from tests.conftest import DatabaseUnderTest, free_port

KEY = "sy_crash_test_" + "k" * 32
BATCH = 1_500
T0 = datetime(2026, 10, 1, tzinfo=UTC)
TOTAL = 25


def batch(number: int) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"b{number}-{n}",
            "type": "order_paid",
            "occurred_at": (T0 + timedelta(seconds=n)).isoformat(),
            "identities": {"member_no": f"M{(number * BATCH + n) % 1500}"},
            "properties": {"order_id": f"o{number}-{n}", "amount_fen": 100 + n},
        }
        for n in range(BATCH)
    ]


class Server:
    def __init__(self, url: str, data_dir: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "SIYU_DATA_DIR": str(data_dir),
            "SIYU_DATABASE_URL": url,
            "SIYU_CONSOLE": "false",
            "SIYU_BOOTSTRAP_PASSWORD": "crash-test-password",
            "SIYU_BOOTSTRAP_API_KEY": KEY,
            "SIYU_SECRET_KEY": "c" * 48,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "siyu.cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            assert self.process.poll() is None, "siyu serve exited"
            time.sleep(0.2)
        raise AssertionError("siyu serve did not become healthy")

    def post(self, events: list[dict[str, object]]) -> httpx.Response:
        return httpx.post(
            f"{self.base}/events/batch",
            json={"events": events},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=120,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class TestKilledMidBatch:
    def test_nothing_accepted_is_lost_and_a_resend_counts_once(
        self, db: Database, test_database: DatabaseUnderTest, tmp_path: Path
    ) -> None:
        # given: a server that has answered some batches, and a client sending more
        server = Server(test_database.url, tmp_path / "data")
        answered: list[int] = []
        try:
            for number in range(3):
                response = server.post(batch(number))
                assert response.status_code == 200, response.text[:300]
                assert response.json()["accepted"] == BATCH
                answered.append(number)
            in_flight: list[httpx.Response | Exception] = []

            def send_more() -> None:
                for number in range(3, TOTAL):
                    try:
                        response = server.post(batch(number))
                    except httpx.HTTPError as exc:
                        in_flight.append(exc)
                        return
                    if response.status_code == 200:
                        answered.append(number)

            sender = threading.Thread(target=send_more)
            sender.start()
            # when: killed while batches keep arriving
            time.sleep(1.5)
            server.kill()
            sender.join(timeout=120)
        finally:
            server.stop()
        assert in_flight, "the kill should have cut a request off"
        # then: every answered batch is there, every event intact
        with db.reading() as session:
            for number in answered:
                mine = Event.event_id.like(f"b{number}-%")
                stored = session.execute(select(func.count(), func.sum(Event.amount_fen)).where(mine)).one()
                assert tuple(stored) == (BATCH, sum(100 + n for n in range(BATCH))), number
        # and: after a restart, sending everything again stores each event exactly once
        server = Server(test_database.url, tmp_path / "data")
        try:
            for number in range(TOTAL):
                response = server.post(batch(number))
                assert response.status_code == 200, response.text[:300]
                body = response.json()
                assert body["rejected"] == 0
                if number in answered:
                    assert body["duplicates"] == BATCH, number
        finally:
            server.stop()
        with db.reading() as session:
            assert session.execute(select(func.count()).select_from(Event)).scalar_one() == TOTAL * BATCH
            orders = session.execute(select(func.sum(MemberRollup.order_count))).scalar_one()
        assert orders == TOTAL * BATCH, "rollups count each event once, whatever the crash cut off"
