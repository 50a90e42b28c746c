"""Building blocks of the reachability tests: events, API calls, direct service calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.reachability import facade
from tests.conftest import Tenant

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
PHONE = {"phone": "13800138000"}
OPENID = {"wechat_openid": "oWx-reach-0001"}


def ev(
    event_id: str,
    type_: str,
    *,
    minutes: int = 0,
    identities: dict[str, str] | None = None,
    **properties: object,
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "identities": identities or PHONE,
        "properties": properties,
    }


def follow(event_id: str, minutes: int, account: str | None = None, **kw: Any) -> dict[str, object]:
    props = {"account_id": account} if account else {}
    return ev(event_id, "follow", minutes=minutes, **props, **kw)


def unfollow(event_id: str, minutes: int, account: str | None = None, **kw: Any) -> dict[str, object]:
    props = {"account_id": account} if account else {}
    return ev(event_id, "unfollow", minutes=minutes, **props, **kw)


def grant(event_id: str, minutes: int, template: str = "tpl-order", **kw: Any) -> dict[str, object]:
    """A one-time subscription (the user accepted one message of ``template``)."""
    return ev(
        event_id,
        "subscribe",
        minutes=minutes,
        channel="mini_program",
        template_id=template,
        one_time=True,
        **kw,
    )


def long_term(event_id: str, minutes: int, template: str = "tpl-long", **kw: Any) -> dict[str, object]:
    return ev(
        event_id,
        "subscribe",
        minutes=minutes,
        channel="mini_program",
        template_id=template,
        one_time=False,
        **kw,
    )


def unsubscribe(event_id: str, minutes: int, template: str = "tpl-order", **kw: Any) -> dict[str, object]:
    return ev(event_id, "unsubscribe", minutes=minutes, channel="mini_program", template_id=template, **kw)


def send(client: TestClient, tenant: Tenant, *events: dict[str, object]) -> str:
    """Send events in one batch; returns the member of the last one."""
    response = client.post("/api/v1/events/batch", json={"events": list(events)}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(r["status"] in ("accepted", "duplicate") for r in results), results
    return str(results[-1]["member_id"])


def reach(client: TestClient, tenant: Tenant, member_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/members/{member_id}/reachability", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def quota(view: dict[str, Any], template: str = "tpl-order") -> int:
    found = [t["remaining"] for t in view["subscription"]["templates"] if t["template_id"] == template]
    return int(found[0]) if found else 0


def following(view: dict[str, Any], account: str | None = None) -> bool:
    return any(a["following"] for a in view["life_account"]["accounts"] if a["account_id"] == account)


def consume(db: Database, tenant: Tenant, member_id: str, template: str = "tpl-order") -> bool:
    """One send of a subscription message, in a transaction of its own (as the messaging module will)."""
    with db.unit_of_work() as session:
        return facade.consume_subscription(
            session, tenant.merchant_id, member_id, template, now=utcnow(), source="send:test"
        )


def consent(
    client: TestClient, tenant: Tenant, member_id: str, action: str, **extra: object
) -> dict[str, Any]:
    body = {"purpose": "sms_marketing", "action": action, **extra}
    response = client.post(f"/api/v1/members/{member_id}/consents", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]
