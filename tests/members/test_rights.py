"""Personal-data rights: export everything; erasure leaves no identifier in any table."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.all_models import metadata
from siyu.db import Database
from siyu.integrity import orphans
from siyu.members.models import MemberIdentity
from tests.conftest import Tenant

PHONE = "13800138000"
OPENID = "oWx-openid-very-personal-0001"


def send(
    client: TestClient, tenant: Tenant, event_id: str, identities: dict[str, str], **props: object
) -> str:
    body = {
        "event_id": event_id,
        "type": "order_paid",
        "occurred_at": "2026-11-01T10:00:00+08:00",
        "identities": identities,
        "properties": {"order_id": event_id, "amount_fen": 1200, "note": "送到 张三 家", **props},
    }
    response = client.post(
        "/api/v1/events", json=body, headers={**tenant.headers, "Idempotency-Key": event_id}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["member_id"])


def every_value(db: Database) -> str:
    """Every column of every row of every table, as one string."""
    parts: list[str] = []
    with db.reading() as session:
        for table in metadata.sorted_tables:
            for row in session.execute(select(table)):
                parts.extend(repr(value) for value in row)
    return "\n".join(parts)


class TestExport:
    def test_export_has_identifiers_events_and_rollup(self, client: TestClient, tenant: Tenant) -> None:
        member = send(client, tenant, "o1", {"phone": PHONE, "wechat_openid": OPENID})
        data = client.get(f"/api/v1/members/{member}/export", headers=tenant.headers).json()
        values = {i["kind"]: i["value"] for i in data["identities"]}
        assert values == {"phone": "+86" + PHONE, "wechat_openid": OPENID}
        assert [e["event_id"] for e in data["events"]] == ["o1"]
        assert data["rollup"]["total_spend_fen"] == 1200
        assert data["stage"] == "first_order"
        assert [h["to_stage"] for h in data["stage_history"]] == ["first_order"]

    def test_export_needs_its_own_scope(self, client: TestClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
        reader = make_tenant("读", scopes=["members:read", "events:write"])
        member = send(client, reader, "o1", {"phone": PHONE})
        assert client.get(f"/api/v1/members/{member}/export", headers=reader.headers).status_code == 403


class TestErase:
    def test_erasure_leaves_no_identifier_in_any_table(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: a person known by two members that were then merged, with tags and free-text properties
        send(client, tenant, "o1", {"phone": PHONE})
        send(client, tenant, "o2", {"wechat_openid": OPENID})
        member = send(client, tenant, "o3", {"phone": PHONE, "wechat_openid": OPENID})
        client.post(f"/api/v1/members/{member}/tags", json={"tags": ["vip"]}, headers=tenant.headers)
        with db.reading() as session:
            secrets = [
                value
                for identity in session.execute(select(MemberIdentity)).scalars()
                for value in (identity.encrypted_value, identity.blind_index)
            ]
        assert len(secrets) == 4
        # when
        erased = client.post(f"/api/v1/members/{member}/erase", headers=tenant.headers)
        # then
        assert erased.status_code == 200
        dump = every_value(db)
        for needle in [PHONE, "+86" + PHONE, OPENID, "张三", *secrets]:
            assert needle not in dump, f"{needle!r} survived the erasure"
        view = client.get(f"/api/v1/members/{member}", headers=tenant.headers).json()
        assert view["status"] == "erased"
        assert view["identities"] == []
        assert view["tags"] == []
        assert view["rollup"]["total_spend_fen"] == 3600, "aggregates are kept"
        with db.engine.connect() as connection:  # the member row stays: nothing points at nothing
            assert orphans(connection) == []

    def test_erasure_is_audited_and_idempotent(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        member = send(client, tenant, "o1", {"phone": PHONE})
        assert client.post(f"/api/v1/members/{member}/erase", headers=tenant.headers).status_code == 200
        assert client.post(f"/api/v1/members/{member}/erase", headers=tenant.headers).status_code == 200
        from siyu.tenancy import repository

        with db.reading() as session:
            actions = [e.action for e in repository.list_audit(session, tenant.merchant_id)]
        assert "member.erased" in actions

    def test_the_same_phone_later_is_a_new_member(self, client: TestClient, tenant: Tenant) -> None:
        first = send(client, tenant, "o1", {"phone": PHONE})
        client.post(f"/api/v1/members/{first}/erase", headers=tenant.headers)
        assert send(client, tenant, "o2", {"phone": PHONE}) != first
