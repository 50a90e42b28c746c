"""The decisions repository on its own: the per-day cap's counter (``decision_caps``), whose
conditional upsert is the authority when a pre-check is skipped (a payer created by the page
view) or raced, and the draft a decision is inserted from."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.db import Database
from siyu.decisions import repository as repo
from siyu.decisions import service
from siyu.decisions.models import Decision

KEY = ("mch_cap", "cmp_cap", "mbr_cap")

# a step: take one with this cap (1..3, or 0 = offers off), or give one back (None)
steps = st.lists(st.none() | st.integers(0, 3), max_size=25)


class TestCapCounter:
    def test_a_cap_of_two_lets_two_offers_through_and_no_third(self, db: Database) -> None:
        # given / when
        with db.unit_of_work() as session:
            taken = [repo.take_cap(session, *KEY, "2026-11-28", 2) for _ in range(4)]
            shown = repo.shown_on(session, *KEY, "2026-11-28")
            other_day = repo.shown_on(session, *KEY, "2026-11-29")
        # then
        assert taken == [True, True, False, False]
        assert (shown, other_day) == (2, 0)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(plan=steps, day=st.integers(1, 28))
    def test_shown_counts_the_offers_taken_minus_given_back_and_a_take_passes_only_below_its_cap(
        self, db: Database, plan: list[int | None], day: int
    ) -> None:
        # given: a day of its own per example (the database is shared between examples)
        local_day = f"2026-{day:02d}-{len(plan):02d}"
        with db.unit_of_work() as session:
            expected = repo.shown_on(session, *KEY, local_day)
            # when / then, after every step
            for cap in plan:
                if cap is None:
                    repo.give_back_cap(session, *KEY, local_day)
                    expected = max(expected - 1, 0)
                else:
                    passed = repo.take_cap(session, *KEY, local_day, cap)
                    assert passed == (expected < cap)
                    expected += int(passed)
                assert repo.shown_on(session, *KEY, local_day) == expected


class TestDraft:
    def test_a_draft_holds_every_column_of_the_decisions_table(self) -> None:
        # given / when / then: a column added to the table must be added to the draft, which
        # the decision inserts as plain values
        assert set(service.DRAFT_COLUMNS) == set(Decision.__table__.columns.keys())
