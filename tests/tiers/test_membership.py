"""Paid membership and joint membership: floors applied and removed, ends honoured, merges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from siyu.db import Database
from siyu.kit.problems import Conflict, UnprocessableEntity
from siyu.members import service as members_service
from siyu.members.service import MergeGroup
from siyu.tiers import membership
from tests.tiers.helpers import (
    history,
    make_ladder,
    make_member,
    make_merchant,
    name_at,
    paid,
    record,
    run_jobs,
    tier_at,
)

NOW = datetime(2026, 6, 15, 2, 0, tzinfo=UTC)


def priced(db: Database, merchant: str) -> dict[str, str]:
    return make_ladder(
        db,
        merchant,
        {"name": "普卡", "rank": 0, "threshold": 0},
        {"name": "银卡", "rank": 1, "threshold": 1_000, "price_fen": 9_900, "paid_days": 30},
        {"name": "金卡", "rank": 2, "threshold": 5_000, "price_fen": 29_900, "paid_days": 365},
    )


def buy(
    db: Database, merchant: str, member: str, tier_id: str, order_id: str, now: datetime = NOW
) -> membership.Purchase:
    with db.unit_of_work() as session:
        return membership.purchase(
            session, merchant, member, tier_id, order_id=order_id, amount_fen=None, now=now
        )


def mapped(db: Database, merchant: str, tiers: dict[str, str]) -> None:
    with db.unit_of_work() as session:
        membership.put_mapping(
            session, merchant, "app", {"gold": tiers["金卡"], "silver": tiers["银卡"]}, now=NOW
        )


def link(
    db: Database, merchant: str, member: str, level: str, until: datetime | None = None, now: datetime = NOW
) -> None:
    with db.unit_of_work() as session:
        membership.link(session, merchant, member, "app", level, valid_until=until, now=now)


class TestPaidMembership:
    def test_a_purchase_gives_the_tier_until_its_end_and_a_renewal_extends_it(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = priced(db, merchant)
        member = make_member(db, merchant)
        # when: 银卡 bought for 30 days, then renewed before it ends
        first = buy(db, merchant, member, tiers["银卡"], "pay-1")
        renewal = buy(db, merchant, member, tiers["银卡"], "pay-2", NOW + timedelta(days=10))
        # then: 银卡 at once, to 60 days after the first purchase
        assert first.purchase.ends_at == NOW + timedelta(days=30)
        assert renewal.purchase.ends_at == NOW + timedelta(days=60)
        view = tier_at(db, merchant, member, NOW + timedelta(days=59))
        assert view.tier is not None
        assert view.tier.name == "银卡"
        assert view.paid_until == NOW + timedelta(days=60)
        # when: the end passes (the job runs)
        report = run_jobs(db, merchant, NOW + timedelta(days=60))
        # then: back to the earned tier
        assert report.changed == 1
        assert name_at(db, merchant, member, NOW + timedelta(days=60)) == "普卡"
        assert [r for r, _ in history(db, merchant, member)] == ["paid", "paid_ended"]

    def test_a_purchase_is_idempotent_by_order_id(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = priced(db, merchant)
        member = make_member(db, merchant)
        buy(db, merchant, member, tiers["金卡"], "pay-1")
        again = buy(db, merchant, member, tiers["金卡"], "pay-1", NOW + timedelta(days=1))
        assert again.replayed
        assert again.purchase.ends_at == NOW + timedelta(days=365)
        other = make_member(db, merchant)
        with pytest.raises(Conflict, match="already bought"):
            buy(db, merchant, other, tiers["金卡"], "pay-1")

    def test_refused_purchases_change_nothing(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = priced(db, merchant)
        member = make_member(db, merchant)
        with pytest.raises(Conflict, match="cannot be bought"):
            buy(db, merchant, member, tiers["普卡"], "pay-0")
        buy(db, merchant, member, tiers["金卡"], "pay-1")
        with pytest.raises(Conflict, match="runs until"):
            buy(db, merchant, member, tiers["银卡"], "pay-2")  # a lower tier over a running higher one
        with db.unit_of_work() as session, pytest.raises(UnprocessableEntity, match="less than the price"):
            membership.purchase(
                session, merchant, member, tiers["银卡"], order_id="pay-3", amount_fen=100, now=NOW
            )
        assert name_at(db, merchant, member, NOW) == "金卡"
        assert [r for r, _ in history(db, merchant, member)] == ["paid"]

    def test_a_cancelled_purchase_ends_now_and_the_earned_tier_remains(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = priced(db, merchant)
        member = make_member(db, merchant)
        record(db, merchant, paid(member, "o-1", 150_000, NOW))  # earned 银卡
        buy(db, merchant, member, tiers["金卡"], "pay-1")
        assert name_at(db, merchant, member, NOW) == "金卡"
        with db.unit_of_work() as session:
            membership.cancel_purchase(session, merchant, "pay-1", now=NOW + timedelta(days=3))
        assert name_at(db, merchant, member, NOW + timedelta(days=3)) == "银卡"


class TestJointMembership:
    def test_a_linked_level_is_a_floor_applied_at_once_and_removed_with_the_link(self, db: Database) -> None:
        # given: the app's "silver" maps to 银卡; the member has earned nothing
        merchant = make_merchant(db)
        tiers = make_ladder(db, merchant)
        mapped(db, merchant, tiers)
        member = make_member(db, merchant)
        # when: linked at "silver"
        link(db, merchant, member, "silver")
        # then: 银卡 at once
        view = tier_at(db, merchant, member, NOW)
        assert view.tier is not None
        assert view.tier.name == "银卡"
        assert view.floors == ("app:silver",)
        assert view.earned is not None
        assert view.earned.name == "普卡"
        # when: unlinked
        with db.unit_of_work() as session:
            membership.unlink(session, merchant, member, "app", now=NOW + timedelta(days=1))
        # then: the floor is gone at once (it only ever held while linked)
        assert name_at(db, merchant, member, NOW + timedelta(days=1)) == "普卡"
        assert history(db, merchant, member) == [
            ("joint_linked", tiers["银卡"]),
            ("joint_unlinked", tiers["普卡"]),
        ]

    def test_a_floor_never_lowers_a_better_earned_tier(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = make_ladder(db, merchant)
        mapped(db, merchant, tiers)
        member = make_member(db, merchant)
        record(db, merchant, paid(member, "o-1", 600_000, NOW))
        link(db, merchant, member, "silver")
        assert name_at(db, merchant, member, NOW) == "金卡"

    def test_a_link_that_runs_out_takes_its_floor_with_it(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = make_ladder(db, merchant)
        mapped(db, merchant, tiers)
        member = make_member(db, merchant)
        link(db, merchant, member, "gold", until=NOW + timedelta(days=7))
        assert name_at(db, merchant, member, NOW + timedelta(days=7) - timedelta(seconds=1)) == "金卡"
        report = run_jobs(db, merchant, NOW + timedelta(days=7))
        assert report.changed == 1
        assert name_at(db, merchant, member, NOW + timedelta(days=7)) == "普卡"
        assert [r for r, _ in history(db, merchant, member)] == ["joint_linked", "joint_unlinked"]

    def test_an_unmapped_level_is_refused(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = make_ladder(db, merchant)
        mapped(db, merchant, tiers)
        member = make_member(db, merchant)
        with pytest.raises(UnprocessableEntity, match="not mapped"):
            link(db, merchant, member, "diamond")

    def test_remapping_a_level_moves_the_linked_members(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = make_ladder(db, merchant)
        mapped(db, merchant, tiers)
        member = make_member(db, merchant)
        link(db, merchant, member, "silver")
        with db.unit_of_work() as session:
            membership.put_mapping(session, merchant, "app", {"silver": tiers["金卡"]}, now=NOW)
        assert name_at(db, merchant, member, NOW) == "金卡"


class TestMerge:
    def test_a_merge_keeps_progress_paid_membership_and_links_of_both(self, db: Database) -> None:
        merchant = make_merchant(db)
        tiers = priced(db, merchant)
        mapped(db, merchant, tiers)
        survivor, merged = make_member(db, merchant), make_member(db, merchant)
        record(db, merchant, paid(survivor, "o-1", 300_000, NOW), paid(merged, "o-2", 300_000, NOW))
        link(db, merchant, merged, "silver")
        assert name_at(db, merchant, survivor, NOW) == "银卡"
        # when
        with db.unit_of_work() as session:
            members_service._merge(session, merchant, [MergeGroup(survivor, (merged,))], ["test"], now=NOW)
        # then: ¥3 000 + ¥3 000 = 6 000 growth → 金卡, the link moved with its member
        view = tier_at(db, merchant, survivor, NOW)
        assert view.tier is not None
        assert view.tier.name == "金卡"
        assert view.value == 6_000
        assert view.floors == ("app:silver",)
        assert history(db, merchant, survivor)[-1] == ("merge", tiers["金卡"])
