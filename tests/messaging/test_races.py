"""Several campaigns sending to the same members at once (real threads, PostgreSQL): per member
and local day exactly the cap is accepted, never more."""

from __future__ import annotations

from collections import Counter

import pytest

from siyu.db import Database
from siyu.messaging.facade import SendRequest, SendStatus
from siyu.messaging.models import COUNTED
from tests.messaging.helpers import T0, make_members, make_merchant, make_template, messages, send
from tests.threads import run_threads

pytestmark = pytest.mark.postgres_only


class TestConcurrentCampaigns:
    @pytest.mark.parametrize("per_day", [1, 2])
    def test_concurrent_send_many_never_exceeds_the_daily_cap(self, db: Database, per_day: int) -> None:
        # given: 60 members, 8 campaigns, each batch in its own order (locks must not deadlock)
        merchant = make_merchant(db, marketing_per_day=per_day, marketing_per_week=7)
        members = make_members(db, merchant, 60)
        template = make_template(db, merchant)
        accepted: list[int] = []

        # when: the 8 campaigns send to every member at the same moment
        def campaign(index: int) -> None:
            order = members if index % 2 else list(reversed(members))
            requests = [
                SendRequest(member_id=m, template_id=template, key=f"cmp{index}:{m}", variables={"name": "x"})
                for m in order
            ]
            results = send(db, merchant, requests, now=T0)
            accepted.append(sum(r.status is SendStatus.QUEUED for r in results))

        run_threads(8, campaign)

        # then: every member got exactly the cap, and the answers agree with the rows
        rows = messages(db, merchant)
        per_member = Counter(r.member_id for r in rows if r.status in COUNTED)
        assert per_member == dict.fromkeys(members, per_day)
        assert sum(accepted) == 60 * per_day
        assert len(rows) == 8 * 60

    def test_concurrent_notices_take_each_one_time_unit_once(self, db: Database) -> None:
        # given: 30 members with 3 one-time units each of one platform template
        from siyu.reachability.models import ReachState
        from tests.messaging.helpers import set_states

        merchant = make_merchant(db)
        members = make_members(db, merchant, 30)
        set_states(db, merchant, members, "subscription", "P1", remaining=3)
        notice = make_template(
            db, merchant, channel="subscription", kind="transactional", platform_template_id="P1"
        )

        # when: 8 senders notify every member at once
        def sender(index: int) -> None:
            requests = [
                SendRequest(member_id=m, template_id=notice, key=f"n{index}:{m}", variables={"name": "x"})
                for m in (members if index % 2 else list(reversed(members)))
            ]
            send(db, merchant, requests, now=T0)

        run_threads(8, sender)

        # then: exactly 3 notices per member went out, and the quota is exactly spent
        rows = messages(db, merchant)
        queued = Counter(r.member_id for r in rows if r.status == "queued")
        assert queued == dict.fromkeys(members, 3)
        assert Counter(r.reason for r in rows if r.status != "queued") == {"quota_used": 8 * 30 - 90}
        with db.reading() as session:
            left = [s.remaining for s in session.query(ReachState).filter_by(merchant_id=merchant)]
        assert left == [0] * 30
