"""The references the ingestion tables declare instead of foreign keys, and the check that finds
rows breaking them (``siyu.integrity``, ``siyu db check``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from typer.testing import CliRunner

from siyu.all_models import metadata
from siyu.cli.main import app as cli
from siyu.db import Database
from siyu.events.models import Event
from siyu.integrity import orphans, references
from tests.conftest import DatabaseUnderTest, Tenant

INGESTION_TABLES = {
    "events",
    "member_identities",
    "member_rollups",
    "member_stages",
    "members",
    "points_accounts",
    "points_entries",
    "points_lots",
    "reach_changes",
    "reach_states",
    "stage_transitions",
    "tier_progress",
}


def test_the_ingestion_tables_declare_their_references_instead_of_foreign_keys() -> None:
    declared = {table.name for table, _ in references()}
    assert declared == INGESTION_TABLES
    for name in INGESTION_TABLES:
        assert not metadata.tables[name].foreign_keys, f"{name} should keep no foreign key"


def _event_row(merchant_id: str, member_id: str) -> dict[str, object]:
    now = datetime(2026, 11, 29, 10, tzinfo=UTC)
    return {
        "merchant_id": merchant_id,
        "event_id": "raw-1",
        "member_id": member_id,
        "type": "visit",
        "occurred_at": now,
        "received_at": now,
        "properties": {},
    }


class TestOrphans:
    def test_ingested_events_and_their_listeners_leave_no_orphan(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: orders, visits, a subscription and a merge of two members
        events = [
            {
                "event_id": "a",
                "type": "order_paid",
                "occurred_at": "2026-11-01T10:00:00+08:00",
                "identities": {"phone": "13800138000"},
                "properties": {"order_id": "o-a", "amount_fen": 5000},
            },
            {
                "event_id": "b",
                "type": "visit",
                "occurred_at": "2026-11-02T10:00:00+08:00",
                "identities": {"wechat_openid": "ox-1"},
            },
            {
                "event_id": "c",
                "type": "subscribe",
                "occurred_at": "2026-11-03T10:00:00+08:00",
                "identities": {"phone": "13800138000", "wechat_openid": "ox-1"},
                "channel": "mini_program",
                "properties": {"channel": "mini_program", "template_id": "t1", "one_time": True},
            },
        ]
        # when
        response = client.post("/api/v1/events/batch", json={"events": events}, headers=tenant.headers)
        # then
        assert response.json()["accepted"] == 3, response.text
        with db.engine.connect() as connection:
            assert orphans(connection) == []

    def test_a_row_whose_member_is_missing_is_found(self, db: Database, tenant: Tenant) -> None:
        # given: an event written behind the application's back, for a member that does not exist
        with db.unit_of_work() as session:
            session.execute(insert(Event), [_event_row(tenant.merchant_id, "mbr_nobody")])
        # when
        with db.engine.connect() as connection:
            found = orphans(connection)
        # then
        assert [(o.table, o.parent, o.rows, o.example) for o in found] == [
            ("events", "members", 1, (tenant.merchant_id, "mbr_nobody"))
        ]
        assert "events(merchant_id, member_id) → members: 1 rows" in found[0].describe()


class TestDbCheckCommand:
    def test_passes_on_a_sound_database_and_fails_naming_the_orphans(
        self,
        db: Database,
        tenant: Tenant,
        test_database: DatabaseUnderTest,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)
        runner = CliRunner()
        sound = runner.invoke(cli, ["db", "check"])
        assert sound.exit_code == 0, sound.output
        assert "every row has its member and merchant" in sound.output
        with db.unit_of_work() as session:
            session.execute(insert(Event), [_event_row(tenant.merchant_id, "mbr_nobody")])
        broken = runner.invoke(cli, ["db", "check"])
        assert broken.exit_code == 1
        assert "events(merchant_id, member_id) → members" in broken.output
        assert "mbr_nobody" in broken.output
