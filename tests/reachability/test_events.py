"""Events drive reachability: follows, favourites, subscriptions — latest fact wins, in any order."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.db import Database
from tests.conftest import Tenant
from tests.reachability.helpers import (
    consume,
    ev,
    follow,
    following,
    grant,
    long_term,
    quota,
    reach,
    send,
    unfollow,
    unsubscribe,
)


class TestEventsDriveState:
    def test_each_channel_follows_its_events(self, client: TestClient, tenant: Tenant) -> None:
        # given
        member = send(
            client,
            tenant,
            follow("f1", 1, account="2088life"),
            ev("fav", "favorite", minutes=2),
            long_term("l1", 3, template="tpl-news"),
            grant("g1", 4),
            grant("g2", 5),
        )
        # when
        view = reach(client, tenant, member)
        # then
        assert following(view, "2088life")
        assert view["mini_program"] == {
            "reachable": True,
            "favorited": True,
            "changed_at": "2026-11-01T02:02:00Z",
        }
        templates = {
            t["template_id"]: (t["long_term"], t["remaining"]) for t in view["subscription"]["templates"]
        }
        assert templates == {"tpl-news": (True, 0), "tpl-order": (False, 2)}
        assert view["subscription"]["templates"][0]["via"] == "mini_program"
        assert view["operable"] is True
        assert view["reachable_channels"] == ["subscription", "life_account", "mini_program"]

    def test_an_old_unfollow_arriving_late_keeps_the_member_following(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a follow at minute 10
        member = send(client, tenant, follow("f1", 10))
        # when: an unfollow from minute 5 arrives afterwards
        send(client, tenant, unfollow("u1", 5))
        # then
        view = reach(client, tenant, member)
        assert following(view)
        assert [
            (c["field"], c["old_value"], c["new_value"], c["source"]) for c in view["recent_changes"]
        ] == [("following", "false", "true", "event:f1")]

    def test_an_old_follow_arriving_late_does_not_undo_a_newer_unfollow(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: only an unfollow is known (the member never followed as far as we know)
        member = send(client, tenant, unfollow("u1", 10))
        # when
        send(client, tenant, follow("f1", 5))
        # then
        view = reach(client, tenant, member)
        assert not following(view)
        assert view["operable"] is False
        assert view["recent_changes"] == []

    def test_a_newer_unfollow_ends_the_follow(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, follow("f1", 5))
        send(client, tenant, unfollow("u1", 10))
        view = reach(client, tenant, member)
        assert not following(view)
        changes = [(c["new_value"], c["source"], c["at"]) for c in view["recent_changes"]]
        assert changes == [
            ("false", "event:u1", "2026-11-01T02:10:00Z"),
            ("true", "event:f1", "2026-11-01T02:05:00Z"),
        ]

    def test_out_of_order_inside_one_batch(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, follow("f2", 30), unfollow("u1", 20), follow("f1", 10))
        assert following(reach(client, tenant, member))

    def test_at_equal_times_the_withdrawal_wins_in_either_order(
        self, client: TestClient, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        first, second = make_tenant("一"), make_tenant("二")
        a = send(client, first, follow("f", 7))
        send(client, first, unfollow("u", 7))
        b = send(client, second, unfollow("u", 7))
        send(client, second, follow("f", 7))
        assert not following(reach(client, first, a))
        assert not following(reach(client, second, b))

    def test_follows_are_per_life_account(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, follow("a", 1, account="acct-a"), follow("b", 2, account="acct-b"))
        send(client, tenant, unfollow("ub", 3, account="acct-b"))
        view = reach(client, tenant, member)
        assert following(view, "acct-a")
        assert not following(view, "acct-b")
        assert view["life_account"]["reachable"] is True

    def test_a_repeated_batch_changes_nothing(self, client: TestClient, tenant: Tenant) -> None:
        events = [grant("g1", 1), grant("g2", 2), follow("f1", 3)]
        member = send(client, tenant, *events)
        before = reach(client, tenant, member)
        send(client, tenant, *events)
        assert reach(client, tenant, member) == before
        assert quota(before) == 2


class TestSubscriptionQuota:
    def test_each_one_time_subscription_adds_one(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, grant("g1", 1))
        send(client, tenant, grant("g2", 2), grant("g3", 3))
        view = reach(client, tenant, member)
        assert quota(view) == 3
        assert [(c["old_value"], c["new_value"]) for c in view["recent_changes"]] == [("1", "3"), ("0", "1")]

    def test_an_unsubscribe_voids_older_grants_and_keeps_newer_ones(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        member = send(client, tenant, grant("g1", 1), grant("g2", 2), unsubscribe("u", 3), grant("g4", 4))
        assert quota(reach(client, tenant, member)) == 1

    def test_a_late_unsubscribe_keeps_only_the_grants_after_it(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: three grants counted, at minutes 1, 2 and 4
        member = send(client, tenant, grant("g1", 1), grant("g2", 2), grant("g4", 4))
        assert quota(reach(client, tenant, member)) == 3
        # when: the unsubscribe of minute 3 arrives late
        send(client, tenant, unsubscribe("u", 3))
        # then: only the grant of minute 4 remains
        view = reach(client, tenant, member)
        assert quota(view) == 1
        assert view["recent_changes"][0]["source"] == "event:u"

    def test_a_late_unsubscribe_never_gives_back_what_was_sent(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: grants at minutes 1 and 5, both used by sends
        member = send(client, tenant, grant("g1", 1), grant("g5", 5))
        assert [consume(db, tenant, member), consume(db, tenant, member)] == [True, True]
        # when: an unsubscribe of minute 3 arrives
        send(client, tenant, unsubscribe("u", 3))
        # then: nothing is left to send (min of what is left and what was granted after)
        assert quota(reach(client, tenant, member)) == 0
        assert consume(db, tenant, member) is False

    def test_grants_older_than_a_known_unsubscribe_do_not_count(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        member = send(client, tenant, unsubscribe("u", 10))
        send(client, tenant, grant("g1", 5), grant("g2", 10), grant("g3", 11))
        assert quota(reach(client, tenant, member)) == 1

    def test_long_term_ends_only_with_a_newer_unsubscribe(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, long_term("l", 5))
        send(client, tenant, unsubscribe("old", 4, template="tpl-long"))
        (template,) = reach(client, tenant, member)["subscription"]["templates"]
        assert template["long_term"] is True
        send(client, tenant, unsubscribe("new", 6, template="tpl-long"))
        (template,) = reach(client, tenant, member)["subscription"]["templates"]
        assert (template["long_term"], template["reachable"]) == (False, False)


def _batches(events: list[dict[str, object]], seed: int, split: int) -> list[list[dict[str, object]]]:
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    size = max(1, len(shuffled) // split)
    return [shuffled[start : start + size] for start in range(0, len(shuffled), size)]


follows = st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=20)), min_size=1, max_size=10)
subscriptions = st.lists(
    st.tuples(st.sampled_from(["grant", "unsubscribe"]), st.integers(min_value=0, max_value=20)),
    min_size=1,
    max_size=12,
)


class TestOrderIndependence:
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(facts=follows, seed=st.integers(0, 10**6), split=st.integers(1, 4))
    def test_any_order_of_follows_gives_the_state_of_the_latest(
        self, client: TestClient, make_tenant, facts: list[tuple[bool, int]], seed: int, split: int
    ) -> None:  # type: ignore[no-untyped-def]
        # given: follow/unfollow events at random minutes (often equal), sent in a random order and batching
        tenant = make_tenant("性质")
        events = [(follow if on else unfollow)(f"e{n}", minute) for n, (on, minute) in enumerate(facts)]
        # when
        member = ""
        for batch in _batches(events, seed, split):
            member = send(client, tenant, *batch)
        # then: the latest event decides; at equal times an unfollow wins
        latest = max(facts, key=lambda f: (f[1], not f[0]))
        assert following(reach(client, tenant, member)) is latest[0]

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(facts=subscriptions, seed=st.integers(0, 10**6), split=st.integers(1, 4))
    def test_any_order_of_one_time_subscriptions_gives_the_grants_after_the_latest_unsubscribe(
        self, client: TestClient, make_tenant, facts: list[tuple[str, int]], seed: int, split: int
    ) -> None:  # type: ignore[no-untyped-def]
        # given
        tenant = make_tenant("配额")
        events = [
            (grant if kind == "grant" else unsubscribe)(f"e{n}", minute)
            for n, (kind, minute) in enumerate(facts)
        ]
        # when
        member = ""
        for batch in _batches(events, seed, split):
            member = send(client, tenant, *batch)
        # then
        opt_outs = [minute for kind, minute in facts if kind == "unsubscribe"]
        cut = max(opt_outs, default=-1)
        expected = sum(1 for kind, minute in facts if kind == "grant" and minute > cut)
        assert quota(reach(client, tenant, member)) == expected
