"""Helpers of the mirror tests: a shop that ingests through the real event service, and the
comparison of a relation read on the state store with the same relation read on the mirror."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings

from siyu.analytics.duck import mirror_engine, mirror_relations
from siyu.analytics.mirror_keys import member_ids
from siyu.analytics.relations import Relations, state_relations
from siyu.db import Database
from siyu.events import service as events
from siyu.kit.pii import IdentifierVault
from siyu.members import rights
from siyu.members.models import Member
from siyu.tenancy import facade as tenancy

VAULT = IdentifierVault("m" * 48)
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@dataclass
class Shop:
    db: Database
    root: Path
    merchant_id: str
    now: datetime = T0
    counter: int = 0
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = mirror_engine(self.root)

    def tick(self, minutes: int = 1) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now

    def event(
        self,
        person: str,
        type_: str = "visit",
        *,
        occurred_at: datetime | None = None,
        amount: int = 100,
        extra_identity: str | None = None,
        properties: dict[str, Any] | None = None,
        store_id: str | None = "S1",
    ) -> str:
        """Ingest one event of ``person`` (a device id); with ``extra_identity``, the event links
        two identities (a merge when they belong to two members). Returns the event id."""
        self.counter += 1
        event_id = f"ev-{self.counter:05d}"
        props: dict[str, Any] = dict(properties or {"note": f"secret-{person}"})
        if type_ in ("order_paid", "order_refunded"):
            props.update({"order_id": f"o{self.counter}", "amount_fen": amount})
        elif type_ == "scan":
            props["code_id"] = "qr-1"
        elif type_ in ("message_opened", "message_clicked"):
            props["message_id"] = f"msg-{self.counter}"
        identities = {"device_id": person}
        if extra_identity:
            identities["member_no"] = extra_identity
        body = {
            "event_id": event_id,
            "type": type_,
            "occurred_at": (occurred_at or self.now).isoformat(),
            "identities": identities,
            "channel": "mini_program",
            "store_id": store_id,
            "properties": props,
        }
        with self.db.unit_of_work() as session:
            (verdict,) = events.ingest(session, VAULT, self.merchant_id, [body], now=self.now)
        assert verdict.status == "accepted", verdict
        return event_id

    def member_of(self, event_id: str) -> str:
        rows = self.state("events")
        return next(r["member_id"] for r in rows if r["event_id"] == event_id)

    def erase(self, member_id: str) -> None:
        with self.db.unit_of_work() as session:
            rights.erase_member(session, self.merchant_id, member_id, now=self.now)

    def survivor(self, member_id: str) -> str:
        with self.db.reading() as session:
            member = session.get(Member, (self.merchant_id, member_id))
            assert member is not None
            return member.merged_into_id or member.id

    def zone(self) -> Any:
        with self.db.reading() as session:
            return tenancy.merchant_zone(session, self.merchant_id)

    def state_rel(self) -> Relations:
        return state_relations(self.merchant_id, self.zone(), self.db.engine.dialect.name)

    def mirror_rel(self) -> Relations:
        return mirror_relations(self.root, self.merchant_id, self.zone())

    def state(self, name: str) -> list[dict[str, Any]]:
        with self.db.reading() as session:
            source = getattr(self.state_rel(), name)
            return [dict(r._mapping) for r in session.execute(sa.select(source))]

    def mirror(self, name: str) -> list[dict[str, Any]]:
        """The mirror relation's rows, its integer member keys shown as the member ids."""
        source = getattr(self.mirror_rel(), name)
        ids = member_ids(self.root, self.merchant_id)
        with self.engine.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(sa.select(source))]
        for row in rows:
            row["member_id"] = ids[row["member_id"]]
        return rows


def normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def row_set(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of comparable values (dates, aware datetimes, booleans normalised)."""
    return sorted(
        (tuple(normalise(v) for v in row.values()) for row in rows), key=lambda t: tuple(map(repr, t))
    )


def assert_same(shop: Shop) -> None:
    for name in ("events", "members", "stage_transitions"):
        state, mirror = shop.state(name), shop.mirror(name)
        assert [list(r) for r in state[:1]] == [list(r) for r in mirror[:1]], name  # same columns
        assert row_set(mirror) == row_set(state), name


def make_shop(db: Database, root: Path, name: str = "咖啡") -> Shop:
    with db.unit_of_work() as session:
        merchant = tenancy.create_merchant(session, name=name)
    return Shop(db, root, merchant.id)


def db_work_settings(max_examples: int) -> Any:
    """Hypothesis settings for property tests whose examples ingest and sync through a real
    database: no deadline, and no shrinking (it replays that work: minutes)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
