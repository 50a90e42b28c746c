"""Messaging: how fast a campaign fan-out is decided and written (caps checked) with send_many.

    python bench/messaging.py [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                              [--members 50000] [--batch 1000]

On a fresh SQLite file (default) or a fresh PostgreSQL schema, ``--members`` active members; a
merchant with the default fatigue settings (1 marketing message a day, 3 a week), the clock
outside quiet hours. Printed, each in transactions of ``--batch`` requests (one ``send_many`` each,
as a campaign slice does):

* **first campaign** messages/s — every member gets one marketing webhook message: member lookup,
  per-member lock (PostgreSQL), key check, caps counted, the message rows and their outbox items
  written;
* **second campaign** the same day: every request is counted against the first and ``capped``
  (kept as a suppressed record, no outbox item);
* **subscription** messages/s — a third template on the subscription channel for a new day: the
  one-time quota of every member read and taken in one conditional ``UPDATE`` per batch.

The target is ≥ 5,000 messages/s written to the outbox with caps checked on SQLite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from rich.console import Console
from sqlalchemy import Table, func, insert, select

sys.path.insert(0, str(Path(__file__).parent))
from ingest import drop_schema, fresh_url
from siyu.db import Database
from siyu.kit.bulk import execute_many
from siyu.kit.ids import IdKind, new_id
from siyu.members.models import Member
from siyu.messaging import facade, service
from siyu.messaging.facade import SendRequest, SendStatus
from siyu.migrate import upgrade
from siyu.outbox.models import OutboxItem
from siyu.reachability.models import ReachState
from siyu.tenancy import facade as tenancy

console = Console()
T0 = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
MEMBERS = cast(Table, Member.__table__)
STATES = cast(Table, ReachState.__table__)


def fan_out(
    db: Database, merchant: str, members: list[str], template: str, tag: str, batch: int, now: datetime
) -> tuple[float, dict[str, int]]:
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    for start in range(0, len(members), batch):
        requests = [
            SendRequest(
                member_id=m,
                template_id=template,
                key=f"{tag}:{m}",
                variables={"name": "会员"},
                campaign_id=tag,
            )
            for m in members[start : start + batch]
        ]
        with db.unit_of_work() as session:
            for result in facade.send_many(session, merchant, requests, now=now):
                statuses[result.status.value] = statuses.get(result.status.value, 0) + 1
    return len(members) / (time.perf_counter() - started), statuses


def run(url: str, args: argparse.Namespace) -> None:
    db = Database(url)
    upgrade(db.engine)
    members = sorted(new_id(IdKind.MEMBER) for _ in range(args.members))
    with db.unit_of_work() as session:
        merchant = tenancy.create_merchant(session, name="bench").id
        rows = [
            {"merchant_id": merchant, "id": m, "status": "active", "created_at": T0, "updated_at": T0}
            for m in members
        ]
        execute_many(session, MEMBERS, "bench.members", lambda _d: insert(MEMBERS), rows)
        states = [
            {
                "merchant_id": merchant,
                "member_id": m,
                "channel": "subscription",
                "target": "P1",
                "active": False,
                "remaining": 1,
                "source": "bench",
                "updated_at": T0,
            }
            for m in members
        ]
        execute_many(session, STATES, "bench.states", lambda _d: insert(STATES), states)
        data = {
            "name": "b",
            "channel": "webhook",
            "kind": "marketing",
            "title": "会员日",
            "body": "{{name}}，会员日",
        }
        webhook = service.create_template(session, merchant, data, now=T0).id
        data = data | {"channel": "subscription", "platform_template_id": "P1"}
        subscription = service.create_template(session, merchant, data, now=T0).id

    first, first_statuses = fan_out(db, merchant, members, webhook, "cmp_a", args.batch, T0)
    second, second_statuses = fan_out(
        db, merchant, members, webhook, "cmp_b", args.batch, T0 + timedelta(hours=1)
    )
    third, third_statuses = fan_out(
        db, merchant, members, subscription, "cmp_c", args.batch, T0 + timedelta(days=1)
    )
    assert first_statuses == {SendStatus.QUEUED.value: args.members}, first_statuses
    assert second_statuses == {SendStatus.CAPPED.value: args.members}, second_statuses
    assert third_statuses == {SendStatus.QUEUED.value: args.members}, third_statuses
    with db.reading() as session:
        items = session.execute(select(func.count()).select_from(OutboxItem)).scalar_one()
        left = session.execute(select(func.sum(ReachState.remaining))).scalar_one()
    assert items == 2 * args.members
    assert left == 0

    engine = db.engine.dialect.name
    console.print(f"[bold]messaging on {engine}[/] ({args.members:,} members, send_many of {args.batch:,})")
    console.print(f"  first campaign (queued)        {first:>8,.0f} messages/s")
    console.print(f"  second campaign (all capped)   {second:>8,.0f} messages/s")
    console.print(f"  subscription (quota taken)     {third:>8,.0f} messages/s")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = fresh_url(args.database_url, Path(tmp))
        try:
            run(url, args)
        finally:
            drop_schema(args.database_url, schema)


if __name__ == "__main__":
    main()
