"""Holdout and variant assignment: pure, stable, exact proportions; assign is idempotent."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.campaigns import facade
from siyu.campaigns.assignment import group_of, variant_of
from siyu.db import Database
from siyu.tenancy import facade as tenancy
from tests.campaigns.helpers import NOW, add_campaign, add_members

ids = st.text(alphabet="0123456789abcdefghjkmnpqrstvwxyz", min_size=1, max_size=30)
VARIANTS = [{"key": "A", "weight_bp": 3000}, {"key": "B", "weight_bp": 7000}]


class TestGroupOf:
    @given(campaign=ids, member=ids, holdout_bp=st.integers(0, 5000))
    def test_same_ids_give_the_same_group(self, campaign: str, member: str, holdout_bp: int) -> None:
        # given / when
        first = group_of(campaign, member, holdout_bp)
        # then
        assert first == group_of(campaign, member, holdout_bp)
        assert first in ("holdout", "treatment")

    @given(campaign=ids, member=ids, low=st.integers(0, 5000), high=st.integers(0, 5000))
    def test_a_larger_holdout_only_adds_members(
        self, campaign: str, member: str, low: int, high: int
    ) -> None:
        # given
        low, high = sorted((low, high))
        # when / then: the holdout of a smaller share is inside the holdout of a larger one
        if group_of(campaign, member, low) == "holdout":
            assert group_of(campaign, member, high) == "holdout"

    def test_proportions_are_close_to_holdout_bp_on_20k_ids(self) -> None:
        # given
        members = [f"mbr_{i:06d}" for i in range(20_000)]
        # when
        held = sum(group_of("cmp_x", m, 1000) == "holdout" for m in members)
        # then: 10 % ± 4.5 standard deviations (sd = sqrt(20000 × 0.1 × 0.9) ≈ 42)
        assert abs(held - 2000) < 190

    def test_zero_holdout_holds_nobody(self) -> None:
        assert all(group_of("cmp_x", f"m{i}", 0) == "treatment" for i in range(2000))


class TestVariantOf:
    @given(campaign=ids, member=ids)
    def test_stable(self, campaign: str, member: str) -> None:
        assert variant_of(campaign, member, VARIANTS) == variant_of(campaign, member, VARIANTS)

    def test_weights_are_honoured_and_independent_of_the_group(self) -> None:
        # given
        members = [f"mbr_{i:06d}" for i in range(20_000)]
        # when
        treated = [m for m in members if group_of("cmp_y", m, 2000) == "treatment"]
        share_a = sum(variant_of("cmp_y", m, VARIANTS) == "A" for m in treated) / len(treated)
        # then: 30 % of the treatment group too (sd ≈ 0.0036)
        assert abs(share_a - 0.3) < 0.02


class TestAssign:
    def test_assign_is_idempotent_and_never_moves_a_member(self, db: Database) -> None:
        # given
        with db.unit_of_work() as session:
            merchant = tenancy.create_merchant(session, name="m")
            members = add_members(session, merchant.id, 50)
            campaign = add_campaign(session, merchant.id, holdout_bp=5000)
        # when
        with db.unit_of_work() as session:
            first = [
                facade.assign(session, merchant.id, campaign, m, now=NOW, source="snapshot") for m in members
            ]
        with db.unit_of_work() as session:
            again = facade.assign_many(session, merchant.id, campaign, members, now=NOW, source="trigger")
        # then
        assert all(a.new for a in first)
        assert not any(a.new for a in again)
        assert [(a.group, a.variant) for a in first] == [(a.group, a.variant) for a in again]
        assert {a.group for a in first} == {"holdout", "treatment"}
        assert all((a.variant is None) == (a.group == "holdout") for a in first)
        assert all(a.group == group_of(campaign.id, a.member_id, 5000) for a in first)

    def test_unassigned_members_already_assigned_keep_their_first_assignment(self, db: Database) -> None:
        # given: members assigned once (the caller's "unassigned" hint is wrong for them)
        with db.unit_of_work() as session:
            merchant = tenancy.create_merchant(session, name="m")
            members = add_members(session, merchant.id, 20)
            campaign = add_campaign(session, merchant.id, holdout_bp=5000)
        with db.unit_of_work() as session:
            first = facade.assign_many(
                session, merchant.id, campaign, members[:10], now=NOW, source="snapshot"
            )
        # when
        with db.unit_of_work() as session:
            later = NOW + timedelta(hours=1)
            again = [
                facade.assign(
                    session, merchant.id, campaign, m, now=later, source="decision", unassigned=True
                )
                for m in members
            ]
        # then: the first ten are the rows written first; the other ten are new
        assert [a.new for a in again] == [False] * 10 + [True] * 10
        assert [(a.group, a.assigned_at) for a in again[:10]] == [(a.group, a.assigned_at) for a in first]
        assert all(a.group == group_of(campaign.id, a.member_id, 5000) for a in again)


class TestReserveBudget:
    def test_never_over_the_cap(self, db: Database) -> None:
        # given
        with db.unit_of_work() as session:
            merchant = tenancy.create_merchant(session, name="m")
            campaign = add_campaign(session, merchant.id, budget_coupons=3, budget_fen=1000)
        # when
        with db.unit_of_work() as session:
            results = [
                facade.reserve_budget(session, merchant.id, campaign.id, coupons=1, fen=300) for _ in range(5)
            ]
            view = facade.get_campaign(session, merchant.id, campaign.id)
        # then
        assert results == [True, True, True, False, False]
        assert view is not None
        assert (view.spent_coupons, view.spent_fen) == (3, 900)


class TestRunningOnPlacement:
    def test_running_in_schedule_by_priority(self, db: Database) -> None:
        # given: payment-page campaigns: two running (priorities 1 and 5), one paused, one whose window ended
        with db.unit_of_work() as session:
            merchant = tenancy.create_merchant(session, name="m")
            ended = {"start_at": "2026-11-01T00:00:00+00:00", "end_at": "2026-11-02T00:00:00+00:00"}
            low = add_campaign(
                session, merchant.id, kind="payment_success", placement="payment_success", priority=1
            )
            high = add_campaign(
                session, merchant.id, kind="payment_success", placement="payment_success", priority=5
            )
            add_campaign(
                session, merchant.id, kind="payment_success", placement="payment_success", status="paused"
            )
            add_campaign(
                session,
                merchant.id,
                kind="payment_success",
                placement="payment_success",
                priority=9,
                schedule=ended,
            )
        # when
        with db.reading() as session:
            found = facade.running_on_placement(session, merchant.id, "payment_success", now=NOW)
        # then
        assert [c.id for c in found] == [high.id, low.id]


costs = st.tuples(st.integers(0, 3), st.integers(0, 50), st.integers(0, 500))


class TestBudgetProperty:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        budgets=st.tuples(
            st.none() | st.integers(0, 10), st.none() | st.integers(0, 200), st.none() | st.integers(0, 2000)
        ),
        steps=st.lists(st.tuples(st.booleans(), costs), max_size=30),
    )
    def test_spent_is_what_was_reserved_minus_released_and_never_over_a_cap(
        self,
        db: Database,
        budgets: tuple[int | None, int | None, int | None],
        steps: list[tuple[bool, tuple[int, int, int]]],
    ) -> None:
        # given
        with db.unit_of_work() as session:
            merchant = tenancy.create_merchant(session, name="m")
            campaign = add_campaign(
                session,
                merchant.id,
                budget_coupons=budgets[0],
                budget_points=budgets[1],
                budget_fen=budgets[2],
            )
        held: list[tuple[int, int, int]] = []
        # when: reservations, and releases of earlier successful ones
        with db.unit_of_work() as session:
            for release, cost in steps:
                if release and held:
                    c, p, f = held.pop()
                    facade.release_budget(session, merchant.id, campaign.id, coupons=c, points=p, fen=f)
                elif facade.reserve_budget(
                    session, merchant.id, campaign.id, coupons=cost[0], points=cost[1], fen=cost[2]
                ):
                    held.append(cost)
                # then, after every step
                view = facade.get_campaign(session, merchant.id, campaign.id)
                assert view is not None
                spent = (view.spent_coupons, view.spent_points, view.spent_fen)
                assert spent == tuple(sum(h[i] for h in held) for i in range(3))
                for used, cap in zip(spent, budgets, strict=True):
                    assert cap is None or used <= cap
