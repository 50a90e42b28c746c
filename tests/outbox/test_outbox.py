"""The outbox: idempotent enqueueing, one worker round, retries with back-off, dead letters,
lease expiry, and the operator API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from siyu.db import Database
from siyu.outbox import facade as outbox
from siyu.outbox import repository, service
from siyu.outbox.facade import NewItem, RetryPolicy
from siyu.outbox.models import OutboxItem
from tests.conftest import Tenant
from tests.outbox import helpers
from tests.outbox.helpers import Recorder, attempts, item

API = "/api/v1"
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, lease=timedelta(seconds=60))


@pytest.fixture
def rec() -> Iterator[Recorder]:
    yield from helpers.reset()


def enqueue(db: Database, merchant_id: str, key: str, kind: str = "test.record", **payload: object) -> bool:
    with db.unit_of_work() as session:
        return outbox.enqueue(session, merchant_id, kind, payload or {"n": key}, key=key, now=T0)


class TestEnqueue:
    def test_a_key_is_written_once_and_the_first_payload_stands(self, db: Database, tenant: Tenant) -> None:
        # given
        assert enqueue(db, tenant.merchant_id, "k1", n=1)
        # when
        again = enqueue(db, tenant.merchant_id, "k1", n=2)
        # then
        assert again is False
        row = item(db, tenant.merchant_id, "k1")
        assert (row.payload, row.status, row.attempts, row.available_at) == ({"n": 1}, "pending", 0, T0)

    def test_the_same_key_at_two_merchants_is_two_items(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        a, b = make_tenant("甲"), make_tenant("乙")
        assert enqueue(db, a.merchant_id, "same")
        assert enqueue(db, b.merchant_id, "same")

    def test_enqueue_many_counts_only_new_keys(self, db: Database, tenant: Tenant) -> None:
        # given
        enqueue(db, tenant.merchant_id, "old")
        items = [NewItem("test.record", k, {"k": k}) for k in ("old", "a", "b", "a")]
        # when
        with db.unit_of_work() as session:
            new = outbox.enqueue_many(session, tenant.merchant_id, items, now=T0)
        # then
        assert new == 2
        with db.reading() as session:
            keys = session.execute(select(OutboxItem.key).order_by(OutboxItem.key)).scalars().all()
        assert keys == ["a", "b", "old"]

    def test_an_item_rolls_back_with_the_callers_transaction(self, db: Database, tenant: Tenant) -> None:
        # when
        def decide_and_fail() -> None:
            with db.unit_of_work() as session:
                outbox.enqueue(session, tenant.merchant_id, "test.record", {}, key="k", now=T0)
                raise RuntimeError("the decision failed")

        with pytest.raises(RuntimeError):
            decide_and_fail()
        # then
        with db.reading() as session:
            assert session.execute(select(func.count()).select_from(OutboxItem)).scalar_one() == 0

    def test_available_at_holds_an_item_back(self, db: Database, tenant: Tenant, rec: Recorder) -> None:
        # given
        with db.unit_of_work() as session:
            outbox.enqueue(
                session,
                tenant.merchant_id,
                "test.record",
                {},
                key="later",
                now=T0,
                available_at=T0 + timedelta(hours=1),
            )
        # when / then
        assert outbox.run_once(db, now=T0 + timedelta(minutes=59), policy=POLICY) == 0
        assert outbox.run_once(db, now=T0 + timedelta(hours=1), policy=POLICY) == 1
        assert rec.keys() == ["later"]


class TestRound:
    def test_a_handled_item_is_done_and_its_attempt_logged(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given
        enqueue(db, tenant.merchant_id, "k1")
        # when
        processed = outbox.run_once(db, now=T0, policy=POLICY, worker="w1")
        # then
        assert processed == 1
        assert rec.seen == [("k1", rec.seen[0][1], 1)]
        row = item(db, tenant.merchant_id, "k1")
        assert (row.status, row.attempts, row.done_at, row.lease_until) == ("done", 1, T0, None)
        (attempt,) = attempts(db, tenant.merchant_id, row.id)
        assert (attempt.number, attempt.worker, attempt.outcome, attempt.error) == (1, "w1", "done", None)
        assert outbox.run_once(db, now=T0 + timedelta(days=1), policy=POLICY) == 0

    def test_a_failure_is_retried_after_a_back_off_then_dead(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given: a handler that always fails
        enqueue(db, tenant.merchant_id, "flaky")
        rec.behaviour["flaky"] = ConnectionError("receiver down")
        now = T0
        waits = []
        # when: run until it is dead
        for _ in range(POLICY.max_attempts):
            assert outbox.run_once(db, now=now, policy=POLICY) == 1
            row = item(db, tenant.merchant_id, "flaky")
            if row.status == "dead":
                break
            assert row.status == "pending"
            assert outbox.run_once(db, now=row.available_at - timedelta(seconds=1), policy=POLICY) == 0
            waits.append(row.available_at - now)
            now = row.available_at
        # then: back-off doubled each time (10 s, 20 s ± 20 %), dead after the last attempt
        assert len(waits) == POLICY.max_attempts - 1
        for n, wait in enumerate(waits, start=1):
            nominal = POLICY.nominal_delay(n).total_seconds()
            assert nominal * 0.8 <= wait.total_seconds() <= nominal * 1.2
        row = item(db, tenant.merchant_id, "flaky")
        assert (row.status, row.attempts) == ("dead", POLICY.max_attempts)
        assert "gave up after 3 attempts" in (row.last_error or "")
        assert "ConnectionError: receiver down" in (row.last_error or "")
        outcomes = [a.outcome for a in attempts(db, tenant.merchant_id, row.id)]
        assert outcomes == ["retry", "retry", "dead"]
        assert len(rec.keys()) == POLICY.max_attempts

    def test_retry_after_is_honoured(self, db: Database, tenant: Tenant, rec: Recorder) -> None:
        enqueue(db, tenant.merchant_id, "later", kind="test.retry_later")
        outbox.run_once(db, now=T0, policy=POLICY)
        row = item(db, tenant.merchant_id, "later")
        assert (row.status, row.available_at) == ("pending", T0 + timedelta(minutes=7))
        assert row.last_error == "the receiver asked us to come back"

    def test_permanent_is_dead_at_once(self, db: Database, tenant: Tenant, rec: Recorder) -> None:
        enqueue(db, tenant.merchant_id, "no", kind="test.permanent")
        outbox.run_once(db, now=T0, policy=POLICY)
        row = item(db, tenant.merchant_id, "no")
        assert (row.status, row.attempts, row.last_error) == (
            "dead",
            1,
            "permanent: the receiver refuses this item",
        )

    def test_an_unknown_kind_is_dead_with_a_clear_error(self, db: Database, tenant: Tenant) -> None:
        enqueue(db, tenant.merchant_id, "x", kind="nobody.handles.this")
        outbox.run_once(db, now=T0, policy=POLICY)
        row = item(db, tenant.merchant_id, "x")
        assert row.status == "dead"
        assert "no handler for kind 'nobody.handles.this'" in (row.last_error or "")
        assert "siyu.wiring" in (row.last_error or "")

    def test_items_are_claimed_in_due_order_and_by_batch(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        with db.unit_of_work() as session:
            for n in range(5):
                outbox.enqueue(
                    session,
                    tenant.merchant_id,
                    "test.record",
                    {},
                    key=f"k{n}",
                    now=T0,
                    available_at=T0 - timedelta(minutes=n),
                )
        assert outbox.run_once(db, limit=2, now=T0, policy=POLICY) == 2
        assert sorted(rec.keys()) == ["k3", "k4"]
        assert outbox.run_once(db, limit=10, now=T0, policy=POLICY) == 3


class TestBatchHandler:
    def test_a_round_hands_its_items_of_a_kind_to_the_batch_handler_in_one_call(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given: three items of a kind with a batch handler, one of a kind without
        for key in ("b1", "b2", "b3"):
            enqueue(db, tenant.merchant_id, key, kind="test.batch")
        enqueue(db, tenant.merchant_id, "single")
        # when
        assert outbox.run_once(db, now=T0, policy=POLICY, worker="w1") == 4
        # then: one batch call; the other kind one by one; all done with an attempt logged each
        assert helpers.batches == [["b1", "b2", "b3"]]
        assert rec.keys() == ["single"]
        for key in ("b1", "b2", "b3", "single"):
            row = item(db, tenant.merchant_id, key)
            assert (row.status, row.attempts) == ("done", 1)
            (attempt,) = attempts(db, tenant.merchant_id, row.id)
            assert attempt.outcome == "done"

    def test_each_item_gets_its_own_outcome(self, db: Database, tenant: Tenant, rec: Recorder) -> None:
        # given
        for key in ("ok", "later", "never", "skipped"):
            enqueue(db, tenant.merchant_id, key, kind="test.batch")
        rec.behaviour.update(
            later=outbox.Retry("come back", after=timedelta(minutes=3)),
            never=outbox.Permanent("refused"),
            skipped="skip",
        )
        # when
        outbox.run_once(db, now=T0, policy=POLICY, worker="w1")
        # then: the skipped item went through the one-item handler, the others as answered
        assert rec.keys() == ["skipped"]
        assert item(db, tenant.merchant_id, "ok").status == "done"
        assert item(db, tenant.merchant_id, "skipped").status == "done"
        later = item(db, tenant.merchant_id, "later")
        assert (later.status, later.available_at, later.last_error) == (
            "pending",
            T0 + timedelta(minutes=3),
            "come back",
        )
        never = item(db, tenant.merchant_id, "never")
        assert (never.status, never.last_error) == ("dead", "permanent: refused")

    def test_an_item_reclaimed_during_the_batch_is_not_recorded_done(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given: while the batch runs, another worker takes one of its items over
        for key in ("kept-1", "taken", "kept-2"):
            enqueue(db, tenant.merchant_id, key, kind="test.batch")

        def take_over(view: object) -> None:
            with db.unit_of_work() as session:
                session.execute(update(OutboxItem).where(OutboxItem.key == "taken").values(worker="w2"))

        rec.behaviour["taken"] = take_over
        # when
        report = service.run_round(db, now=T0, policy=POLICY, worker="w1")
        # then: the other two are done; the taken one stays with w2, its attempt abandoned
        assert (report.done, report.lost) == (2, 1)
        assert item(db, tenant.merchant_id, "kept-1").status == "done"
        taken = item(db, tenant.merchant_id, "taken")
        assert (taken.status, taken.worker) == ("in_flight", "w2")
        (attempt,) = attempts(db, tenant.merchant_id, taken.id)
        assert attempt.outcome == "abandoned"

    def test_a_batch_that_raises_is_run_again_one_by_one(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given: one item makes the whole batch fail, and fails alone too
        for key in ("a", "bad", "c"):
            enqueue(db, tenant.merchant_id, key, kind="test.batch")
        helpers.explode.add("bad")
        rec.behaviour["bad"] = RuntimeError("bad alone")
        # when
        outbox.run_once(db, now=T0, policy=POLICY, worker="w1")
        # then: the good items are done through the one-item handler; only the bad one retries
        assert helpers.batches == [["a", "bad", "c"]]
        assert sorted(rec.keys()) == ["a", "bad", "c"]
        assert item(db, tenant.merchant_id, "a").status == "done"
        assert item(db, tenant.merchant_id, "c").status == "done"
        bad = item(db, tenant.merchant_id, "bad")
        assert (bad.status, bad.last_error) == ("pending", "RuntimeError: bad alone")


class TestLease:
    def test_an_item_of_a_dead_worker_is_reclaimed_when_its_lease_ends_under_the_same_key(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        # given: a worker claimed the item and died before reporting
        enqueue(db, tenant.merchant_id, "k1")
        with db.unit_of_work() as session:
            (claim,) = repository.claim(
                session, now=T0, limit=10, lease_until=T0 + POLICY.lease, worker="dead-worker"
            )
        # when: another worker looks before and after the lease ends
        before = outbox.run_once(db, now=T0 + POLICY.lease - timedelta(seconds=1), policy=POLICY)
        after = outbox.run_once(db, now=T0 + POLICY.lease, policy=POLICY, worker="w2")
        # then
        assert (before, after) == (0, 1)
        assert rec.seen == [("k1", rec.seen[0][1], 2)]
        row = item(db, tenant.merchant_id, "k1")
        assert (row.status, row.attempts, row.worker) == ("done", 2, "w2")
        log = attempts(db, tenant.merchant_id, row.id)
        assert [(a.number, a.worker, a.outcome) for a in log] == [
            (1, "dead-worker", "abandoned"),
            (2, "w2", "done"),
        ]
        # and: the late report of the first worker changes nothing
        with db.unit_of_work() as session:
            held = repository.finish(session, claim, outbox_outcome("retry"), now=T0, retry_at=T0)
        assert held is False
        assert item(db, tenant.merchant_id, "k1").status == "done"

    def test_an_item_whose_workers_keep_dying_is_dead_after_max_attempts(
        self, db: Database, tenant: Tenant, rec: Recorder
    ) -> None:
        enqueue(db, tenant.merchant_id, "poison")
        now = T0
        for _ in range(POLICY.max_attempts):
            with db.unit_of_work() as session:
                repository.claim(session, now=now, limit=1, lease_until=now + POLICY.lease, worker="crashing")
            now += POLICY.lease
        outbox.run_once(db, now=now, policy=POLICY)
        row = item(db, tenant.merchant_id, "poison")
        assert row.status == "dead"
        assert "never reported" in (row.last_error or "")
        assert rec.keys() == []


def outbox_outcome(value: str):  # type: ignore[no-untyped-def]
    from siyu.outbox.models import AttemptOutcome

    return AttemptOutcome(value)


class TestPolicy:
    def test_back_off_doubles_from_ten_seconds_and_is_capped_at_an_hour(self) -> None:
        policy = RetryPolicy()
        nominal = [policy.nominal_delay(n).total_seconds() for n in range(1, 11)]
        assert nominal == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
        for n in range(1, 12):
            assert policy.delay(n) <= policy.cap


class TestOperatorApi:
    def dead_item(self, db: Database, tenant: Tenant, rec: Recorder) -> str:
        enqueue(db, tenant.merchant_id, "dead", kind="test.permanent")
        outbox.run_once(db, now=T0, policy=POLICY)
        return item(db, tenant.merchant_id, "dead").id

    def test_list_by_status_show_with_attempts_and_requeue(
        self, db: Database, client: TestClient, tenant: Tenant, rec: Recorder
    ) -> None:
        # given
        item_id = self.dead_item(db, tenant, rec)
        enqueue(db, tenant.merchant_id, "waiting")
        # when
        dead = client.get(f"{API}/outbox/items", params={"status": "dead"}, headers=tenant.headers).json()
        everything = client.get(f"{API}/outbox/items", params={"limit": 1}, headers=tenant.headers).json()
        shown = client.get(f"{API}/outbox/items/{item_id}", headers=tenant.headers).json()
        requeued = client.post(f"{API}/outbox/items/{item_id}/retry", headers=tenant.headers)
        # then
        assert [i["key"] for i in dead["items"]] == ["dead"]
        assert len(everything["items"]) == 1
        assert everything["next_cursor"]
        assert shown["status"] == "dead"
        assert shown["payload"] == {"n": "dead"}
        assert [a["outcome"] for a in shown["attempt_log"]] == ["dead"]
        assert requeued.status_code == 200, requeued.text
        assert (requeued.json()["status"], requeued.json()["attempts"]) == ("pending", 0)
        assert client.post(f"{API}/outbox/items/{item_id}/retry", headers=tenant.headers).status_code == 409

    def test_another_merchant_cannot_see_or_requeue(
        self,
        db: Database,
        client: TestClient,
        make_tenant,
        rec: Recorder,  # type: ignore[no-untyped-def]
    ) -> None:
        owner, other = make_tenant("甲"), make_tenant("乙")
        item_id = self.dead_item(db, owner, rec)
        assert client.get(f"{API}/outbox/items/{item_id}", headers=other.headers).status_code == 404
        assert client.post(f"{API}/outbox/items/{item_id}/retry", headers=other.headers).status_code == 404
        assert client.get(f"{API}/outbox/items", headers=other.headers).json()["items"] == []

    def test_scopes_are_required(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        reader = make_tenant("只读", scopes=["outbox:read"])
        assert client.get(f"{API}/outbox/items", headers=reader.headers).status_code == 200
        assert client.post(f"{API}/outbox/items/obx_x/retry", headers=reader.headers).status_code == 403
