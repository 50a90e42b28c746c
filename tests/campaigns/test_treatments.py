"""Treatments: budgets never exceeded, coupons and points given through the outbox, refusals
release the budget, the holdout never treated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from siyu.campaigns import facade
from siyu.campaigns.models import CampaignTreatment
from siyu.campaigns.treatments import OUTBOX_KIND, Target, give, give_many, treat_targets
from siyu.coupons import facade as coupons
from siyu.coupons import service as coupon_service
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database
from siyu.members.models import Member
from siyu.outbox import facade as outbox
from siyu.outbox import service as outbox_service
from siyu.outbox.models import OutboxItem
from siyu.points import facade as points
from siyu.tenancy import facade as tenancy
from tests.campaigns.helpers import NOW, add_campaign, add_members
from tests.threads import run_threads

COUPON_VALUE = 1500


def make_template(db: Database, merchant_id: str, *, stock: int = 100, **fields: Any) -> str:
    spec: dict[str, Any] = {
        "name": "立减 15 元",
        "kind": "cash",
        "value_fen": COUPON_VALUE,
        "total_stock": stock,
        "valid_days": 30,
    }
    spec.update(fields)
    with db.unit_of_work() as session:
        template = coupons.create_template(session, merchant_id, TemplateIn(**spec), now=NOW)
        coupon_service.change_status(session, merchant_id, template.id, "activate", now=NOW)
    return template.id


def coupon_variants(template_id: str) -> list[dict[str, Any]]:
    return [
        {"key": "main", "weight_bp": 10_000, "treatments": [{"action": "coupon", "template_id": template_id}]}
    ]


def rows(db: Database, merchant_id: str, campaign_id: str) -> list[CampaignTreatment]:
    with db.reading() as session:
        statement = select(CampaignTreatment).where(
            CampaignTreatment.merchant_id == merchant_id, CampaignTreatment.campaign_id == campaign_id
        )
        return list(session.execute(statement).scalars())


def drain(db: Database) -> None:
    """Run the outbox until nothing is due (handlers of campaign treatments, among others)."""
    while outbox.run_once(db, limit=200, now=NOW + timedelta(seconds=1)):
        pass


def setup(db: Database, members: int, **campaign: Any) -> tuple[str, list[str], Any]:
    with db.unit_of_work() as session:
        merchant_id = tenancy.create_merchant(session, name="m").id
        ids = add_members(session, merchant_id, members)
    return merchant_id, ids, campaign


def treat_all(db: Database, merchant_id: str, campaign: Any, member_ids: list[str], step: str = "s") -> None:
    with db.unit_of_work() as session:
        view = facade.get_campaign(session, merchant_id, campaign.id)
        assert view is not None
        assigned = facade.assign_many(session, merchant_id, view, member_ids, now=NOW, source="snapshot")
        targets = [
            Target(a.member_id, a.variant, (view.variant(a.variant) or {})["treatments"])
            for a in assigned
            if a.group == "treatment"
        ]
        treat_targets(session, merchant_id, view, targets, step=step, now=NOW)


class TestBudget:
    def test_members_beyond_the_budget_are_over_budget_and_nothing_is_spent_for_them(
        self, db: Database
    ) -> None:
        # given: 3 coupons of budget (and 3 × 15 yuan), 6 members all in the treatment group
        merchant_id, ids, _ = setup(db, 6)
        template_id = make_template(db, merchant_id)
        with db.unit_of_work() as session:
            campaign = add_campaign(
                session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id),
                budget_coupons=3, budget_fen=10 * COUPON_VALUE,
            )  # fmt: skip
        # when
        treat_all(db, merchant_id, campaign, ids)
        # then
        statuses = sorted(r.status for r in rows(db, merchant_id, campaign.id))
        assert statuses == ["over_budget"] * 3 + ["queued"] * 3
        with db.reading() as session:
            view = facade.get_campaign(session, merchant_id, campaign.id)
        assert view is not None
        assert (view.spent_coupons, view.spent_fen) == (3, 3 * COUPON_VALUE)

    def test_the_fen_budget_binds_too(self, db: Database) -> None:
        # given: money for 2 coupons only
        merchant_id, ids, _ = setup(db, 5)
        template_id = make_template(db, merchant_id)
        with db.unit_of_work() as session:
            campaign = add_campaign(
                session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id),
                budget_fen=2 * COUPON_VALUE + 1,
            )  # fmt: skip
        # when
        treat_all(db, merchant_id, campaign, ids)
        # then
        assert sum(r.status == "queued" for r in rows(db, merchant_id, campaign.id)) == 2

    def test_a_replayed_slice_reserves_nothing_twice(self, db: Database) -> None:
        # given
        merchant_id, ids, _ = setup(db, 4)
        template_id = make_template(db, merchant_id)
        with db.unit_of_work() as session:
            campaign = add_campaign(session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id))
        # when
        treat_all(db, merchant_id, campaign, ids)
        treat_all(db, merchant_id, campaign, ids)
        # then
        assert len(rows(db, merchant_id, campaign.id)) == 4
        with db.reading() as session:
            view = facade.get_campaign(session, merchant_id, campaign.id)
            items = session.execute(
                select(func.count()).select_from(OutboxItem).where(OutboxItem.kind == OUTBOX_KIND)
            ).scalar_one()
        assert view is not None
        assert view.spent_coupons == 4
        assert items == 4


class TestOutboxHandler:
    def test_coupons_are_issued_once_each_with_the_treatment_key(self, db: Database) -> None:
        # given
        merchant_id, ids, _ = setup(db, 5)
        template_id = make_template(db, merchant_id)
        with db.unit_of_work() as session:
            campaign = add_campaign(session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id))
        treat_all(db, merchant_id, campaign, ids)
        # when
        drain(db)
        # then
        given = rows(db, merchant_id, campaign.id)
        assert {r.status for r in given} == {"done"}
        with db.reading() as session:
            issued = [c for m in ids for c in coupons.coupons_of(session, merchant_id, m)]
        assert len(issued) == 5
        assert {c.source for c in issued} == {"campaign"}
        assert {c.source_ref for c in issued} == {r.key for r in given}
        assert {c.id for c in issued} == {r.ref for r in given}

    def test_handling_an_item_again_gives_nothing_twice(self, db: Database) -> None:
        # given: one item handled
        merchant_id, ids, _ = setup(db, 1)
        template_id = make_template(db, merchant_id)
        with db.unit_of_work() as session:
            campaign = add_campaign(session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id))
        treat_all(db, merchant_id, campaign, ids)
        with db.reading() as session:
            item = session.execute(select(OutboxItem).where(OutboxItem.kind == OUTBOX_KIND)).scalar_one()
        view = outbox.OutboxItemView(
            item.merchant_id, item.id, item.kind, item.key, item.payload, 1, item.created_at
        )
        # when: delivered twice (at least once)
        give(db, view)
        give(db, view)
        # then
        with db.reading() as session:
            assert len(coupons.coupons_of(session, merchant_id, ids[0])) == 1

    def test_out_of_stock_is_refused_and_the_budget_released(self, db: Database) -> None:
        # given: a template with 2 coupons of stock, 5 treated members
        merchant_id, ids, _ = setup(db, 5)
        template_id = make_template(db, merchant_id, stock=2)
        with db.unit_of_work() as session:
            campaign = add_campaign(
                session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id), budget_coupons=5
            )
        treat_all(db, merchant_id, campaign, ids)
        # when
        drain(db)
        # then
        given = rows(db, merchant_id, campaign.id)
        assert sorted(r.status for r in given) == ["done"] * 2 + ["refused"] * 3
        assert {r.reason for r in given if r.status == "refused"} == {"out_of_stock"}
        with db.reading() as session:
            view = facade.get_campaign(session, merchant_id, campaign.id)
        assert view is not None
        assert (view.spent_coupons, view.spent_fen) == (2, 2 * COUPON_VALUE)

    def test_points_are_awarded_by_key(self, db: Database) -> None:
        # given
        merchant_id, ids, _ = setup(db, 3)
        variants = [{"key": "main", "weight_bp": 10_000, "treatments": [{"action": "points", "points": 88}]}]
        with db.unit_of_work() as session:
            campaign = add_campaign(session, merchant_id, holdout_bp=0, variants=variants, budget_points=1000)
        treat_all(db, merchant_id, campaign, ids)
        # when
        drain(db)
        # then
        with db.reading() as session:
            balances = [points.balance_of(session, merchant_id, m, now=NOW).balance for m in ids]
            view = facade.get_campaign(session, merchant_id, campaign.id)
        assert balances == [88, 88, 88]
        assert view is not None
        assert view.spent_points == 264
        assert {r.status for r in rows(db, merchant_id, campaign.id)} == {"done"}


def queued_items(db: Database, merchant_id: str) -> list[outbox.OutboxItemView]:
    with db.reading() as session:
        items = session.execute(
            select(OutboxItem)
            .where(OutboxItem.merchant_id == merchant_id, OutboxItem.kind == OUTBOX_KIND)
            .order_by(OutboxItem.id)
        ).scalars()
        return [
            outbox.OutboxItemView(i.merchant_id, i.id, i.kind, i.key, i.payload, 1, i.created_at)
            for i in items
        ]


def batch_world(db: Database) -> tuple[str, list[str], Any, Any]:
    """6 treated members (the last erased), a coupon campaign whose template has 3 coupons for
    them, and a points campaign; every treatment queued."""
    merchant_id, ids, _ = setup(db, 6)
    template_id = make_template(db, merchant_id, stock=3, per_member_limit=1)
    with db.unit_of_work() as session:
        coupon_campaign = add_campaign(
            session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id), budget_coupons=6
        )
        variants = [{"key": "main", "weight_bp": 10_000, "treatments": [{"action": "points", "points": 5}]}]
        points_campaign = add_campaign(
            session, merchant_id, holdout_bp=0, variants=variants, budget_points=100
        )
    treat_all(db, merchant_id, coupon_campaign, ids)
    treat_all(db, merchant_id, points_campaign, ids)
    with db.unit_of_work() as session:
        erased = session.get(Member, (merchant_id, ids[-1]))
        assert erased is not None
        erased.status = "erased"
    return merchant_id, ids, coupon_campaign, points_campaign


def outcome(db: Database, merchant_id: str, campaigns: list[Any]) -> list[Any]:
    """Statuses and reasons per member, each campaign's spending, and the coupons and points given."""
    found: list[Any] = []
    with db.reading() as session:
        for campaign in campaigns:
            given = rows(db, merchant_id, campaign.id)
            order = sorted(given, key=lambda r: r.member_id)
            view = facade.get_campaign(session, merchant_id, campaign.id)
            assert view is not None
            found.append([(r.status, r.reason, r.cost_fen) for r in order])
            found.append((view.spent_coupons, view.spent_points, view.spent_fen))
        members = sorted({r.member_id for r in rows(db, merchant_id, campaigns[0].id)})
        found.append([len(coupons.coupons_of(session, merchant_id, m)) for m in members])
        found.append([points.balance_of(session, merchant_id, m, now=NOW).balance for m in members])
    return found


class TestBatchDelivery:
    def test_the_batch_handler_gives_what_one_by_one_gives(self, db: Database) -> None:
        # given: two identical merchants
        one = batch_world(db)
        many = batch_world(db)
        # when: one merchant's items one at a time, the other's in one batch
        for view in queued_items(db, one[0]):
            give(db, view)
        answers = give_many(db, queued_items(db, many[0]))
        # then: the same statuses, refusals (stock, erased member), budgets, coupons and points
        assert set(answers.values()) == {None}
        expected = outcome(db, one[0], [one[2], one[3]])
        assert outcome(db, many[0], [many[2], many[3]]) == expected
        statuses = [status for status, _, _ in expected[0]]
        assert sorted(statuses) == ["done"] * 3 + ["refused"] * 3
        assert expected[1] == (3, 0, 3 * COUPON_VALUE)  # the refused coupons' budget given back

    def test_a_batch_delivered_again_gives_nothing_twice(self, db: Database) -> None:
        # given
        merchant_id, _, coupon_campaign, points_campaign = batch_world(db)
        items = queued_items(db, merchant_id)
        give_many(db, items)
        before = outcome(db, merchant_id, [coupon_campaign, points_campaign])
        # when: at least once — the same items again, alone and in a batch
        give_many(db, items)
        for view in items:
            give(db, view)
        # then
        assert outcome(db, merchant_id, [coupon_campaign, points_campaign]) == before

    def test_the_outbox_runs_campaign_treatments_as_batches(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given
        merchant_id, _, coupon_campaign, points_campaign = batch_world(db)
        one = batch_world(db)
        for view in queued_items(db, one[0]):
            give(db, view)
        sizes: list[int] = []

        def counted(db: Database, items: Any) -> Any:
            sizes.append(len(items))
            return give_many(db, items)

        monkeypatch.setitem(outbox_service._batch_handlers, OUTBOX_KIND, counted)
        # when
        drain(db)
        # then: both merchants' 12 items in one call (the first merchant's, given one by one
        # already, again), with the outcome of one by one
        assert sizes == [24]
        assert outcome(db, merchant_id, [coupon_campaign, points_campaign]) == outcome(
            db, one[0], [one[2], one[3]]
        )


class TestHoldoutNeverTreated:
    def test_treat_gives_a_holdout_member_nothing(self, db: Database) -> None:
        # given: half held out
        merchant_id, ids, _ = setup(db, 40)
        with db.unit_of_work() as session:
            campaign = add_campaign(session, merchant_id, holdout_bp=5000)
            assigned = facade.assign_many(session, merchant_id, campaign, ids, now=NOW, source="decision")
        held = [a.member_id for a in assigned if a.group == "holdout"]
        assert held
        # when
        with db.unit_of_work() as session:
            given = [
                facade.treat(
                    session, merchant_id, campaign, m, [{"action": "points", "points": 5}], step="x", now=NOW
                )
                for m in held
            ]
        # then
        assert given == [[] for _ in held]
        assert rows(db, merchant_id, campaign.id) == []

    def test_treat_gives_an_unassigned_member_nothing(self, db: Database) -> None:
        # given
        merchant_id, ids, _ = setup(db, 1)
        with db.unit_of_work() as session:
            campaign = add_campaign(session, merchant_id, holdout_bp=0)
            # when
            given = facade.treat(
                session, merchant_id, campaign, ids[0], [{"action": "points", "points": 5}], step="x", now=NOW
            )
        # then
        assert given == []

    def test_treat_returns_the_attempts_and_a_replay_returns_the_same(self, db: Database) -> None:
        # given
        merchant_id, ids, _ = setup(db, 1)
        with db.unit_of_work() as session:
            campaign = add_campaign(session, merchant_id, holdout_bp=0, budget_points=100)
            facade.assign(session, merchant_id, campaign, ids[0], now=NOW, source="journey")
        treatments = [{"action": "points", "points": 60}, {"action": "points", "points": 60}]
        # when
        with db.unit_of_work() as session:
            first = facade.treat(session, merchant_id, campaign, ids[0], treatments, step="node-1", now=NOW)
        with db.unit_of_work() as session:
            again = facade.treat(session, merchant_id, campaign, ids[0], treatments, step="node-1", now=NOW)
        # then: both treatments of the member are reserved together (120 > 100: over budget)
        assert [t.key for t in first] == [
            f"{campaign.id}:{ids[0]}:node-1:0",
            f"{campaign.id}:{ids[0]}:node-1:1",
        ]
        assert {t.status for t in first} == {"over_budget"}
        assert first == again


@pytest.mark.postgres_only
class TestBudgetRace:
    def test_threads_treating_one_campaign_never_pass_its_budget(self, db: Database) -> None:
        # given: 8 threads, each treating its own 10 members; a budget of 23 coupons
        merchant_id, ids, _ = setup(db, 80)
        template_id = make_template(db, merchant_id, stock=1000)
        with db.unit_of_work() as session:
            campaign = add_campaign(
                session, merchant_id, holdout_bp=0, variants=coupon_variants(template_id),
                budget_coupons=23, budget_fen=40 * COUPON_VALUE,
            )  # fmt: skip

        def work(index: int) -> None:
            for member_id in ids[index * 10 : (index + 1) * 10]:
                treat_all(db, merchant_id, campaign, [member_id], step=f"t{index}")

        # when
        run_threads(8, work)
        drain(db)
        # then: exactly the budget, and every reservation is a coupon issued
        with db.reading() as session:
            view = facade.get_campaign(session, merchant_id, campaign.id)
            issued = sum(len(coupons.coupons_of(session, merchant_id, m)) for m in ids)
        given = rows(db, merchant_id, campaign.id)
        assert view is not None
        assert (view.spent_coupons, view.spent_fen) == (23, 23 * COUPON_VALUE)
        assert sum(r.status == "done" for r in given) == 23
        assert sum(r.status == "over_budget" for r in given) == 57
        assert issued == 23
