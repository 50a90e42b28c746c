"""Reachability API: consents, guides, the operable rule, the summary, scopes and tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from siyu.db import Database
from siyu.kit.clock import utcnow
from tests.conftest import Tenant
from tests.reachability.helpers import (
    OPENID,
    PHONE,
    consent,
    consume,
    ev,
    follow,
    grant,
    long_term,
    reach,
    send,
)


def make_staff(client: TestClient, tenant: Tenant, login: str, role: str = "guide") -> str:
    response = client.post(
        "/api/v1/staff", json={"login": login, "role": role, "password": "password-1"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def member_with(client: TestClient, tenant: Tenant, identities: dict[str, str], name: str = "v") -> str:
    return send(client, tenant, ev(name, "visit", identities=identities))


class TestConsents:
    def test_the_log_is_append_only_and_the_latest_consent_is_in_force(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        member = member_with(client, tenant, PHONE)
        t1, t2 = utcnow() - timedelta(days=2), utcnow() - timedelta(days=1)
        # when: granted, withdrawn, then a paper form from before the withdrawal is entered late
        first = consent(client, tenant, member, "grant", at=t1.isoformat(), method="mini_program_popup")
        second = consent(client, tenant, member, "withdraw", at=t2.isoformat(), method="sms_reply")
        late = consent(
            client,
            tenant,
            member,
            "grant",
            at=(t1 + timedelta(hours=1)).isoformat(),
            method="paper_form",
            notice_version="privacy-v3",
            evidence="scan-0001",
        )
        # then
        assert first["current"]["granted"] is True
        assert second["current"]["granted"] is False
        assert late["current"] == {
            "purpose": "sms_marketing",
            "granted": False,
            "at": second["record"]["at"],
            "record_id": second["record"]["id"],
            "source": f"api:{tenant.key_id}",
        }
        listed = client.get(f"/api/v1/members/{member}/consents", headers=tenant.headers).json()
        assert [r["action"] for r in listed["items"]] == ["grant", "withdraw", "grant"]
        assert listed["items"][2]["evidence"] == "scan-0001"
        assert [c["granted"] for c in listed["current"]] == [False]
        view = reach(client, tenant, member)
        assert view["sms"]["consent"] is False
        assert [(c["field"], c["new_value"]) for c in view["recent_changes"]] == [
            ("consent", "false"),
            ("consent", "true"),
        ]

    def test_sms_needs_consent_and_a_phone(self, client: TestClient, tenant: Tenant) -> None:
        # given: one member with a phone, one without
        with_phone = member_with(client, tenant, PHONE, "a")
        without = member_with(client, tenant, OPENID, "b")
        # when
        consent(client, tenant, with_phone, "grant")
        consent(client, tenant, without, "grant")
        # then
        a, b = reach(client, tenant, with_phone), reach(client, tenant, without)
        assert a["sms"] == {**a["sms"], "reachable": True, "consent": True, "has_phone": True}
        assert b["sms"] == {**b["sms"], "reachable": False, "consent": True, "has_phone": False}
        assert (a["operable"], b["operable"]) == (True, False)
        # and: a phone learnt later makes the consent usable
        send(client, tenant, ev("link", "visit", identities={**OPENID, "phone": "13900139000"}))
        assert reach(client, tenant, without)["sms"]["reachable"] is True

    def test_other_purposes_are_recorded_but_drive_no_channel(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        member = member_with(client, tenant, PHONE)
        body = {"purpose": "custom.wine_club_newsletter", "action": "grant"}
        response = client.post(f"/api/v1/members/{member}/consents", json=body, headers=tenant.headers)
        assert response.status_code == 201
        consent(client, tenant, member, "grant", purpose="personalised_recommendation")
        listed = client.get(f"/api/v1/members/{member}/consents", headers=tenant.headers).json()
        assert [c["purpose"] for c in listed["current"]] == [
            "custom.wine_club_newsletter",
            "personalised_recommendation",
        ]
        assert reach(client, tenant, member)["operable"] is False

    @pytest.mark.parametrize(
        ("body", "pointer"),
        [
            ({"purpose": "spam_everyone", "action": "grant"}, "/purpose"),
            ({"purpose": "sms_marketing", "action": "maybe"}, "/action"),
            ({"purpose": "sms_marketing", "action": "grant", "at": "2026-11-01T10:00:00"}, "/at"),
            ({"purpose": "sms_marketing", "action": "grant", "colour": "red"}, "/colour"),
        ],
    )
    def test_bad_consents_are_422_with_the_pointer(
        self, client: TestClient, tenant: Tenant, body: dict[str, object], pointer: str
    ) -> None:
        member = member_with(client, tenant, PHONE)
        response = client.post(f"/api/v1/members/{member}/consents", json=body, headers=tenant.headers)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["pointer"] == pointer

    def test_a_consent_dated_in_the_future_is_refused(self, client: TestClient, tenant: Tenant) -> None:
        member = member_with(client, tenant, PHONE)
        body = {
            "purpose": "sms_marketing",
            "action": "grant",
            "at": (utcnow() + timedelta(hours=1)).isoformat(),
        }
        response = client.post(f"/api/v1/members/{member}/consents", json=body, headers=tenant.headers)
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/at"

    def test_a_retry_with_the_same_idempotency_key_records_once(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        member = member_with(client, tenant, PHONE)
        headers = {**tenant.headers, "Idempotency-Key": "consent-1"}
        body = {"purpose": "sms_marketing", "action": "grant"}
        first = client.post(f"/api/v1/members/{member}/consents", json=body, headers=headers)
        again = client.post(f"/api/v1/members/{member}/consents", json=body, headers=headers)
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        listed = client.get(f"/api/v1/members/{member}/consents", headers=tenant.headers).json()
        assert len(listed["items"]) == 1

    def test_the_consent_log_is_paginated(self, client: TestClient, tenant: Tenant) -> None:
        member = member_with(client, tenant, PHONE)
        for action in ("grant", "withdraw", "grant"):
            consent(client, tenant, member, action)
        url = f"/api/v1/members/{member}/consents"
        first = client.get(f"{url}?limit=2", headers=tenant.headers).json()
        rest = client.get(f"{url}?limit=2&cursor={first['next_cursor']}", headers=tenant.headers).json()
        assert [len(first["items"]), len(rest["items"]), rest["next_cursor"]] == [2, 1, None]


class TestGuides:
    def test_assign_reassign_and_unassign(self, client: TestClient, tenant: Tenant) -> None:
        # given
        member = member_with(client, tenant, PHONE)
        anna, bo = make_staff(client, tenant, "anna"), make_staff(client, tenant, "bo")
        url = f"/api/v1/members/{member}/guide"
        # when
        assigned = client.put(url, json={"staff_id": anna}, headers=tenant.headers)
        client.put(url, json={"staff_id": anna}, headers=tenant.headers)
        client.put(url, json={"staff_id": bo}, headers=tenant.headers)
        view = reach(client, tenant, member)
        removed = client.delete(url, headers=tenant.headers)
        # then
        assert assigned.json() == {"member_id": member, "staff_id": anna, "assigned": True}
        assert view["guide"]["staff_id"] == bo
        assert view["operable"] is True
        assert removed.json() == {"member_id": member, "staff_id": None, "assigned": False}
        after = reach(client, tenant, member)
        assert (after["guide"]["reachable"], after["operable"]) == (False, False)
        log = [(c["old_value"], c["new_value"]) for c in after["recent_changes"]]
        assert log == [(bo, None), (anna, bo), (None, anna)], "the repeated assignment changed nothing"

    def test_a_guide_of_another_merchant_is_refused(
        self, client: TestClient, tenant: Tenant, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        other = make_tenant("别家")
        member = member_with(client, tenant, PHONE)
        theirs = make_staff(client, other, "their-guide")
        response = client.put(
            f"/api/v1/members/{member}/guide", json={"staff_id": theirs}, headers=tenant.headers
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["pointer"] == "/staff_id"
        assert reach(client, tenant, member)["guide"]["staff_id"] is None

    def test_unknown_or_deactivated_staff_is_refused(self, client: TestClient, tenant: Tenant) -> None:
        member = member_with(client, tenant, PHONE)
        gone = make_staff(client, tenant, "gone")
        client.patch(f"/api/v1/staff/{gone}", json={"active": False}, headers=tenant.headers)
        url = f"/api/v1/members/{member}/guide"
        assert client.put(url, json={"staff_id": "stf_nobody"}, headers=tenant.headers).status_code == 422
        assert client.put(url, json={"staff_id": gone}, headers=tenant.headers).status_code == 422


class TestOperable:
    @pytest.mark.parametrize(
        "events",
        [
            [grant("g", 1)],
            [long_term("l", 1)],
            [follow("f", 1)],
            [ev("fav", "favorite", minutes=1)],
        ],
        ids=["one-time subscription", "long-term subscription", "life-account follow", "favourite"],
    )
    def test_any_owned_channel_makes_a_member_operable(
        self, client: TestClient, tenant: Tenant, events: list[dict[str, object]]
    ) -> None:
        member = send(client, tenant, *events)
        view = reach(client, tenant, member)
        assert view["operable"] is True
        assert len(view["reachable_channels"]) == 1

    def test_a_member_with_nothing_or_only_withdrawals_is_not_operable(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: visits only; then withdrawals of everything; then a used-up quota
        member = member_with(client, tenant, OPENID)
        assert reach(client, tenant, member)["operable"] is False
        send(
            client,
            tenant,
            follow("f", 1, identities=OPENID),
            ev("uf", "unfollow", minutes=2, identities=OPENID),
            ev("fav", "favorite", minutes=3, identities=OPENID),
            ev("unfav", "unfavorite", minutes=4, identities=OPENID),
            grant("g", 5, identities=OPENID),
        )
        consent(client, tenant, member, "grant")
        assert reach(client, tenant, member)["reachable_channels"] == ["subscription"]
        # when
        assert consume(db, tenant, member)
        # then: an SMS consent without a phone reaches no one
        view = reach(client, tenant, member)
        assert (view["operable"], view["reachable_channels"], view["sms"]["consent"]) == (False, [], True)

    def test_the_member_360_view_shows_reachability(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, follow("f", 1))
        view = client.get(f"/api/v1/members/{member}", headers=tenant.headers).json()
        assert view["reachability"]["operable"] is True
        assert view["reachability"]["life_account"]["accounts"][0]["following"] is True
        assert len(view["reachability"]["recent_changes"]) == 1


class TestSummary:
    def test_operable_members_in_total_and_per_channel(
        self, client: TestClient, tenant: Tenant, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        # given: five members of ours, one of another merchant
        a = send(
            client,
            tenant,
            follow("a1", 1, identities={"member_no": "A"}),
            grant("a2", 2, identities={"member_no": "A"}),
        )
        send(client, tenant, ev("b1", "favorite", minutes=1, identities={"member_no": "B"}))
        c = member_with(client, tenant, PHONE, "c1")
        d = member_with(client, tenant, {"member_no": "D"}, "d1")
        member_with(client, tenant, {"member_no": "E"}, "e1")
        consent(client, tenant, c, "grant")
        consent(client, tenant, d, "grant")  # no phone: not reachable by SMS
        guide = make_staff(client, tenant, "guide-1")
        client.put(f"/api/v1/members/{a}/guide", json={"staff_id": guide}, headers=tenant.headers)
        other = make_tenant("别家")
        send(client, other, follow("x", 1))
        # when
        summary = client.get("/api/v1/reachability/summary", headers=tenant.headers).json()
        # then
        assert summary["active_members"] == 5
        assert summary["operable_members"] == 3
        assert summary["operable_share_bp"] == 6000
        assert summary["channels"] == {
            "subscription": 1,
            "life_account": 1,
            "mini_program": 1,
            "sms": 1,
            "guide": 1,
        }
        # and: the SQL rule of the summary agrees with the per-member rule of the views
        listed = client.get("/api/v1/members", headers=tenant.headers).json()["items"]
        views = [reach(client, tenant, m["id"]) for m in listed]
        assert sum(v["operable"] for v in views) == summary["operable_members"]
        for channel, count in summary["channels"].items():
            assert sum(channel in v["reachable_channels"] for v in views) == count

    def test_an_empty_merchant(self, client: TestClient, tenant: Tenant) -> None:
        summary = client.get("/api/v1/reachability/summary", headers=tenant.headers).json()
        assert (summary["active_members"], summary["operable_members"], summary["operable_share_bp"]) == (
            0,
            0,
            0,
        )


class TestAccess:
    def test_another_merchant_can_neither_read_nor_write_our_members(
        self, client: TestClient, tenant: Tenant, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        # given
        intruder = make_tenant("乙")
        member = send(client, tenant, follow("f", 1))
        consent(client, tenant, member, "grant")
        their_guide = make_staff(client, intruder, "their-guide")
        base = f"/api/v1/members/{member}"
        # when
        responses = [
            client.get(f"{base}/reachability", headers=intruder.headers),
            client.get(f"{base}/reachability/changes", headers=intruder.headers),
            client.get(f"{base}/consents", headers=intruder.headers),
            client.post(
                f"{base}/consents",
                json={"purpose": "sms_marketing", "action": "withdraw"},
                headers=intruder.headers,
            ),
            client.put(f"{base}/guide", json={"staff_id": their_guide}, headers=intruder.headers),
            client.delete(f"{base}/guide", headers=intruder.headers),
        ]
        # then
        assert [r.status_code for r in responses] == [404] * 6
        view = reach(client, tenant, member)
        assert (view["sms"]["consent"], view["guide"]["staff_id"]) == (True, None)
        summary = client.get("/api/v1/reachability/summary", headers=intruder.headers).json()
        assert summary["operable_members"] == 0

    def test_reading_and_writing_need_their_scopes(self, client: TestClient, tenant: Tenant) -> None:
        # given: keys of the same merchant with one scope each
        def key(scope: str) -> dict[str, str]:
            body = {"name": scope, "scopes": [scope]}
            created = client.post("/api/v1/api-keys", json=body, headers=tenant.headers).json()
            return {"Authorization": f"Bearer {created['secret']}"}

        member = send(client, tenant, follow("f", 1))
        reader, members_reader = key("reachability:read"), key("members:read")
        base = f"/api/v1/members/{member}"
        body = {"purpose": "sms_marketing", "action": "grant"}
        # when / then
        assert client.get(f"{base}/reachability", headers=reader).status_code == 200
        assert client.get("/api/v1/reachability/summary", headers=reader).status_code == 200
        assert client.post(f"{base}/consents", json=body, headers=reader).status_code == 403
        assert client.delete(f"{base}/guide", headers=reader).status_code == 403
        assert client.get(f"{base}/reachability", headers=members_reader).status_code == 403
        assert client.get(base, headers=members_reader).json()["reachability"]["operable"] is True

    def test_a_merged_id_answers_with_its_survivor_and_an_unknown_id_is_404(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        first = send(client, tenant, follow("f", 1, identities=PHONE))
        second = send(client, tenant, ev("v", "visit", identities=OPENID))
        send(client, tenant, ev("link", "visit", identities={**PHONE, **OPENID}))
        assert reach(client, tenant, second)["member_id"] == first
        assert client.get("/api/v1/members/mbr_nope/reachability", headers=tenant.headers).status_code == 404
