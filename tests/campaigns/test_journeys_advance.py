"""Walking journeys: enrolment, steps driven by ``now``, holdout, pauses, failures, waits on events."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from siyu.campaigns import journeys
from siyu.campaigns.journey_enrolment import enrol_due
from siyu.campaigns.models import Campaign
from siyu.coupons import facade as coupons
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database
from siyu.members import facade as members
from siyu.members.rights import erase_member
from tests.campaigns.helpers import add_members
from tests.campaigns.journey_helpers import (
    ORDERED,
    T0,
    add_journey,
    event,
    example_journey,
    make_merchant,
    paths,
    points_journey,
    send,
    states,
    treatments,
)
from tests.campaigns.test_messages import make_message_template, messaged


class TestExampleJourney:
    def test_visit_wait_3_days_ordered_or_coupon_wait_a_day_remind(self, db: Database) -> None:
        """The journey of the brief, driven by ``now``; the reminder is a real message (a webhook
        template: the merchant's own system, no reachability needed)."""
        # given
        merchant = make_merchant(db)
        with db.unit_of_work() as session:
            spec = TemplateIn(name="回访券", kind="cash", value_fen=500, total_stock=1000, valid_days=7)
            template = coupons.create_template(session, merchant, spec, now=T0)
        message_template = make_message_template(db, merchant)
        remind = {"action": "message", "template_id": message_template, "variables": {"name": "会员"}}
        campaign = add_journey(db, merchant, example_journey(template.id, remind))
        ids = send(db, merchant, [event(f"v{m}", m, "visit", T0) for m in "ABC"], now=T0)
        a, b, c = ids["A"], ids["B"], ids["C"]
        # when: everyone enters and waits; B orders the next day
        journeys.advance_due(db, now=T0)
        waiting = states(db, merchant, campaign.id)
        day1 = T0 + timedelta(days=1)
        send(db, merchant, [event("o1", "B", "order_paid", day1)], now=day1)
        early = journeys.advance_due(db, now=T0 + timedelta(days=2, hours=23))
        journeys.advance_due(db, now=T0 + timedelta(days=3))
        after_branch = states(db, merchant, campaign.id)
        journeys.advance_due(db, now=T0 + timedelta(days=4))
        # then: all waited three days; nothing moved early
        assert {(s.node_id, s.due_at) for s in waiting.values()} == {("wait3", T0 + timedelta(days=3))}
        assert early.steps == 0
        # B bought: out by "yes", never treated; A and C got the coupon and wait a day
        assert (after_branch[b].status, after_branch[b].node_id) == ("done", "bought")
        assert {(after_branch[m].node_id, after_branch[m].due_at) for m in (a, c)} == {
            ("wait1", T0 + timedelta(days=4))
        }
        walked = paths(db, merchant, campaign.id)
        assert walked[b] == [
            ("start", "entered"),
            ("wait3", "waited"),
            ("ordered", "yes"),
            ("bought", "exit"),
        ]
        expected = [
            ("start", "entered"),
            ("wait3", "waited"),
            ("ordered", "no"),
            ("coupon", "treated"),
            ("wait1", "waited"),
            ("remind", "treated"),
            ("end", "exit"),
        ]
        assert walked[a] == walked[c] == expected
        given = treatments(db, merchant, campaign.id)
        assert sorted((t.member_id, t.action, t.key) for t in given) == sorted(
            (m, action, f"{campaign.id}:{m}:{node}:0")
            for m in (a, c)
            for node, action in (("coupon", "coupon"), ("remind", "message"))
        )
        assert {(t.action, t.status) for t in given} == {("coupon", "queued"), ("message", "done")}
        assert messaged(db, campaign.id) == {a, c}


class TestEventTrigger:
    def test_an_event_of_the_entry_type_enrols_the_member_once(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey())
        # when: a visit, another visit, an order
        ids = send(db, merchant, [event("v1", "A", "visit", T0), event("o1", "B", "order_paid", T0)], now=T0)
        send(db, merchant, [event("v2", "A", "visit", T0 + timedelta(hours=1))], now=T0 + timedelta(hours=1))
        # then: A waits at the entry, due at once; B never came in
        found = states(db, merchant, campaign.id)
        assert set(found) == {ids["A"]}
        assert (found[ids["A"]].node_id, found[ids["A"]].status, found[ids["A"]].due_at) == (
            "start",
            "waiting",
            T0,
        )

    def test_the_trigger_condition_is_tested(self, db: Database) -> None:
        # given: only members who ordered in the last 3 days come in
        merchant = make_merchant(db)
        journey = points_journey(entry={"trigger": {"event": "visit", "condition": ORDERED}})
        campaign = add_journey(db, merchant, journey)
        send(db, merchant, [event("o1", "A", "order_paid", T0 - timedelta(days=1))], now=T0)
        # when
        ids = send(db, merchant, [event("v1", "A", "visit", T0), event("v2", "B", "visit", T0)], now=T0)
        # then
        assert set(states(db, merchant, campaign.id)) == {ids["A"]}

    def test_a_paused_or_finished_journey_enrols_nobody(self, db: Database) -> None:
        merchant = make_merchant(db)
        paused = add_journey(db, merchant, points_journey(), status="paused")
        done = add_journey(db, merchant, points_journey(), status="completed")
        send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)
        assert states(db, merchant, paused.id) == {}
        assert states(db, merchant, done.id) == {}


class TestAdvance:
    def test_members_walk_to_the_exit_and_each_treatment_happens_once(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey())
        ids = send(db, merchant, [event(f"v{i}", f"M{i}", "visit", T0) for i in range(5)], now=T0)
        # when: advanced twice (the second finds nothing due)
        first = journeys.advance_due(db, now=T0, batch=2)
        second = journeys.advance_due(db, now=T0 + timedelta(days=1))
        # then
        assert (first.steps, second.steps) == (15, 0)
        found = states(db, merchant, campaign.id)
        assert {s.status for s in found.values()} == {"done"}
        assert {s.node_id for s in found.values()} == {"end"}
        expected = [("start", "entered"), ("gift", "treated"), ("again", "treated"), ("end", "exit")]
        assert paths(db, merchant, campaign.id) == dict.fromkeys(ids.values(), expected)
        keys = [t.key for t in treatments(db, merchant, campaign.id)]
        assert sorted(keys) == sorted(
            f"{campaign.id}:{m}:{node}:0" for m in ids.values() for node in ("gift", "again")
        )

    def test_the_limit_bounds_the_steps_and_the_rest_follow_later(self, db: Database) -> None:
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey())
        send(db, merchant, [event(f"v{i}", f"M{i}", "visit", T0) for i in range(4)], now=T0)
        assert journeys.advance_due(db, now=T0, limit=5, batch=3).steps == 5
        assert journeys.advance_due(db, now=T0, batch=3).steps == 7
        assert {s.status for s in states(db, merchant, campaign.id).values()} == {"done"}

    def test_holdout_members_are_recorded_and_never_treated(self, db: Database) -> None:
        # given: half the members held out
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey(), holdout_bp=5000)
        ids = send(db, merchant, [event(f"v{i}", f"M{i}", "visit", T0) for i in range(40)], now=T0)
        # when
        journeys.advance_due(db, now=T0)
        # then
        found = states(db, merchant, campaign.id)
        held = {m for m, s in found.items() if s.group == "holdout"}
        treated = {m for m, s in found.items() if s.group == "treatment"}
        assert held
        assert treated
        assert held | treated == set(ids.values())
        assert all(found[m].status == "exited" for m in held)
        assert all(paths(db, merchant, campaign.id)[m] == [("start", "holdout")] for m in held)
        assert all(found[m].status == "done" for m in treated)
        assert {t.member_id for t in treatments(db, merchant, campaign.id)} == treated

    def test_a_paused_journey_holds_members_where_they_are(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey())
        ids = send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)
        _set_status(db, merchant, campaign.id, "paused")
        # when
        report = journeys.advance_due(db, now=T0)
        # then: nothing moved; looked at again later
        state = states(db, merchant, campaign.id)[ids["A"]]
        assert (report.steps, report.postponed) == (0, 1)
        assert (state.node_id, state.status) == ("start", "waiting")
        assert state.due_at == T0 + journeys.PAUSE_RECHECK
        # when: resumed
        _set_status(db, merchant, campaign.id, "running")
        journeys.advance_due(db, now=T0 + timedelta(minutes=10))
        # then
        assert states(db, merchant, campaign.id)[ids["A"]].status == "done"

    def test_a_cancelled_journey_lets_its_members_go(self, db: Database) -> None:
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey())
        ids = send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)
        _set_status(db, merchant, campaign.id, "cancelled")
        journeys.advance_due(db, now=T0)
        state = states(db, merchant, campaign.id)[ids["A"]]
        assert (state.status, state.due_at) == ("exited", None)
        assert paths(db, merchant, campaign.id)[ids["A"]] == [("start", "campaign_ended")]
        assert treatments(db, merchant, campaign.id) == []

    def test_a_failing_step_is_undone_alone_and_retried_with_back_off(self, db: Database) -> None:
        # given: the branch names a segment that does not exist
        merchant = make_merchant(db)
        journey = points_journey()
        journey["nodes"][1:1] = [
            {"id": "test", "type": "branch", "segment_id": "seg_gone", "yes": "gift", "no": "gift"}
        ]
        journey["nodes"][0]["next"] = "test"
        broken = add_journey(db, merchant, journey)
        fine = add_journey(db, merchant, points_journey())
        ids = send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)
        # when
        report = journeys.advance_due(db, now=T0)
        # then: the broken journey's member waits at the branch with the error; the other walked on
        state = states(db, merchant, broken.id)[ids["A"]]
        assert (state.node_id, state.failures, state.due_at) == ("test", 1, T0 + journeys.RETRY_BASE)
        assert "seg_gone" in (state.last_error or "")
        assert states(db, merchant, fine.id)[ids["A"]].status == "done"
        assert report.postponed == 1
        # when: it fails again, the back-off doubles
        journeys.advance_due(db, now=T0 + timedelta(minutes=1))
        state = states(db, merchant, broken.id)[ids["A"]]
        assert (state.failures, state.due_at) == (2, T0 + timedelta(minutes=1) + 2 * journeys.RETRY_BASE)


class TestWaits:
    def test_until_event_leaves_by_next_when_the_event_comes_and_by_timeout_next_otherwise(
        self, db: Database
    ) -> None:
        # given: entry → wait for an order (2 days) → ordered: exit "bought"; timeout: points → exit
        merchant = make_merchant(db)
        journey = points_journey()
        journey["nodes"][0]["next"] = "wait"
        journey["nodes"].append(
            {
                "id": "wait",
                "type": "wait",
                "until_event": "order_paid",
                "timeout": {"days": 2},
                "next": "bought",
                "timeout_next": "gift",
            }
        )
        journey["nodes"].append({"id": "bought", "type": "exit"})
        campaign = add_journey(db, merchant, journey)
        ids = send(db, merchant, [event("v1", "A", "visit", T0), event("v2", "B", "visit", T0)], now=T0)
        journeys.advance_due(db, now=T0)
        assert {s.due_at for s in states(db, merchant, campaign.id).values()} == {T0 + timedelta(days=2)}
        # when: A orders a day later; then the timeout passes
        day1 = T0 + timedelta(days=1)
        send(db, merchant, [event("o1", "A", "order_paid", day1)], now=day1)
        journeys.advance_due(db, now=day1)
        journeys.advance_due(db, now=T0 + timedelta(days=2))
        # then
        walked = paths(db, merchant, campaign.id)
        assert walked[ids["A"]] == [("start", "entered"), ("wait", "event"), ("bought", "exit")]
        assert walked[ids["B"]][1] == ("wait", "timed_out")
        assert walked[ids["B"]][-1] == ("end", "exit")
        assert {t.member_id for t in treatments(db, merchant, campaign.id)} == {ids["B"]}

    def test_until_local_time_waits_for_the_merchants_wall_clock(self, db: Database) -> None:
        merchant = make_merchant(db)
        journey = points_journey()
        journey["nodes"][0]["next"] = "morning"
        journey["nodes"].append(
            {"id": "morning", "type": "wait", "until_local_time": "09:30", "next": "gift"}
        )
        campaign = add_journey(db, merchant, journey)
        ids = send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)  # 10:00 Shanghai
        journeys.advance_due(db, now=T0)
        # 09:30 Shanghai the next day = 01:30 UTC
        assert states(db, merchant, campaign.id)[ids["A"]].due_at == T0 + timedelta(hours=23, minutes=30)


class TestSegmentEntry:
    def test_a_segment_entry_enrols_its_members_once_when_running(self, db: Database) -> None:
        # given: an inline rule entry (every member who ordered in 3 days)
        merchant = make_merchant(db)
        journey = points_journey(entry={"rule": ORDERED})
        ids = send(
            db,
            merchant,
            [
                event("o1", "A", "order_paid", T0),
                event("o2", "B", "order_paid", T0),
                event("v", "C", "visit", T0),
            ],
            now=T0,
        )
        campaign = add_journey(db, merchant, journey)
        # when
        with db.unit_of_work() as session:
            first = enrol_due(session, merchant, now=T0)
        with db.unit_of_work() as session:
            second = enrol_due(session, merchant, now=T0)
        journeys.advance_due(db, now=T0)
        # then
        assert (first, second) == (2, 0)
        found = states(db, merchant, campaign.id)
        assert set(found) == {ids["A"], ids["B"]}
        assert {s.status for s in found.values()} == {"done"}


class TestStageAndBirthdayEntries:
    def test_members_who_enter_the_stage_after_the_start_come_in_once(self, db: Database) -> None:
        # given: a journey for members entering first_order, started an hour before T0
        merchant = make_merchant(db)
        entry = {"trigger": {"event": "stage_entered", "stage": "first_order"}}
        campaign = add_journey(db, merchant, points_journey(entry=entry), started_at=T0 - timedelta(hours=1))
        ids = send(db, merchant, [event("o1", "A", "order_paid", T0), event("v1", "B", "visit", T0)], now=T0)
        # when: advanced twice, then C places a first order
        first = journeys.advance_due(db, now=T0 + timedelta(minutes=1))
        again = journeys.advance_due(db, now=T0 + timedelta(minutes=2))
        later = T0 + timedelta(hours=1)
        more = send(db, merchant, [event("o2", "C", "order_paid", later)], now=later)
        journeys.advance_due(db, now=later + timedelta(minutes=1))
        # then
        found = states(db, merchant, campaign.id)
        assert set(found) == {ids["A"], more["C"]}
        assert {s.status for s in found.values()} == {"done"}
        assert (first.steps, again.steps) == (3, 0)

    def test_members_born_today_come_in_once_that_day(self, db: Database) -> None:
        # given: T0 is 2 November in Shanghai
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey(entry={"trigger": {"event": "birthday"}}))
        with db.unit_of_work() as session:
            a, b, _unborn = add_members(session, merchant, 3)
            members.set_birthday(session, merchant, a, "11-02", now=T0)
            members.set_birthday(session, merchant, b, "11-03", now=T0)
        # when
        journeys.advance_due(db, now=T0)
        journeys.advance_due(db, now=T0 + timedelta(hours=1))
        today = set(states(db, merchant, campaign.id))
        journeys.advance_due(db, now=T0 + timedelta(days=1))
        # then
        assert today == {a}
        assert set(states(db, merchant, campaign.id)) == {a, b}
        assert len(treatments(db, merchant, campaign.id)) == 4


class TestMembers:
    def test_a_merged_away_member_leaves_and_the_survivor_walks_on(self, db: Database) -> None:
        # given: two records of one person, both waiting in a journey
        merchant = make_merchant(db)
        journey = points_journey()
        journey["nodes"][0]["next"] = "wait"
        journey["nodes"].append({"id": "wait", "type": "wait", "duration": {"days": 1}, "next": "gift"})
        campaign = add_journey(db, merchant, journey)
        first = send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)["A"]
        by_phone = event("v2", "B", "visit", T0)
        by_phone["identities"] = {"phone": "13800138000"}
        second = _only(send(db, merchant, [by_phone], now=T0))
        journeys.advance_due(db, now=T0)
        # when: an event links the member number and the phone
        link = event("v3", "A", "visit", T0 + timedelta(hours=1))
        link["identities"] = {"member_no": "A", "phone": "13800138000"}
        send(db, merchant, [link], now=T0 + timedelta(hours=1))
        journeys.advance_due(db, now=T0 + timedelta(days=1))
        # then
        survivor, merged = min(first, second), max(first, second)
        found = states(db, merchant, campaign.id)
        assert (found[merged].status, paths(db, merchant, campaign.id)[merged][-1]) == (
            "exited",
            ("wait", "merged"),
        )
        assert found[survivor].status == "done"
        assert {t.member_id for t in treatments(db, merchant, campaign.id)} == {survivor}

    def test_an_erased_member_leaves_its_journeys(self, db: Database) -> None:
        merchant = make_merchant(db)
        campaign = add_journey(db, merchant, points_journey())
        ids = send(db, merchant, [event("v1", "A", "visit", T0)], now=T0)
        with db.unit_of_work() as session:
            erase_member(session, merchant, ids["A"], now=T0)
        journeys.advance_due(db, now=T0)
        state = states(db, merchant, campaign.id)[ids["A"]]
        assert state.status == "exited"
        assert paths(db, merchant, campaign.id)[ids["A"]] == [("start", "erased")]
        assert treatments(db, merchant, campaign.id) == []


def _only(ids: dict[str, str]) -> str:
    (member_id,) = ids.values()
    return member_id


def _set_status(db: Database, merchant_id: str, campaign_id: str, status: str) -> None:
    with db.unit_of_work() as session:
        session.execute(
            update(Campaign)
            .where(Campaign.merchant_id == merchant_id, Campaign.id == campaign_id)
            .values(status=status)
        )
