"""The user-asset ledger against the stage rules computed from scratch.

A generated history — members' events over 40 local days in a generated time zone, sent day by
day through the real ingestion path, with the daily sweep run on some days and skipped on others
— must leave a ledger that gives every member's stage on every date exactly as the plain
definition (:mod:`tests.lifecycle.oracle`) does over the events up to that date; the stage
counts and flows read from the ledger must agree with it; and rebuilding the ledger from the
event history must give the same stages.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.db import Database
from siyu.lifecycle import repository as repo
from siyu.lifecycle import service
from siyu.lifecycle.models import LifecycleRules, MemberStage
from siyu.lifecycle.rules import Happening, StageRules
from tests.lifecycle.helpers import at, days, event, ledger, make_merchant, send, stage_by_ledger
from tests.lifecycle.oracle import stage_from_scratch

START = date(2026, 3, 1)
HORIZON = 40
RULES = StageRules(
    high_potential_engagements=2,
    high_potential_window_days=5,
    repeat_orders=2,
    super_orders=3,
    super_net_spend_fen=500,
    super_window_days=10,
    dormant_after_days=7,
    lost_after_days=15,
)
TYPES = ["visit", "scan", "order_paid", "order_paid", "order_refunded", "unsubscribe", "message_opened"]

one_event = st.tuples(
    st.integers(0, 3),  # member
    st.integers(0, HORIZON - 1),  # local day
    st.integers(0, 23),  # local hour: early hours fall on the previous UTC day east of UTC
    st.sampled_from(TYPES),
    st.integers(0, 400),
)


class TestLedgerAgainstScratch:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        specs=st.lists(one_event, min_size=1, max_size=30),
        sweeps=st.lists(st.booleans(), min_size=HORIZON, max_size=HORIZON),
        zone=st.sampled_from(["Asia/Shanghai", "America/Los_Angeles", "UTC"]),
    )
    def test_the_ledger_gives_each_members_stage_on_every_date(
        self, db: Database, client: TestClient, specs: list[tuple[Any, ...]], sweeps: list[bool], zone: str
    ) -> None:
        # given: a merchant with short windows, so 40 days cross every rule
        vault = client.app.state.vault  # type: ignore[attr-defined]
        merchant_id = make_merchant(db, zone)
        with db.unit_of_work() as session:
            session.add(
                LifecycleRules(
                    merchant_id=merchant_id,
                    rules=RULES.model_dump(mode="json"),
                    updated_at=datetime.now().astimezone(),
                    updated_by="test",
                )
            )
        by_day: dict[int, list[dict[str, Any]]] = {}
        truth: dict[str, list[Happening]] = {}
        for n, (member, d, hour, type_, amount) in enumerate(specs):
            when = at(START + timedelta(days=d), hour, zone)
            by_day.setdefault(d, []).append(event(f"e{n}", f"m{member}", type_, when, amount))
            truth.setdefault(f"m{member}", []).append(Happening(START + timedelta(days=d), type_, amount))
        # when: each day's events arrive that evening; the sweep runs on some days only
        member_ids: dict[str, str] = {}
        for d, today in enumerate(days(START, HORIZON)):
            evening = at(today, 23, zone, 59)
            if d in by_day:
                member_ids.update(send(db, vault, merchant_id, by_day[d], now=evening))
            if sweeps[d] or d == HORIZON - 1:
                with db.unit_of_work() as session:
                    service.sweep(session, merchant_id, now=evening)
        # then: the ledger gives the plain definition's stage on every date…
        entries = ledger(db, merchant_id)
        expected: dict[date, Counter[str]] = {}
        for member_no, member_id in member_ids.items():
            for today in days(START, HORIZON):
                want = stage_from_scratch(truth[member_no], today, RULES)
                got = stage_by_ledger(entries.get(member_id, []), today)
                assert got == (want.value if want else None), (member_no, today, entries.get(member_id))
                if want is not None:
                    expected.setdefault(today, Counter())[want.value] += 1
        with db.reading() as session:
            # …the current stage row is the ledger's last word…
            for member_id, stage in session.execute(
                select(MemberStage.member_id, MemberStage.stage).where(MemberStage.merchant_id == merchant_id)
            ):
                assert stage == entries[member_id][-1].to_stage
            # …and counts and flows read from the ledger agree
            for today in days(START, HORIZON):
                assert repo.stage_counts(session, merchant_id, today) == dict(expected.get(today, Counter()))
            a, b = START + timedelta(days=9), START + timedelta(days=HORIZON - 1)
            want_flows: Counter[tuple[str | None, str | None]] = Counter()
            for member_no in member_ids:
                before = stage_from_scratch(truth[member_no], a, RULES)
                after = stage_from_scratch(truth[member_no], b, RULES)
                want_flows[(before.value if before else None, after.value if after else None)] += 1
            assert {(x, y): n for x, y, n in repo.flows(session, merchant_id, a, b)} == dict(want_flows)
        # …and a rebuild from the event history gives the same stage on every date
        with db.unit_of_work() as session:
            service.rebuild(session, merchant_id, now=at(START + timedelta(days=HORIZON - 1), 23, zone, 59))
        rebuilt = ledger(db, merchant_id)
        for member_id in member_ids.values():
            for today in days(START, HORIZON):
                assert stage_by_ledger(rebuilt[member_id], today) == stage_by_ledger(
                    entries[member_id], today
                )
