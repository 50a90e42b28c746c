"""Kill the worker mid-delivery: every item is still delivered, always under its one key.

A real ``siyu worker`` process delivers ``webhook.event`` items to a real local HTTP receiver that
records every request. The receiver stalls on one item; while it does, the worker is killed with
SIGKILL (it has sent that item but not recorded the outcome). A second worker then reclaims what
the first held once its lease ends. Every item must arrive; each key always carries the same body
(no item under two keys); de-duplicated by key, each item arrives exactly once; and the item in
flight at the kill arrives again under the same key (at least once, never lost).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from siyu.channels.webhooks import verify_signature
from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.outbox import facade as outbox
from siyu.outbox.models import OutboxItem
from tests.channels.receiver import Received, receiver
from tests.conftest import DatabaseUnderTest, Tenant

ITEMS = 30
STALL_AT = 10
LEASE_SECONDS = 3
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def key_of(n: int) -> str:
    return f"evt-{n:02d}"


def status_counts(db: Database, merchant_id: str) -> dict[str, int]:
    with db.reading() as session:
        rows = session.execute(
            select(OutboxItem.status, func.count())
            .where(OutboxItem.merchant_id == merchant_id)
            .group_by(OutboxItem.status)
        ).all()
    return {status: int(n) for status, n in rows}


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "siyu.cli", "worker", "--poll", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


class TestKilledWorker:
    def test_every_item_arrives_once_per_key_after_a_kill_mid_delivery(
        self,
        db: Database,
        client: TestClient,
        tenant: Tenant,
        test_database: DatabaseUnderTest,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        stalled, release = threading.Event(), threading.Event()

        def respond(request: Received) -> tuple[int, bytes, str]:
            if request.headers.get("idempotency-key") == key_of(STALL_AT) and not stalled.is_set():
                stalled.set()
                release.wait(60)  # hold the first worker mid-delivery until it is killed
            return 200, b"{}", "application/json"

        with receiver(respond) as hooks:
            # given: the merchant's webhook, and items waiting in the outbox
            answer = client.put("/api/v1/channels/webhook", json={"url": hooks.url}, headers=tenant.headers)
            assert answer.status_code == 200, answer.text
            secret = answer.json()["secret"]
            with db.unit_of_work() as session:
                for n in range(ITEMS):
                    outbox.enqueue(
                        session,
                        tenant.merchant_id,
                        "webhook.event",
                        {"event": "test.kill", "data": {"n": n}},
                        key=key_of(n),
                        now=T0,
                    )
            env = {
                **os.environ,
                "SIYU_DATABASE_URL": test_database.url,
                "SIYU_DATA_DIR": str(tmp_path / "data"),
                "SIYU_SECRET_KEY": settings.resolved_secret_key(),
                "SIYU_OUTBOX_LEASE": str(LEASE_SECONDS),
            }
            # when: the first worker is killed while the receiver holds one delivery
            first = start_worker(env)
            try:
                assert stalled.wait(120), "the worker never reached the stalled item"
                first.send_signal(signal.SIGKILL)
                output = first.communicate(timeout=60)[0].decode(errors="replace")
            finally:
                release.set()
                if first.poll() is None:
                    first.kill()
            assert first.returncode == -signal.SIGKILL, output
            counts = status_counts(db, tenant.merchant_id)
            assert counts.get("done", 0) == STALL_AT, counts
            assert counts.get("in_flight", 0) == ITEMS - STALL_AT, counts
            # and: a second worker runs until the outbox is drained, then is stopped politely
            second = start_worker(env)
            try:
                deadline = time.monotonic() + 120
                while status_counts(db, tenant.merchant_id).get("done", 0) < ITEMS:
                    assert time.monotonic() < deadline, status_counts(db, tenant.merchant_id)
                    assert second.poll() is None, second.communicate()[0].decode(errors="replace")
                    time.sleep(0.1)
                second.send_signal(signal.SIGTERM)
                output = second.communicate(timeout=60)[0].decode(errors="replace")
            finally:
                if second.poll() is None:
                    second.kill()
            assert second.returncode == 0, output
            received = hooks.snapshot()

        # then: every request is signed with the merchant's secret
        for request in received:
            assert verify_signature(
                secret,
                request.headers["siyu-timestamp"],
                request.body,
                request.headers["siyu-signature"],
                now=utcnow(),
            )
        # … each key always carries the same body, which names that key and its own item
        bodies: dict[str, set[bytes]] = defaultdict(set)
        for request in received:
            bodies[request.headers["idempotency-key"]].add(request.body)
        assert sorted(bodies) == [key_of(n) for n in range(ITEMS)], "none lost"
        for key, versions in bodies.items():
            assert len(versions) == 1, f"{key} arrived with different bodies"
            document = json.loads(next(iter(versions)))
            assert document["id"] == key
            assert key_of(document["data"]["n"]) == key
        # … de-duplicated by key, each item arrives exactly once; the one in flight came again
        arrivals = defaultdict(int)
        for request in received:
            arrivals[request.headers["idempotency-key"]] += 1
        assert len(arrivals) == ITEMS
        assert arrivals[key_of(STALL_AT)] == 2, "delivered again after the kill, under the same key"
        assert sum(arrivals.values()) == ITEMS + 1
        assert status_counts(db, tenant.merchant_id) == {"done": ITEMS}
