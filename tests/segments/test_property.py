"""The compiler against the reference evaluator: on generated merchants and random nested rules,
the SQL result is exactly the set the slow Python evaluator finds (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.db import Database
from siyu.segments import facade
from tests.segments import oracle
from tests.segments.world import NOW, World, in_store_ids, rules, seed, uses_tier, worlds


class TestCompilerAgainstOracle:
    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(world=worlds(), rule_list=st.lists(rules, min_size=2, max_size=8))
    def test_sql_equals_reference(self, db: Database, world: World, rule_list: list[dict[str, Any]]) -> None:
        # given
        with db.unit_of_work() as session:
            merchant_id, ids = seed(session, world)
            for rule in rule_list:
                if uses_tier(rule) and not world.tiers:
                    with pytest.raises(facade.RuleInvalid):
                        facade.member_ids(session, merchant_id, in_store_ids(rule, ids), now=NOW)
                    continue
                # when
                statement = facade.member_ids(session, merchant_id, in_store_ids(rule, ids), now=NOW)
                found = set(session.execute(statement).scalars())
                # then
                expected = {ids[m] for m in oracle.matching(world, rule, NOW)}
                assert found == expected, rule

    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(world=worlds(), rule=rules)
    def test_membership_test_agrees_with_the_set(
        self, db: Database, world: World, rule: dict[str, Any]
    ) -> None:
        # given
        with db.unit_of_work() as session:
            merchant_id, ids = seed(session, world)
            if uses_tier(rule) and not world.tiers:
                return
            stored = in_store_ids(rule, ids)
            found = set(session.execute(facade.member_ids(session, merchant_id, stored, now=NOW)).scalars())
            # when
            one_by_one = {
                ids[m.id]
                for m in world.members
                if facade.contains(session, merchant_id, stored, ids[m.id], now=NOW)
            }
            # then
            assert one_by_one == found
            assert found <= set(session.execute(select(ids_of_active(merchant_id))).scalars())


def ids_of_active(merchant_id: str) -> Any:
    from siyu.members import facade as members

    return members.active_ids(merchant_id).subquery().c.id
