"""Set-up shared by the journey tests: a journey campaign, events through real ingestion, reads."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from siyu.campaigns.journey_models import JourneyState, JourneyStep
from siyu.campaigns.models import CampaignTreatment
from siyu.campaigns.views import CampaignView
from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.pii import IdentifierVault
from siyu.tenancy import facade as tenancy
from tests.campaigns.helpers import add_campaign

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
VAULT = IdentifierVault("journey-test-secret-" + "x" * 40)

ORDERED = {"behaviour": {"event": "order_paid", "op": "gte", "count": 1, "within_days": 3}}


def example_journey(coupon_template: str, remind: dict[str, Any]) -> dict[str, Any]:
    """entry visit → wait 3 days → ordered? → yes: exit / no: coupon → wait 1 day → message → exit."""
    return {
        "nodes": [
            {"id": "start", "type": "entry", "trigger": {"event": "visit"}, "next": "wait3"},
            {"id": "wait3", "type": "wait", "duration": {"days": 3}, "next": "ordered"},
            {"id": "ordered", "type": "branch", "rule": ORDERED, "yes": "bought", "no": "coupon"},
            {
                "id": "coupon",
                "type": "action",
                "treatments": [{"action": "coupon", "template_id": coupon_template}],
                "next": "wait1",
            },
            {"id": "wait1", "type": "wait", "duration": {"days": 1}, "next": "remind"},
            {
                "id": "remind",
                "type": "action",
                "treatments": [remind],
                "next": "end",
            },
            {"id": "bought", "type": "exit"},
            {"id": "end", "type": "exit"},
        ]
    }


def points_journey(points: int = 10, *, entry: dict[str, Any] | None = None) -> dict[str, Any]:
    """entry → points → points again → exit: no waits, every step due at once."""
    return {
        "nodes": [
            {"id": "start", "type": "entry", "next": "gift", **(entry or {"trigger": {"event": "visit"}})},
            {
                "id": "gift",
                "type": "action",
                "treatments": [{"action": "points", "points": points}],
                "next": "again",
            },
            {
                "id": "again",
                "type": "action",
                "treatments": [{"action": "points", "points": points + 1}],
                "next": "end",
            },
            {"id": "end", "type": "exit"},
        ]
    }


def make_merchant(db: Database, name: str = "旅程") -> str:
    with db.unit_of_work() as session:
        return tenancy.create_merchant(session, name=name, timezone="Asia/Shanghai").id


def add_journey(db: Database, merchant_id: str, journey: dict[str, Any], **values: Any) -> CampaignView:
    with db.unit_of_work() as session:
        fields: dict[str, Any] = {"kind": "journey", "journey": journey, "holdout_bp": 0}
        fields.update(values)
        return add_campaign(session, merchant_id, **fields)


def event(event_id: str, member_no: str, type_: str, when: datetime, amount: int = 1000) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if type_ == "order_paid":
        properties = {"order_id": f"o-{event_id}", "amount_fen": amount}
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": when.isoformat(),
        "identities": {"member_no": member_no},
        "properties": properties,
    }


def send(db: Database, merchant_id: str, events: list[dict[str, Any]], *, now: datetime) -> dict[str, str]:
    """Ingest ``events`` received at ``now`` (listeners run); member id per ``member_no`` (or per
    the first identity given)."""
    with db.unit_of_work() as session:
        verdicts = ingest(session, VAULT, merchant_id, events, now=now)
    assert all(v.status == "accepted" for v in verdicts), verdicts
    return {
        e["identities"].get("member_no") or next(iter(e["identities"].values())): v.member_id
        for e, v in zip(events, verdicts, strict=True)
        if v.member_id
    }


def states(db: Database, merchant_id: str, campaign_id: str) -> dict[str, JourneyState]:
    with db.reading() as session:
        rows = session.execute(
            select(JourneyState).where(
                JourneyState.merchant_id == merchant_id, JourneyState.campaign_id == campaign_id
            )
        ).scalars()
        return {row.member_id: row for row in rows}


def paths(db: Database, merchant_id: str, campaign_id: str) -> dict[str, list[tuple[str, str]]]:
    """Each member's ``(node, outcome)`` steps in order."""
    with db.reading() as session:
        rows = session.execute(
            select(JourneyStep)
            .where(JourneyStep.merchant_id == merchant_id, JourneyStep.campaign_id == campaign_id)
            .order_by(JourneyStep.member_id, JourneyStep.seq)
        ).scalars()
        found: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            found.setdefault(row.member_id, []).append((row.node_id, row.outcome))
        return found


def treatments(db: Database, merchant_id: str, campaign_id: str) -> list[CampaignTreatment]:
    with db.reading() as session:
        return list(
            session.execute(
                select(CampaignTreatment)
                .where(
                    CampaignTreatment.merchant_id == merchant_id, CampaignTreatment.campaign_id == campaign_id
                )
                .order_by(CampaignTreatment.key)
            ).scalars()
        )


def key_counts(db: Database, merchant_id: str, campaign_id: str) -> Counter[str]:
    with db.reading() as session:
        rows = session.execute(
            select(CampaignTreatment.key, func.count())
            .where(CampaignTreatment.merchant_id == merchant_id, CampaignTreatment.campaign_id == campaign_id)
            .group_by(CampaignTreatment.key)
        ).all()
        return Counter({key: int(count) for key, count in rows})
