"""Send decisions: idempotency, erasure, merges, reachability per channel, quota, rendering."""

from __future__ import annotations

from sqlalchemy import select

from siyu.db import Database
from siyu.messaging.facade import SendStatus
from siyu.outbox.models import OutboxItem
from siyu.reachability.models import ReachChange, ReachState
from tests.messaging.helpers import (
    T0,
    make_member,
    make_members,
    make_merchant,
    make_template,
    messages,
    req,
    send,
    set_state,
)


def outbox_keys(db: Database, merchant: str) -> list[str]:
    with db.reading() as session:
        return sorted(
            session.execute(select(OutboxItem.key).where(OutboxItem.merchant_id == merchant)).scalars()
        )


class TestIdempotency:
    def test_a_replayed_key_is_a_duplicate_of_the_first_message(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)
        first = send(db, merchant, [req(member, template, "k")])[0]

        # when: the same key again, later, and twice within one batch
        again = send(db, merchant, [req(member, template, "k")], now=T0.replace(hour=3))[0]
        batch = send(db, merchant, [req(member, template, "n"), req(member, template, "n")])

        # then: one message each, one outbox item each
        assert again.status is SendStatus.DUPLICATE
        assert (again.message_id, again.send_at) == (first.message_id, first.send_at)
        assert batch[1].status is SendStatus.DUPLICATE
        assert batch[1].message_id == batch[0].message_id
        assert len(messages(db, merchant)) == 2
        assert outbox_keys(db, merchant) == ["message:k"]  # "n" was capped: nothing to deliver

    def test_a_refused_send_stores_nothing_and_may_be_retried(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant, body="{{name}}，您的 {{coupon}} 即将到期")

        # when: a variable is missing, then supplied under the same key
        missing = send(db, merchant, [req(member, template, "k", name="小王")])[0]
        fixed = send(db, merchant, [req(member, template, "k", name="小王", coupon="满100减20")])[0]

        # then
        assert (missing.status, missing.reason, missing.message_id) == (
            SendStatus.REFUSED,
            "missing_variable:coupon",
            None,
        )
        assert fixed.status is SendStatus.QUEUED
        (row,) = messages(db, merchant)
        assert row.body == "小王，您的 满100减20 即将到期"

    def test_unknown_template_and_member_are_refused(self, db: Database) -> None:
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        template = make_template(db, merchant)

        results = send(db, merchant, [req(member, "tpl_nope", "a"), req("mbr_nope", template, "b")])

        assert [(r.status, r.reason) for r in results] == [
            (SendStatus.REFUSED, "unknown_template"),
            (SendStatus.REFUSED, "unknown_member"),
        ]


class TestMembers:
    def test_an_erased_member_gets_nothing_not_even_a_notice(self, db: Database) -> None:
        # given
        merchant = make_merchant(db)
        erased = make_member(db, merchant, status="erased")
        notice = make_template(db, merchant, kind="transactional")

        # when
        result = send(db, merchant, [req(erased, notice, "k")])[0]

        # then: a record without text, nothing to deliver
        assert result.status is SendStatus.ERASED
        (row,) = messages(db, merchant)
        assert (row.status, row.title, row.body, row.variables) == ("erased", None, None, None)
        assert outbox_keys(db, merchant) == []

    def test_a_merged_id_goes_to_the_survivor_and_shares_its_caps(self, db: Database) -> None:
        # given: B merged into A; A already had today's message
        merchant = make_merchant(db)
        survivor = make_member(db, merchant)
        merged = make_member(db, merchant, status="merged", merged_into=survivor)
        template = make_template(db, merchant)
        send(db, merchant, [req(survivor, template, "first")])

        # when
        result = send(db, merchant, [req(merged, template, "second")])[0]

        # then
        assert result.member_id == survivor
        assert result.status is SendStatus.CAPPED


class TestReachability:
    def test_one_time_subscription_quota_is_consumed_once(self, db: Database) -> None:
        # given: one one-time unit of the platform template
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        notice = make_template(
            db, merchant, channel="subscription", kind="transactional", platform_template_id="P1"
        )
        set_state(db, merchant, member, "subscription", "P1", remaining=1)

        # when: two notices, and a replay of the first
        results = send(
            db, merchant, [req(member, notice, "a"), req(member, notice, "b"), req(member, notice, "a")]
        )
        replay = send(db, merchant, [req(member, notice, "a")])[0]
        later = send(db, merchant, [req(member, notice, "c")])[0]

        # then: the first goes, the second finds no quota; the unit was taken once, logged once
        assert [r.status for r in results] == [
            SendStatus.QUEUED,
            SendStatus.UNREACHABLE,
            SendStatus.DUPLICATE,
        ]
        assert results[1].reason == "quota_used"
        assert replay.status is SendStatus.DUPLICATE
        assert (later.status, later.reason) == (SendStatus.UNREACHABLE, "quota_used")
        with db.reading() as session:
            state = session.get(ReachState, (merchant, member, "subscription", "P1"))
            assert state is not None
            assert state.remaining == 0
            changes = session.execute(
                select(ReachChange.source).where(ReachChange.merchant_id == merchant)
            ).scalars()
            assert list(changes) == [f"message:{results[0].message_id}"]

    def test_a_capped_message_takes_no_quota(self, db: Database) -> None:
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        promo = make_template(db, merchant, channel="subscription", platform_template_id="P1")
        set_state(db, merchant, member, "subscription", "P1", remaining=5)

        results = send(db, merchant, [req(member, promo, "a"), req(member, promo, "b")])

        assert [r.status for r in results] == [SendStatus.QUEUED, SendStatus.CAPPED]
        with db.reading() as session:
            state = session.get(ReachState, (merchant, member, "subscription", "P1"))
            assert state is not None
            assert state.remaining == 4

    def test_a_long_term_subscription_is_not_consumed(self, db: Database) -> None:
        merchant = make_merchant(db)
        (member,) = make_members(db, merchant, 1)
        notice = make_template(
            db, merchant, channel="subscription", kind="transactional", platform_template_id="P2"
        )
        set_state(db, merchant, member, "subscription", "P2", active=True)

        results = send(db, merchant, [req(member, notice, "a"), req(member, notice, "b")])

        assert [r.status for r in results] == [SendStatus.QUEUED, SendStatus.QUEUED]

    def test_unsubscribed_is_opted_out_and_never_subscribed_is_unreachable(self, db: Database) -> None:
        merchant = make_merchant(db)
        gone, never = make_members(db, merchant, 2)
        notice = make_template(
            db, merchant, channel="subscription", kind="transactional", platform_template_id="P1"
        )
        set_state(db, merchant, gone, "subscription", "P1", opted_out_at=T0)

        results = send(db, merchant, [req(gone, notice, "a"), req(never, notice, "b")])

        assert [r.status for r in results] == [SendStatus.OPTED_OUT, SendStatus.UNREACHABLE]
        assert outbox_keys(db, merchant) == []

    def test_sms_needs_consent_and_a_phone(self, db: Database) -> None:
        # given: consent withdrawn; consent but no phone
        merchant = make_merchant(db)
        withdrawn, no_phone = make_members(db, merchant, 2)
        promo = make_template(db, merchant, channel="sms", sms_template_code="SMS_1")
        set_state(db, merchant, withdrawn, "sms", active=False)
        set_state(db, merchant, no_phone, "sms", active=True)

        # when
        results = send(db, merchant, [req(withdrawn, promo, "a"), req(no_phone, promo, "b")])

        # then: neither has a phone, so both are unreachable
        assert [r.status for r in results] == [SendStatus.UNREACHABLE, SendStatus.UNREACHABLE]

    def test_life_account_follow(self, db: Database) -> None:
        merchant = make_merchant(db, marketing_per_day=5, marketing_per_week=5)
        following, unfollowed, never = make_members(db, merchant, 3)
        promo = make_template(db, merchant, channel="life_account")
        set_state(db, merchant, following, "life_account", active=True)
        set_state(db, merchant, unfollowed, "life_account", active=False)

        results = send(db, merchant, [req(m, promo, m) for m in (following, unfollowed, never)])

        assert [r.status for r in results] == [
            SendStatus.QUEUED,
            SendStatus.OPTED_OUT,
            SendStatus.UNREACHABLE,
        ]

    def test_guide_task_channel_needs_an_assigned_guide(self, db: Database) -> None:
        merchant = make_merchant(db)
        guided, alone = make_members(db, merchant, 2)
        template = make_template(db, merchant, channel="guide_task")
        set_state(db, merchant, guided, "guide", active=True, staff_id="stf_1")

        results = send(db, merchant, [req(guided, template, "a"), req(alone, template, "b")])

        assert [r.status for r in results] == [SendStatus.QUEUED, SendStatus.UNREACHABLE]
