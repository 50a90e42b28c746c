"""Building blocks of the models tests: events through the real ingestion service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from siyu.db import Database
from siyu.events import service as events
from siyu.kit.pii import IdentifierVault

VAULT = IdentifierVault("test-secret-" + "x" * 40)


def event(event_id: str, who: str, at: datetime, type: str = "visit", **properties: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type,
        "occurred_at": at.isoformat(),
        "identities": {"member_no": who},
        "properties": properties,
    }


def paid(
    event_id: str, who: str, at: datetime, amount_fen: int, order_id: str | None = None
) -> dict[str, Any]:
    return event(event_id, who, at, "order_paid", order_id=order_id or event_id, amount_fen=amount_fen)


def refunded(event_id: str, who: str, at: datetime, amount_fen: int, order_id: str) -> dict[str, Any]:
    return event(event_id, who, at, "order_refunded", order_id=order_id, amount_fen=amount_fen)


def ingest(db: Database, merchant_id: str, raw: list[dict[str, Any]], *, now: datetime) -> dict[str, str]:
    """Ingest the events; answers member number → member id."""
    with db.unit_of_work() as session:
        verdicts = events.ingest(session, VAULT, merchant_id, raw, now=now)
    assert all(v.status == "accepted" for v in verdicts), [v for v in verdicts if v.status != "accepted"]
    return {
        r["identities"]["member_no"]: v.member_id for r, v in zip(raw, verdicts, strict=True) if v.member_id
    }
