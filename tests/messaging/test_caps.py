"""Fatigue control: the caps per local day and ISO week, quiet hours, transactional exemption."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.db import Database
from siyu.messaging import facade
from siyu.messaging.facade import SendStatus
from siyu.messaging.models import COUNTED
from siyu.outbox.models import OutboxItem
from tests.messaging.helpers import T0, make_members, make_merchant, make_template, messages, req, send

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-11-<day> hour:minute in Shanghai, as UTC (the 23rd is a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


class TestDailyAndWeeklyCaps:
    def test_the_second_marketing_message_of_a_local_day_is_capped_and_kept(self, db: Database) -> None:
        # given: the defaults (1 a day, 3 a week)
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        # when: two campaigns message the member on one day
        first = send(db, merchant, [req(member, template, "a")], now=local(23, 10))[0]
        second = send(db, merchant, [req(member, template, "b")], now=local(23, 20, 59))[0]

        # then
        assert first.status is SendStatus.QUEUED
        assert second.status is SendStatus.CAPPED
        assert second.reason == "cap:day"
        rows = {m.key: m for m in messages(db, merchant)}
        assert rows["b"].status == "capped"
        assert rows["b"].reason == "cap:day"
        with db.reading() as session:
            items = session.execute(
                select(OutboxItem.key).where(OutboxItem.merchant_id == merchant)
            ).scalars()
            assert list(items) == ["message:a"]

    def test_the_next_local_day_is_a_new_day(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        # when: 20:59 local, then 09:00 the next morning
        first = send(db, merchant, [req(member, template, "a")], now=local(23, 20, 59))[0]
        second = send(db, merchant, [req(member, template, "b")], now=local(24, 9, 0))[0]

        # then
        assert (first.status, second.status) == (SendStatus.QUEUED, SendStatus.QUEUED)

    def test_the_fourth_of_an_iso_week_is_capped_and_monday_starts_again(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        # when: Mon–Thu, then next Monday
        statuses = [
            send(db, merchant, [req(member, template, f"d{d}")], now=local(d, 12))[0]
            for d in (23, 24, 25, 26)
        ]
        monday = send(db, merchant, [req(member, template, "next")], now=local(30, 12))[0]

        # then
        assert [s.status for s in statuses] == [SendStatus.QUEUED] * 3 + [SendStatus.CAPPED]
        assert statuses[3].reason == "cap:week"
        assert monday.status is SendStatus.QUEUED

    def test_a_channel_cap_is_tighter_than_the_global_one(self, db: Database) -> None:
        # given: 3 a day overall, SMS-like webhook channel 1 a week
        merchant = make_merchant(
            db, marketing_per_day=3, marketing_per_week=10, channel_caps={"webhook": {"week": 1}}
        )
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        # when
        results = send(
            db, merchant, [req(member, template, "a"), req(member, template, "b")], now=local(23, 12)
        )

        # then
        assert [r.status for r in results] == [SendStatus.QUEUED, SendStatus.CAPPED]
        assert results[1].reason == "cap:webhook:week"

    def test_caps_count_in_the_merchants_zone(self, db: Database) -> None:
        # given: a merchant in New York (UTC-5 in November), quiet hours off
        merchant = make_merchant(db, timezone="America/New_York", quiet_start=None, quiet_end=None)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        # when: 23:30 and 00:30 New York time — one UTC day, two local days
        late = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)  # 23:30 on the 23rd in New York
        results = [
            send(db, merchant, [req(member, template, "a")], now=late - timedelta(hours=1))[0],
            send(db, merchant, [req(member, template, "b")], now=late + timedelta(hours=1))[0],
        ]

        # then: each is the first of its own local day
        assert [r.status for r in results] == [SendStatus.QUEUED, SendStatus.QUEUED]


class TestQuietHours:
    def test_marketing_at_night_is_deferred_to_nine_local(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        # when: 22:30 local
        result = send(db, merchant, [req(member, template, "a")], now=local(23, 22, 30))[0]

        # then: held until 09:00 the next local morning, and the outbox item waits as long
        assert result.status is SendStatus.DEFERRED
        assert result.send_at == local(24, 9, 0)
        with db.reading() as session:
            item = session.execute(select(OutboxItem).where(OutboxItem.merchant_id == merchant)).scalar_one()
            assert item.available_at == local(24, 9, 0)

    def test_early_morning_defers_to_the_same_morning(self, db: Database) -> None:
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        result = send(db, merchant, [req(member, template, "a")], now=local(24, 3, 0))[0]

        assert result.status is SendStatus.DEFERRED
        assert result.send_at == local(24, 9, 0)

    def test_a_deferred_message_counts_on_the_day_it_is_sent(self, db: Database) -> None:
        # given: one deferred from Monday night to Tuesday 09:00
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)
        send(db, merchant, [req(member, template, "night")], now=local(23, 23, 0))

        # when: Tuesday noon
        result = send(db, merchant, [req(member, template, "noon")], now=local(24, 12, 0))[0]

        # then: Tuesday already has its one
        assert result.status is SendStatus.CAPPED

    def test_transactional_is_exempt_from_caps_and_quiet_hours(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        marketing = make_template(db, merchant)
        notice = make_template(db, merchant, kind="transactional", body="订单 {{order}} 已发货")

        # when: at 23:00, after the day's marketing message, three notices
        now = local(23, 23, 0)
        send(db, merchant, [req(member, marketing, "m")], now=local(23, 12))
        results = send(db, merchant, [req(member, notice, f"n{i}", order=f"o{i}") for i in range(3)], now=now)

        # then: all go now
        assert [(r.status, r.send_at) for r in results] == [(SendStatus.QUEUED, now)] * 3


# ---------------------------------------------------------------- properties


@st.composite
def sends(draw: st.DrawFn) -> list[tuple[int, int, bool, int]]:
    """(member index, minutes after Monday 00:00 local, transactional?, template index)."""
    return draw(
        st.lists(
            st.tuples(
                st.integers(0, 3),
                st.integers(0, 14 * 24 * 60 - 1),
                st.booleans(),
                st.integers(0, 1),
            ),
            min_size=1,
            max_size=40,
        )
    )


def in_quiet(at: datetime, start: time, end: time) -> bool:
    moment = at.astimezone(SHANGHAI).time()
    if start > end:
        return moment >= start or moment < end
    return start <= moment < end


class TestCapProperties:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        plan=sends(),
        per_day=st.integers(0, 3),
        per_week=st.integers(0, 6),
        channel_day=st.one_of(st.none(), st.integers(0, 2)),
        batch=st.integers(1, 5),
        quiet=st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda q: q[0] != q[1]),
    )
    def test_no_local_day_or_week_exceeds_the_caps_and_nothing_marketing_is_sent_at_night(
        self,
        db: Database,
        plan: list[tuple[int, int, bool, int]],
        per_day: int,
        per_week: int,
        channel_day: int | None,
        batch: int,
        quiet: tuple[int, int],
    ) -> None:
        # given: a fresh merchant with these caps, four members, two marketing templates
        # (webhook and sms-less webhook) and a transactional one
        caps = {"webhook": {"day": channel_day}} if channel_day is not None else {}
        quiet_start, quiet_end = time(quiet[0]), time(quiet[1])
        merchant = make_merchant(
            db,
            marketing_per_day=per_day,
            marketing_per_week=per_week,
            channel_caps=caps,
            quiet_start=f"{quiet[0]:02d}:00",
            quiet_end=f"{quiet[1]:02d}:00",
        )
        members = make_members(db, merchant, 4)
        marketing = [make_template(db, merchant), make_template(db, merchant, channel="webhook", title="二")]
        notice = make_template(db, merchant, kind="transactional")
        monday = local(23, 0)

        # when: the sends, in batches, at their (not necessarily increasing) times
        results = []
        for start in range(0, len(plan), batch):
            chunk = plan[start : start + batch]
            now = monday + timedelta(minutes=chunk[0][1])
            requests = [
                req(members[m], notice if tx else marketing[t], f"k{start + i}")
                for i, (m, _, tx, t) in enumerate(chunk)
            ]
            results += send(db, merchant, requests, now=now)

        # then: per member, local day and ISO week, accepted marketing never above the caps
        rows = messages(db, merchant)
        accepted = [r for r in rows if r.status in COUNTED and r.kind == "marketing"]
        days = Counter((r.member_id, r.local_day) for r in accepted)
        weeks = Counter((r.member_id, r.local_week) for r in accepted)
        day_limit = per_day if channel_day is None else min(per_day, channel_day)
        assert all(n <= day_limit for n in days.values()), days
        assert all(n <= per_week for n in weeks.values()), weeks
        # nothing marketing is scheduled inside the quiet hours; deferrals land at their end
        assert not any(in_quiet(r.send_at, quiet_start, quiet_end) for r in accepted)
        for r in rows:
            if r.status == "deferred":
                assert r.send_at.astimezone(SHANGHAI).time() == quiet_end
                assert r.send_at > r.created_at
        # transactional: always queued at once
        assert all(r.status == "queued" for r in rows if r.kind == "transactional")
        assert len(results) == len(plan)
        assert {r.status for r in results} <= set(SendStatus)


class TestCampaignCounts:
    def test_counts_by_status(self, db: Database) -> None:
        merchant = make_merchant(db)
        a, b = make_members(db, merchant, 2)
        template = make_template(db, merchant)
        requests = [
            facade.SendRequest(
                member_id=m, template_id=template, key=k, variables={"name": "x"}, campaign_id="cmp_1"
            )
            for m, k in ((a, "1"), (a, "2"), (b, "3"))
        ]
        send(db, merchant, requests, now=T0)

        with db.reading() as session:
            counts = facade.campaign_message_counts(session, merchant, "cmp_1")
            assert list(session.execute(facade.delivered_member_ids(merchant, "cmp_1")).scalars()) == []
        assert counts == facade.CampaignMessageCounts(
            queued=2, deferred=0, delivered=0, failed=0, suppressed=1
        )


class TestQuietUntil:
    def test_the_end_of_the_quiet_hours_on_a_day_the_clocks_go_back(self) -> None:
        # given: New York, 2026-11-01 (DST ends at 02:00 local), quiet 21:00–09:00
        from siyu.messaging import service

        zone = ZoneInfo("America/New_York")
        fatigue = service.fatigue_of_row(None)

        # when: 23:00 local on Oct 31 (UTC-4)
        now = datetime(2026, 10, 31, 23, 0, tzinfo=zone).astimezone(UTC)
        until = service.quiet_until(now, zone, fatigue)

        # then: 09:00 local on Nov 1, which is UTC-5 by then
        assert until == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
        assert service.quiet_until(until, zone, fatigue) is None

    def test_a_daytime_window_and_no_window(self) -> None:
        from siyu.messaging import service

        fatigue = service.Fatigue(1, 3, {}, time(12, 0), time(14, 0))
        assert service.quiet_until(local(23, 13, 0), SHANGHAI, fatigue) == local(23, 14, 0)
        assert service.quiet_until(local(23, 14, 0), SHANGHAI, fatigue) is None
        assert service.quiet_until(local(23, 3, 0), SHANGHAI, service.Fatigue(1, 3, {}, None, None)) is None


class TestSetBased:
    def test_a_thousand_requests_take_a_handful_of_statements(self, db: Database) -> None:
        # given: 1,000 members, subscription quota for each
        from sqlalchemy import event

        from tests.messaging.helpers import set_states

        merchant = make_merchant(db)
        members = make_members(db, merchant, 1000)
        set_states(db, merchant, members, "subscription", "P1", remaining=1)
        template = make_template(db, merchant, channel="subscription", platform_template_id="P1")
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        # when
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            results = send(db, merchant, [req(m, template, f"k{m}") for m in members])
        finally:
            event.remove(db.engine, "before_cursor_execute", count)

        # then: all queued, in a bounded number of statements
        assert {r.status for r in results} == {SendStatus.QUEUED}
        assert len(statements) <= 15, statements  # 11 on SQLite, 13 on PostgreSQL (the locks)
