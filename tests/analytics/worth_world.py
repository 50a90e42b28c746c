"""The fixed data set of the woRth, efficiency, cohort and funnel tests, ingested through the
real API (events batch → members, merges, rollups, tiers, points, coupon redemption) and the
real coupon service. Times are local (Asia/Shanghai, UTC+8), chosen on day boundaries, in 2025
(events more than a day ahead of the real clock are refused; members are created "now"):

=====  ======  ================  ==========================  ========  =================
 step  member  type              local time                  fen       why
=====  ======  ================  ==========================  ========  =================
   1   A       follow            2025-11-01 10:00            .         A is operable
   2   A       visit             2025-11-01 09:00            .         funnel step 1
   3   A       order_paid a1     2025-11-02 10:00            10 000
   4   B       order_paid b0     2025-10-31 23:30 (15:30Z)   3 000     October, not November
   5   B       order_paid b1     2025-11-01 00:30 (10-31Z)   4 000     November (week of 10-27)
   6   C       order_paid c1     2025-11-03 12:00            6 000
   7   D       order_paid d1     2025-11-04 12:00            2 000     D is merged into C
   8   C+D     visit (merge)     2025-11-05 12:00            .
   9   E       visit             2025-11-20 09:00            .         acquired by the campaign
  10   B       order_refunded b0 2025-12-01 00:30 (11-30Z)   3 000     dated December
  11   F       order_paid f1     2025-12-01 10:00            8 000
  12   A       visit             2025-12-02 10:00            .
  13   C       order_paid c2     2025-12-10 10:00            1 000
  --   coupons issued 2025-11-05 12:00: A (campaign), B (guide), C (payment_page); E 2025-10-20 (guide)
  14   A       order_paid a2     2025-11-09 23:30 (Sunday)   5 000     redeems A's coupon (10.00 off)
  15   A       order_refunded a1 2025-11-10 00:30 (Monday)   2 000
=====  ======  ================  ==========================  ========  =================

Two tiers: 普卡 (entry, rank 0) and 银卡 (rank 1, threshold 120 growth = 120 yuan): only A
reaches 银卡 (150 − 20 yuan); the other buyers hold the entry tier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy.sql import Executable

from siyu.analytics.relations import Relations, state_relations
from siyu.campaigns import facade as campaigns
from siyu.coupons import facade as coupons
from siyu.db import Database
from tests.analytics.duckcopy import copy_to_duck, duck_engine
from tests.campaigns.helpers import add_campaign
from tests.conftest import Tenant
from tests.coupons.helpers import make_template

API = "/api/v1"
ZONE = ZoneInfo("Asia/Shanghai")
LOCAL = timezone(timedelta(hours=8))
Rows = Sequence[Sequence[Any]]
Run = Callable[[Executable], Rows]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LOCAL)


@dataclass
class World:
    merchant_id: str
    ids: dict[str, str]
    entry_tier_id: str
    tier_id: str
    template_id: str
    campaign_id: str


def _event(n: int, who: dict[str, str], type_: str, at: str, channel: str, **props: Any) -> dict[str, Any]:
    return {
        "event_id": f"w-{n}",
        "type": type_,
        "occurred_at": local(at).isoformat(),
        "identities": who,
        "channel": channel,
        "properties": props,
    }


def _send(client: TestClient, tenant: Tenant, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = client.post(f"{API}/events/batch", json={"events": events}, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    assert all(r["status"] == "accepted" for r in results), results
    return results


def build(client: TestClient, db: Database, tenant: Tenant) -> World:
    merchant = tenant.merchant_id
    headers = tenant.headers
    entry = client.post(f"{API}/tiers", json={"name": "普卡", "rank": 0, "threshold": 0}, headers=headers)
    tier = client.post(f"{API}/tiers", json={"name": "银卡", "rank": 1, "threshold": 120}, headers=headers)
    assert entry.status_code == tier.status_code == 201, tier.text
    template = make_template(client, tenant, total_stock=100, valid_days=30)
    with db.unit_of_work() as session:
        campaign = add_campaign(
            session,
            merchant,
            goal="scale",
            recall=True,
            started_at=local("2025-11-01 00:00"),
            variants=[
                {
                    "key": "main",
                    "weight_bp": 10_000,
                    "treatments": [{"action": "coupon", "template_id": template["id"]}],
                }
            ],
        )
    a, b, c = {"member_no": "A"}, {"member_no": "B"}, {"member_no": "C"}
    d, e, f = {"phone": "13800000004"}, {"member_no": "E"}, {"member_no": "F"}
    first = [
        _event(1, a, "follow", "2025-11-01 10:00", "alipay"),
        _event(2, a, "visit", "2025-11-01 09:00", "alipay"),
        _event(3, a, "order_paid", "2025-11-02 10:00", "alipay", order_id="a1", amount_fen=10_000),
        _event(4, b, "order_paid", "2025-10-31 23:30", "wechat", order_id="b0", amount_fen=3_000),
        _event(5, b, "order_paid", "2025-11-01 00:30", "wechat", order_id="b1", amount_fen=4_000),
        _event(6, c, "order_paid", "2025-11-03 12:00", "alipay", order_id="c1", amount_fen=6_000),
        _event(7, d, "order_paid", "2025-11-04 12:00", "alipay", order_id="d1", amount_fen=2_000),
        _event(8, {**c, **d}, "visit", "2025-11-05 12:00", "alipay"),
        _event(9, e, "visit", "2025-11-20 09:00", "alipay", campaign=campaign.id),
        _event(10, b, "order_refunded", "2025-12-01 00:30", "wechat", order_id="b0", amount_fen=3_000),
        _event(11, f, "order_paid", "2025-12-01 10:00", "alipay", order_id="f1", amount_fen=8_000),
        _event(12, a, "visit", "2025-12-02 10:00", "alipay"),
        _event(13, c, "order_paid", "2025-12-10 10:00", "alipay", order_id="c2", amount_fen=1_000),
    ]
    results = _send(client, tenant, first)
    ids = {name: results[i]["member_id"] for name, i in (("A", 0), ("B", 3), ("C", 5), ("D", 6), ("E", 8))}
    ids["F"] = results[10]["member_id"]
    issued = local("2025-11-05 12:00")
    with db.unit_of_work() as session:
        code = coupons.issue_coupon(
            session,
            merchant,
            template["id"],
            ids["A"],
            source="campaign",
            source_ref=f"{campaign.id}:{ids['A']}:once:0",
            now=issued,
        ).code
        coupons.issue_coupon(
            session, merchant, template["id"], ids["B"], source="guide", source_ref="b", now=issued
        )
        survivor = results[7]["member_id"]
        coupons.issue_coupon(
            session, merchant, template["id"], survivor, source="payment_page", source_ref="c", now=issued
        )
        coupons.issue_coupon(
            session,
            merchant,
            template["id"],
            ids["E"],
            source="guide",
            source_ref="e",
            now=local("2025-10-20 12:00"),
        )
        view = campaigns.get_campaign(session, merchant, campaign.id)
        assert view is not None
        campaigns.assign_many(
            session, merchant, view, [ids[k] for k in "ABE"], now=local("2025-11-05 12:00"), source="snapshot"
        )
    _send(
        client,
        tenant,
        [
            _event(
                14,
                a,
                "order_paid",
                "2025-11-09 23:30",
                "alipay",
                order_id="a2",
                amount_fen=5_000,
                coupon_codes=[code],
            ),
            _event(15, a, "order_refunded", "2025-11-10 00:30", "alipay", order_id="a1", amount_fen=2_000),
        ],
    )
    ids["C"] = survivor
    return World(merchant, ids, entry.json()["id"], tier.json()["id"], template["id"], campaign.id)


@contextmanager
def engines(db: Database, merchant_id: str) -> Iterator[list[tuple[str, Relations, Run]]]:
    """The world's relations on the state store and copied into DuckDB, each with its runner."""
    engine = duck_engine()
    with db.engine.connect() as state, engine.connect() as duck:
        rel = state_relations(merchant_id, ZONE, db.engine.dialect.name)
        copied = copy_to_duck(state, rel, duck)

        def on(connection: Any) -> Run:
            return lambda statement: [tuple(r) for r in connection.execute(statement)]

        yield [("state", rel, on(state)), ("duckdb", copied, on(duck))]
    engine.dispose()
