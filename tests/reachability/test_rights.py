"""Merges combine reachability into the survivor; export includes it; erasure removes it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.db import Database
from siyu.reachability.models import ConsentRecord, ReachChange, ReachState
from tests.conftest import Tenant
from tests.members.test_rights import every_value
from tests.reachability.helpers import (
    OPENID,
    PHONE,
    consent,
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


def make_staff(client: TestClient, tenant: Tenant, login: str) -> str:
    body = {"login": login, "role": "guide", "password": "password-1"}
    return str(client.post("/api/v1/staff", json=body, headers=tenant.headers).json()["id"])


class TestMerge:
    def test_a_merge_combines_quotas_flags_consents_guides_and_changes(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: the same person known twice
        a = send(
            client,
            tenant,
            follow("a-follow", 5, account="acct", identities=PHONE),
            grant("a-g1", 1, identities=PHONE),
            grant("a-g2", 2, identities=PHONE),
            long_term("a-long", 3, identities=PHONE),
        )
        b = send(
            client,
            tenant,
            follow("b-follow", 1, account="acct", identities=OPENID),
            unfollow("b-unfollow", 9, account="acct", identities=OPENID),
            grant("b-g1", 4, identities=OPENID),
            ev("b-fav", "favorite", minutes=2, identities=OPENID),
        )
        consent(client, tenant, b, "grant")
        guide = make_staff(client, tenant, "guide")
        client.put(f"/api/v1/members/{b}/guide", json={"staff_id": guide}, headers=tenant.headers)
        changes_of_b = {c["id"] for c in reach(client, tenant, b)["recent_changes"]}
        # when: an event links the two identities
        survivor = send(client, tenant, ev("link", "visit", minutes=20, identities={**PHONE, **OPENID}))
        # then
        assert survivor == min(a, b)
        view = reach(client, tenant, survivor)
        assert quota(view) == 3, "one-time quotas add up"
        assert not following(view, "acct"), "the latest fact (b's unfollow at 9) wins"
        assert view["mini_program"]["favorited"] is True
        assert view["subscription"]["templates"][0]["long_term"] is True
        assert (view["sms"]["consent"], view["sms"]["reachable"]) == (True, True), "a's phone, b's consent"
        assert view["guide"]["staff_id"] == guide
        moved = {
            c["id"]
            for c in client.get(
                f"/api/v1/members/{survivor}/reachability/changes?limit=200", headers=tenant.headers
            ).json()["items"]
        }
        assert changes_of_b <= moved
        consents = client.get(f"/api/v1/members/{survivor}/consents", headers=tenant.headers).json()
        assert [c["granted"] for c in consents["current"]] == [True]
        with db.reading() as session:
            rows = session.execute(
                select(ReachState.member_id).where(ReachState.merchant_id == tenant.merchant_id)
            )
            assert set(rows.scalars()) == {survivor}, "nothing left on the merged member"
        merge_sources = {c["source"] for c in view["recent_changes"] if c["source"].startswith("merge:")}
        assert merge_sources == {f"merge:{max(a, b)}"}
        assert consume(db, tenant, survivor)

    def test_grants_older_than_the_other_records_unsubscribe_are_void(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: a's grants at minutes 1 and 2, b unsubscribed at minute 3
        send(client, tenant, grant("a1", 1, identities=PHONE), grant("a2", 2, identities=PHONE))
        send(client, tenant, unsubscribe("b-u", 3, identities=OPENID), grant("b-g", 4, identities=OPENID))
        # when
        survivor = send(client, tenant, ev("link", "visit", identities={**PHONE, **OPENID}))
        # then: only b's grant after its unsubscribe remains
        assert quota(reach(client, tenant, survivor)) == 1

    def test_an_assigned_guide_survives_the_other_records_unassignment(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        a = send(client, tenant, ev("a", "visit", identities=PHONE))
        b = send(client, tenant, ev("b", "visit", identities=OPENID))
        first, second = make_staff(client, tenant, "g1"), make_staff(client, tenant, "g2")
        client.put(f"/api/v1/members/{a}/guide", json={"staff_id": first}, headers=tenant.headers)
        client.put(f"/api/v1/members/{b}/guide", json={"staff_id": second}, headers=tenant.headers)
        client.delete(f"/api/v1/members/{b}/guide", headers=tenant.headers)
        survivor = send(client, tenant, ev("link", "visit", identities={**PHONE, **OPENID}))
        assert reach(client, tenant, survivor)["guide"]["staff_id"] == first


class TestExport:
    def test_export_has_reachability_consents_and_changes(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, follow("f", 1), grant("g", 2))
        consent(client, tenant, member, "grant", method="paper_form", evidence="form-17")
        data = client.get(f"/api/v1/members/{member}/export", headers=tenant.headers).json()
        assert data["reachability"]["operable"] is True
        assert "recent_changes" not in data["reachability"]
        assert [(c["purpose"], c["action"], c["evidence"]) for c in data["consents"]] == [
            ("sms_marketing", "grant", "form-17")
        ]
        assert {c["field"] for c in data["reachability_changes"]} == {"following", "quota", "consent"}


class TestErase:
    def test_erasure_removes_state_and_changes_and_keeps_consents_as_evidence(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        member = send(client, tenant, follow("f", 1), grant("g", 2))
        consent(client, tenant, member, "grant", evidence="表单 张三 签字")
        consent(client, tenant, member, "grant", purpose="location")
        consent(client, tenant, member, "withdraw", purpose="location")
        # when
        assert client.post(f"/api/v1/members/{member}/erase", headers=tenant.headers).status_code == 200
        # then
        with db.reading() as session:
            states = session.execute(select(ReachState).where(ReachState.member_id == member)).all()
            changes = session.execute(select(ReachChange).where(ReachChange.member_id == member)).all()
            records = (
                session.execute(
                    select(ConsentRecord).where(ConsentRecord.member_id == member).order_by(ConsentRecord.id)
                )
                .scalars()
                .all()
            )
        assert (states, changes) == ([], [])
        assert [(r.purpose, r.action, r.source) for r in records][-1] == (
            "sms_marketing",
            "withdraw",
            "erasure",
        )
        assert len(records) == 4, "a closing withdrawal only for the consent still granted"
        assert all(r.evidence is None for r in records)
        assert "张三" not in every_value(db)
        view = reach(client, tenant, member)
        assert (view["operable"], view["sms"]["consent"]) == (False, False)
        summary = client.get("/api/v1/reachability/summary", headers=tenant.headers).json()
        assert summary["operable_members"] == 0

    def test_an_erased_member_takes_no_new_consent_or_guide(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, follow("f", 1))
        client.post(f"/api/v1/members/{member}/erase", headers=tenant.headers)
        body = {"purpose": "sms_marketing", "action": "grant"}
        assert (
            client.post(f"/api/v1/members/{member}/consents", json=body, headers=tenant.headers).status_code
            == 409
        )
        guide = make_staff(client, tenant, "g")
        response = client.put(
            f"/api/v1/members/{member}/guide", json={"staff_id": guide}, headers=tenant.headers
        )
        assert response.status_code == 409
