"""Members' latest locations, kept from events by ingestion; moved on merge, gone on erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from siyu.db import Database
from siyu.segments import facade
from siyu.segments.models import MemberLocation, MemberScore
from tests.conftest import Tenant
from tests.segments.helpers import API, send

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR = timedelta(hours=1)


def location(db: Database, merchant_id: str, member_id: str) -> tuple[float, float] | None:
    with db.reading() as session:
        row = session.get(MemberLocation, (merchant_id, member_id))
        return (row.latitude, row.longitude) if row else None


def batch(client: TestClient, tenant: Tenant, events: list[dict[str, Any]]) -> None:
    answer = client.post(f"{API}/events/batch", json={"events": events}, headers=tenant.headers)
    assert answer.status_code == 200, answer.text


def located(event_id: str, at: datetime, lat: float, lon: float, who: str = "A") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "visit",
        "occurred_at": at.isoformat(),
        "identities": {"member_no": who},
        "properties": {"latitude": lat, "longitude": lon},
    }


class TestLocationsFromEvents:
    def test_the_newest_report_wins_whatever_the_arrival_order(
        self, client: TestClient, make_tenant, db: Database
    ) -> None:  # type: ignore[no-untyped-def]
        # given: the same three reports, in two orders and batchings, to two merchants
        reports = [
            located("e1", NOW - 3 * HOUR, 31.1, 121.1),
            located("e2", NOW - HOUR, 31.2, 121.2),
            located("e3", NOW - 2 * HOUR, 31.3, 121.3),
        ]
        first, second = make_tenant("一"), make_tenant("二")
        # when
        batch(client, first, reports)
        batch(client, second, [reports[1]])
        batch(client, second, [reports[2], reports[0]])
        # then
        for tenant in (first, second):
            with db.reading() as session:
                (row,) = session.execute(
                    select(MemberLocation).where(MemberLocation.merchant_id == tenant.merchant_id)
                ).scalars()
            assert (row.latitude, row.longitude, row.source) == (31.2, 121.2, "event:e2")

    def test_events_without_valid_coordinates_are_ignored(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a = send(client, tenant, "a1", "A", NOW - HOUR, latitude=31.2, longitude=121.4)
        # when
        send(client, tenant, "a2", "A", NOW, latitude=95.0, longitude=121.4)
        send(client, tenant, "a3", "A", NOW, latitude="31.2", longitude=121.4)
        send(client, tenant, "a4", "A", NOW, latitude=31.9)
        # then
        assert location(db, tenant.merchant_id, a) == (31.2, 121.4)


class TestMergeAndErasure:
    def test_merge_keeps_the_newest_location_and_scores_on_the_survivor(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: two members, each with a location and a score
        a = send(client, tenant, "a1", "A", NOW - 2 * HOUR, latitude=31.1, longitude=121.1)
        b = send(client, tenant, "b1", "B", NOW - HOUR, latitude=31.2, longitude=121.2)
        with db.unit_of_work() as session:
            facade.record_scores(session, tenant.merchant_id, "clv", {a: 1.0}, now=NOW - HOUR)
            facade.record_scores(session, tenant.merchant_id, "clv", {b: 2.0}, now=NOW)
        # when: one event links the two identities
        answer = client.post(
            f"{API}/events",
            json={
                "event_id": "link",
                "type": "visit",
                "occurred_at": (NOW - 3 * HOUR).isoformat(),
                "identities": {"member_no": "A", "phone": "+8613800000001"},
            },
            headers=tenant.headers,
        )
        assert answer.status_code == 200, answer.text
        answer = client.post(
            f"{API}/events",
            json={
                "event_id": "link2",
                "type": "visit",
                "occurred_at": (NOW - 3 * HOUR).isoformat(),
                "identities": {"member_no": "B", "phone": "+8613800000001"},
            },
            headers=tenant.headers,
        )
        survivor = answer.json()["member_id"]
        merged = b if survivor == a else a
        # then
        assert survivor in (a, b)
        assert location(db, tenant.merchant_id, survivor) == (31.2, 121.2)
        assert location(db, tenant.merchant_id, merged) is None
        with db.reading() as session:
            scores = session.execute(
                select(MemberScore.member_id, MemberScore.score).where(
                    MemberScore.merchant_id == tenant.merchant_id
                )
            ).all()
            assert [tuple(r) for r in scores] == [(survivor, 2.0)]
            rule = {"score": {"model": "clv", "op": "gt", "value": 0}}
            assert set(
                session.execute(facade.member_ids(session, tenant.merchant_id, rule, now=NOW)).scalars()
            ) == {survivor}

    def test_erasure_removes_location_and_scores(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a = send(client, tenant, "a1", "A", NOW, latitude=31.2, longitude=121.4)
        with db.unit_of_work() as session:
            facade.record_scores(session, tenant.merchant_id, "clv", {a: 1.0}, now=NOW)
        exported = client.get(f"{API}/members/{a}/export", headers=tenant.headers)
        # when
        erased = client.post(f"{API}/members/{a}/erase", headers=tenant.headers)
        # then
        assert exported.status_code == 200, exported.text
        assert exported.json()["location"][0]["latitude"] == 31.2
        assert exported.json()["model_scores"][0]["model"] == "clv"
        assert erased.status_code == 200, erased.text
        assert location(db, tenant.merchant_id, a) is None
        with db.reading() as session:
            assert (
                session.execute(
                    select(MemberScore).where(MemberScore.merchant_id == tenant.merchant_id)
                ).first()
                is None
            )
            assert not facade.contains(
                session, tenant.merchant_id, {"reachable": {"channel": "any"}}, a, now=NOW
            )
