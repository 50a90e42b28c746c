"""Sending subscription messages: one-time quota consumed exactly once per send, long-term never."""

from __future__ import annotations

import threading

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.db import Database
from siyu.events import service as events
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault
from siyu.reachability.models import ReachChange
from tests.conftest import Tenant
from tests.reachability.helpers import PHONE, consume, grant, long_term, quota, reach, send
from tests.threads import run_threads


class TestConsumeSubscription:
    def test_a_one_time_quota_allows_exactly_as_many_sends(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        member = send(client, tenant, grant("g1", 1), grant("g2", 2))
        # when
        sends = [consume(db, tenant, member) for _ in range(3)]
        # then
        assert sends == [True, True, False]
        view = reach(client, tenant, member)
        assert quota(view) == 0
        assert view["operable"] is False
        logged = [(c["old_value"], c["new_value"], c["source"]) for c in view["recent_changes"][:2]]
        assert logged == [("1", "0", "send:test"), ("2", "1", "send:test")]

    def test_a_long_term_subscription_is_not_consumed(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        member = send(client, tenant, long_term("l", 1, template="tpl-order"))
        assert all(consume(db, tenant, member) for _ in range(5))
        view = reach(client, tenant, member)
        assert view["subscription"]["templates"][0]["long_term"] is True
        assert [c["field"] for c in view["recent_changes"]] == ["long_term"]

    def test_long_term_is_used_before_a_one_time_quota(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        member = send(client, tenant, grant("g", 1), long_term("l", 2, template="tpl-order"))
        assert consume(db, tenant, member)
        assert quota(reach(client, tenant, member)) == 1

    def test_nothing_to_send_without_a_subscription(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        member = send(client, tenant, grant("g", 1))
        assert consume(db, tenant, member, template="tpl-other") is False
        assert consume(db, tenant, "mbr_unknown") is False


class TestConcurrentConsumption:
    def test_n_concurrent_sends_on_a_quota_of_k_succeed_exactly_k_times(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: a quota of 5
        member = send(client, tenant, *[grant(f"g{n}", n) for n in range(5)])
        outcomes: list[bool] = []
        lock = threading.Lock()

        def work(_index: int) -> None:
            allowed = consume(db, tenant, member)
            with lock:
                outcomes.append(allowed)

        # when: 16 senders, each in its own transaction, at once
        run_threads(16, work)
        # then
        assert sorted(outcomes) == [False] * 11 + [True] * 5
        assert quota(reach(client, tenant, member)) == 0
        with db.reading() as session:
            sends = session.execute(
                select(ReachChange).where(
                    ReachChange.merchant_id == tenant.merchant_id, ReachChange.source == "send:test"
                )
            ).scalars()
            assert len(list(sends)) == 5

    def test_grants_arriving_while_sending_are_neither_lost_nor_sent_twice(
        self, app: FastAPI, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: a member with a quota of 2; then 8 batches of one grant each race 12 sends
        member = send(client, tenant, grant("g-a", 0), grant("g-b", 0))
        vault: IdentifierVault = app.state.vault
        outcomes: list[bool] = []
        lock = threading.Lock()

        def work(index: int) -> None:
            if index < 8:
                with db.unit_of_work() as session:
                    one = [grant(f"g{index}", 10 + index, identities=PHONE)]
                    verdicts = events.ingest(session, vault, tenant.merchant_id, one, now=utcnow())
                assert (verdicts[0].status, verdicts[0].member_id) == ("accepted", member)
            else:
                allowed = consume(db, tenant, member)
                with lock:
                    outcomes.append(allowed)

        # when
        run_threads(20, work)
        # then: every grant was either sent once or is still there
        assert outcomes.count(True) + quota(reach(client, tenant, member)) == 10
