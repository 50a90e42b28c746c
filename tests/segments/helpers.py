"""Building blocks of the segment tests: events through the real ingestion API, segments by API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Tenant

API = "/api/v1"


def send(
    client: TestClient,
    tenant: Tenant,
    event_id: str,
    who: str,
    at: datetime,
    type: str = "visit",
    *,
    store_id: str | None = None,
    channel: str | None = None,
    props: dict[str, Any] | None = None,
    **properties: Any,
) -> str:
    """One event for the person with member number ``who``; answers the member id."""
    properties.update(props or {})
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": type,
        "occurred_at": at.isoformat(),
        "identities": {"member_no": who},
        "properties": properties,
    }
    if store_id is not None:
        body["store_id"] = store_id
    if channel is not None:
        body["channel"] = channel
    answer = client.post(f"{API}/events", json=body, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    member_id: str = answer.json()["member_id"]
    return member_id


def order(
    client: TestClient,
    tenant: Tenant,
    event_id: str,
    who: str,
    at: datetime,
    amount_fen: int = 1000,
    **kw: Any,
) -> str:
    return send(
        client, tenant, event_id, who, at, "order_paid", order_id=f"o-{event_id}", amount_fen=amount_fen, **kw
    )


def create_segment(
    client: TestClient, tenant: Tenant, rule: dict[str, Any], name: str = "复购客"
) -> dict[str, Any]:
    answer = client.post(f"{API}/segments", json={"name": name, "rule": rule}, headers=tenant.headers)
    assert answer.status_code == 201, answer.text
    segment: dict[str, Any] = answer.json()
    return segment


def preview(client: TestClient, tenant: Tenant, rule: dict[str, Any], sample: int = 20) -> dict[str, Any]:
    answer = client.post(
        f"{API}/segments/preview", json={"rule": rule, "sample": sample}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result
