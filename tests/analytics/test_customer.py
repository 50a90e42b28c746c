"""Customer metrics against hand-computed figures (tests/analytics/metrics_world.py), on the state
store and on DuckDB: user assets over time, operable assets, members per stage, stage flows;
the Relations reading of the ledger equals the lifecycle module's own; the API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from siyu.analytics import mirror, service
from siyu.analytics import mirror_store as store
from siyu.analytics.metrics import customer
from siyu.analytics.scope import Grain, Scope
from siyu.db import Database
from siyu.lifecycle import facade as lifecycle
from siyu.lifecycle.rules import Stage
from tests.analytics import metrics_world as w
from tests.analytics.duckcopy import duck_engine
from tests.conftest import Tenant

PERIOD = Scope(w.START, w.END)
S = Stage


@pytest.fixture
def world(db: Database, app: FastAPI) -> w.World:
    return w.build(db, app.state.vault)


def stage_map(counts: customer.StageCounts) -> dict[Stage, int]:
    return {s: n for s, n in counts.stages.items() if n}


class TestStages:
    def test_members_per_stage_on_a_day_from_the_ledger(self, db: Database, world: w.World) -> None:
        # given: the world (G, H dormant by 11-01; F erased; E merged into D)
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            before = w.same_on_every_engine(ctxs, lambda c: service.stages(c, PERIOD, date(2026, 11, 1)))
            after = w.same_on_every_engine(ctxs, lambda c: service.stages(c, PERIOD, w.END))
            first_day = w.same_on_every_engine(ctxs, lambda c: service.stages(c, PERIOD, date(2026, 9, 30)))
        # then: A, B, D first order (D holds E's order), C dormant since 11-08, G back (stranger),
        # H still dormant; F (erased) nowhere
        assert (before.total, stage_map(before)) == (2, {S.DORMANT: 2})
        assert (after.total, stage_map(after)) == (6, {S.STRANGER: 1, S.FIRST_ORDER: 3, S.DORMANT: 2})
        assert first_day.total == 0
        assert list(after.stages) == list(Stage)

    def test_flows_between_two_days_for_a_sankey(self, db: Database, world: w.World) -> None:
        # given / when
        with w.contexts(db, world.merchant_id) as ctxs:
            flows = w.same_on_every_engine(
                ctxs, lambda c: service.flows(c, PERIOD, date(2026, 11, 1), w.END).flows
            )
            merged_day = w.same_on_every_engine(
                ctxs, lambda c: service.flows(c, PERIOD, date(2026, 11, 5), date(2026, 11, 6)).flows
            )
        # then: E joined and left inside the period, so it is in neither end; F is erased
        assert [(f.from_stage, f.to_stage, f.members) for f in flows] == [
            (None, S.FIRST_ORDER, 3),
            (None, S.DORMANT, 1),
            (S.DORMANT, S.STRANGER, 1),
            (S.DORMANT, S.DORMANT, 1),
        ]
        # then: from 11-05 to 11-06 the merged member E leaves the base (to None)
        assert (S.FIRST_ORDER, None, 1) in [(f.from_stage, f.to_stage, f.members) for f in merged_day]

    def test_member_filters_are_acquisition_channel_and_current_tier(
        self, db: Database, world: w.World
    ) -> None:
        # given: A and B hold the tier "gold"
        w.set_tier(db, world, "tier_gold", "A", "B")
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            alipay = w.same_on_every_engine(
                ctxs, lambda c: service.stages(c, Scope(w.START, w.END, channel="alipay"), w.END)
            )
            gold = w.same_on_every_engine(
                ctxs, lambda c: service.stages(c, Scope(w.START, w.END, tier="tier_gold"), w.END)
            )
            s2 = w.same_on_every_engine(
                ctxs, lambda c: service.stages(c, Scope(w.START, w.END, store_id="s2"), w.END)
            )
        # then: alipay: B (first order), C (dormant); gold: A, B; store s2: D (F erased)
        assert stage_map(alipay) == {S.FIRST_ORDER: 1, S.DORMANT: 1}
        assert stage_map(gold) == {S.FIRST_ORDER: 2}
        assert stage_map(s2) == {S.FIRST_ORDER: 1}


class TestSameAsLifecycle:
    def test_every_day_and_flow_equals_the_lifecycle_reading_of_the_ledger(
        self, db: Database, app: FastAPI
    ) -> None:
        # given: the world without the erasure (the one rule analytics adds to the ledger)
        world = w.build(db, app.state.vault, erase=False)
        days = [date(2026, 9, 30) + timedelta(days=n) for n in range(42)]
        with w.contexts(db, world.merchant_id) as ctxs:
            session = ctxs[0].session
            for day in days:
                # when
                ours = w.same_on_every_engine(ctxs, lambda c, d=day: service.stages(c, PERIOD, d).stages)
                # then
                assert ours == lifecycle.stage_counts(session, world.merchant_id, day), day
            for first, last in [
                (days[0], days[-1]),
                (date(2026, 10, 10), date(2026, 11, 6)),
                (w.START, w.START),
            ]:
                ours_flows = w.same_on_every_engine(
                    ctxs, lambda c, a=first, b=last: service.flows(c, PERIOD, a, b).flows
                )
                theirs = lifecycle.flows(session, world.merchant_id, first, last)
                assert [(f.from_stage, f.to_stage, f.members) for f in ours_flows] == [
                    (f.from_stage, f.to_stage, f.members) for f in theirs
                ]


class TestUserAssets:
    def test_user_assets_at_the_end_of_each_bucket(self, db: Database, world: w.World) -> None:
        # given / when
        with w.contexts(db, world.merchant_id) as ctxs:
            daily = w.same_on_every_engine(ctxs, lambda c: service.customer_section(c, PERIOD, Grain.DAY))
            months = w.same_on_every_engine(
                ctxs,
                lambda c: (
                    service.customer_section(c, Scope(date(2026, 10, 1), w.END), Grain.MONTH).user_assets
                ),
            )
            totals = [
                w.same_on_every_engine(ctxs, lambda c, d=p.on: service.stages(c, PERIOD, d).total)
                for p in daily.user_assets
            ]
            counted = w.same_on_every_engine(
                ctxs,
                lambda c: (service.stages(c, PERIOD, date(2026, 11, 1)), service.stages(c, PERIOD, w.END)),
            )
        # then: the section's stage counts (the margins of its flows) are the counts of those days
        assert (daily.stages_at_start, daily.stages_at_end) == counted
        # then: G, H before; A, B on 11-02; C on 11-03 (F erased: never); D 11-04; E 11-05; E merged 11-06
        assert [p.value for p in daily.user_assets] == [4, 5, 6, 7, 6, 6, 6]
        assert [p.value for p in daily.user_assets] == totals
        assert [(p.bucket, p.on, p.value) for p in months] == [
            (date(2026, 10, 1), date(2026, 10, 31), 2),
            (date(2026, 11, 1), w.END, 6),
        ]
        # then: now, A, B, C, D, G, H are user assets; A and B subscribed (operable)
        assert (daily.assets_now, daily.operable_now) == (6, 2)

    def test_operable_assets_on_the_state_store_are_only_today(self, db: Database, world: w.World) -> None:
        # given: "now" is 11-10 noon; the period runs to 11-10
        scope = Scope(w.START, date(2026, 11, 10))
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            points = w.same_on_every_engine(
                ctxs, lambda c: service.customer_section(c, scope, Grain.DAY).operable_assets
            )
        # then
        assert [p.value for p in points] == [None] * 8 + [2]

    def test_operable_history_from_daily_member_snapshots(self) -> None:
        # given: two days of member snapshots as the mirror keeps them
        with duck_engine().connect() as duck:
            duck.execute(
                sa.text(
                    "CREATE TABLE days AS SELECT * FROM (VALUES "
                    "(DATE '2026-11-03', 'a', 'active', true, 's1', 'mp', 'gold'),"
                    "(DATE '2026-11-03', 'b', 'active', false, 's1', 'mp', NULL),"
                    "(DATE '2026-11-05', 'a', 'active', true, 's1', 'mp', 'gold'),"
                    "(DATE '2026-11-05', 'b', 'active', true, 's2', 'mp', NULL),"
                    "(DATE '2026-11-05', 'c', 'merged', true, 's2', 'mp', NULL),"
                    "(DATE '2026-11-09', 'a', 'active', true, 's1', 'mp', 'gold')"
                    ") t(snapshot_date, member_id, status, operable, acquisition_store_id,"
                    " acquisition_channel, tier)"
                )
            )
            days = sa.table(
                "days", *(sa.column(n) for n in ("snapshot_date", "member_id", "status", "operable",
                                                 "acquisition_store_id", "acquisition_channel", "tier"))
            )  # fmt: skip
            # when
            rows = duck.execute(customer.operable_history(sa.select(days).subquery(), PERIOD)).all()
            gold = duck.execute(
                customer.operable_history(sa.select(days).subquery(), Scope(w.START, w.END, tier="gold"))
            ).all()
        series = customer.operable_series(
            PERIOD, Grain.DAY, snapshots=rows, today=date(2026, 11, 20), operable_today=9
        )
        weeks = customer.operable_series(
            PERIOD, Grain.WEEK, snapshots=rows, today=date(2026, 11, 20), operable_today=9
        )
        # then: merged members are not operable assets; a day without a snapshot is unknown;
        # a bucket takes its latest snapshot; 11-09 is outside the period
        assert [p.value for p in series] == [None, 1, None, 2, None, None, None]
        assert [(p.on, p.value) for p in weeks] == [(date(2026, 11, 5), 2)]
        assert sorted(gold) == [(date(2026, 11, 3), 1), (date(2026, 11, 5), 1)]

    def test_an_empty_period_counts_nothing(self, db: Database, world: w.World) -> None:
        # given: a week before the merchant's first member
        scope = Scope(date(2026, 9, 1), date(2026, 9, 7))
        with w.contexts(db, world.merchant_id) as ctxs:
            # when
            got = w.same_on_every_engine(ctxs, lambda c: service.customer_section(c, scope, Grain.WEEK))
        # then
        assert [p.value for p in got.user_assets] == [0, 0]
        assert (got.stages_at_end.total, got.flows.flows) == (0, [])


class TestApi:
    def test_customer_stages_and_flows_over_http(
        self, client: TestClient, db: Database, world: w.World, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        # given: a key of the world's merchant
        headers = w.key_headers(db, world.merchant_id)
        query = {"start": "2026-11-02", "end": "2026-11-08", "grain": "week", "source": "state"}
        # when
        got = client.get("/api/v1/analytics/customer", params=query, headers=headers)
        stages = client.get(
            "/api/v1/analytics/customer/stages", params={**query, "date": "2026-11-01"}, headers=headers
        )
        flows = client.get(
            "/api/v1/analytics/customer/flows",
            params={**query, "from": "2026-11-05", "to": "2026-11-06"},
            headers=headers,
        )
        # then
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["source"], body["watermark"], body["timezone"]) == ("state", None, "Asia/Shanghai")
        assert body["data"]["user_assets"] == [{"bucket": "2026-11-02", "on": "2026-11-08", "value": 6}]
        assert stages.json()["data"]["stages"]["dormant"] == 2
        assert {"from_stage": "first_order", "to_stage": None, "members": 1} in flows.json()["data"]["flows"]

    def test_bad_periods_are_422_with_the_pointer(self, client: TestClient, tenant: Tenant) -> None:
        # given / when
        reversed_ = client.get(
            "/api/v1/analytics/customer?start=2026-11-09&end=2026-11-08", headers=tenant.headers
        )
        too_long = client.get(
            "/api/v1/analytics/customer?start=2020-01-01&end=2026-11-08", headers=tenant.headers
        )
        bad_date = client.get("/api/v1/analytics/customer?start=2026-13-01", headers=tenant.headers)
        bad_grain = client.get("/api/v1/analytics/customer?grain=year", headers=tenant.headers)
        flows = client.get(
            "/api/v1/analytics/customer/flows?from=2026-11-08&to=2026-11-01", headers=tenant.headers
        )
        # then
        assert reversed_.status_code == 422
        assert reversed_.json()["errors"][0]["pointer"] == "/end"
        assert too_long.status_code == 422
        assert too_long.json()["errors"][0]["pointer"] == "/start"
        assert bad_date.status_code == 422
        assert bad_date.json()["errors"][0]["parameter"] == "start"
        assert bad_grain.status_code == 422
        assert flows.status_code == 422
        assert flows.json()["errors"][0]["pointer"] == "/to"

    def test_another_merchants_key_sees_nothing_of_this_one(
        self, client: TestClient, world: w.World, tenant: Tenant
    ) -> None:
        # given: the world belongs to another merchant than ``tenant``
        query = {"start": "2026-11-02", "end": "2026-11-08"}
        # when
        got = client.get("/api/v1/analytics/customer", params=query, headers=tenant.headers)
        # then
        assert got.status_code == 200
        assert {p["value"] for p in got.json()["data"]["user_assets"]} == {0}
        assert got.json()["data"]["assets_now"] == 0

    def test_the_scope_is_required_and_the_mirror_must_have_the_data(
        self, client: TestClient, make_tenant
    ) -> None:  # type: ignore[no-untyped-def]
        # given: a key without analytics:read, and one with it
        other = make_tenant("乙", scopes=["members:read"])
        reader = make_tenant("丙", scopes=["analytics:read"])
        # when
        forbidden = client.get("/api/v1/analytics/dashboard", headers=other.headers)
        mirror = client.get("/api/v1/analytics/dashboard?source=mirror", headers=reader.headers)
        default = client.get("/api/v1/analytics/dashboard", headers=reader.headers)
        # then: no mirror in tests: asking for it is a conflict, the default falls back to the state store
        assert forbidden.status_code == 403
        assert mirror.status_code == 409
        assert default.status_code == 200, default.text
        assert default.json()["source"] == "state"
        assert list(default.json()["sections"]) == ["customer", "scale", "active", "worth", "efficiency"]


MIRRORED = Scope(date(2026, 10, 26), date(2026, 11, 10))
"""The period the mirror tests ask for."""


def mirror_world(db: Database, world: w.World, tmp_path: Path) -> Path:
    """The world with its messages, mirrored to Parquet under ``tmp_path``: the mirror's root."""
    root = tmp_path / "analytics"
    w.add_messages(db, world)
    mirror.sync(db, root, now=w.NOW)
    return root


class TestOnTheMirror:
    def test_every_section_gives_the_state_stores_numbers_from_the_mirror(
        self, db: Database, world: w.World, tmp_path: Path
    ) -> None:
        # given: the world mirrored to Parquet
        root = mirror_world(db, world, tmp_path)
        answers = {}
        for source in (service.Source.STATE, None):
            with (
                db.reading() as session,
                service.open_context(session, root, world.merchant_id, source=source, now=w.NOW) as ctx,
            ):
                # when: the default source, and the state store
                answers[ctx.source] = (
                    ctx.watermark,
                    {name: fn(ctx, MIRRORED, Grain.WEEK) for name, fn in service.sections().items()},
                )
        # then: the default is the mirror (it holds the merchant), with its watermark, and the same figures
        assert set(answers) == {service.Source.STATE, service.Source.MIRROR}
        assert answers[service.Source.MIRROR][0] is not None
        state, mirrored = answers[service.Source.STATE][1], answers[service.Source.MIRROR][1]
        for name in ("customer", "scale", "active"):
            assert mirrored[name] == state[name], name

    def test_prewarm_reads_every_live_file_once_and_nothing_without_a_mirror(
        self, db: Database, world: w.World, tmp_path: Path
    ) -> None:
        root = tmp_path / "analytics"
        assert service.prewarm(root) == 0  # no mirror yet
        mirror.sync(db, root, now=w.NOW)
        live = store.load_state(root).live_files()
        assert service.prewarm(root) == len(live) > 0

    def test_concurrent_dashboards_on_the_shared_duckdb_database_agree(
        self, db: Database, world: w.World, tmp_path: Path
    ) -> None:
        # given: the world mirrored, and one dashboard computed alone
        root = mirror_world(db, world, tmp_path)

        def request() -> dict[str, Any]:
            with (
                db.reading() as session,
                service.open_context(session, root, world.merchant_id, source=None, now=w.NOW) as ctx,
            ):
                assert ctx.source is service.Source.MIRROR
                return service.dashboard(ctx, MIRRORED, Grain.WEEK)

        alone = request()
        # when: eight requests at once (each a connection to the process's one DuckDB database for
        # this mirror, each reading the state store's figures on a worker thread beside it)
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda _: request(), range(8)))
        # then: every one gives the same figures as the one alone
        assert all(answer == alone for answer in together)
