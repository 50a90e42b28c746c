"""Coupons through the API: templates, claims and limits, redemption, reversal, expiry, promo
codes, bad input (clear 4xx, nothing changed), tenant isolation, merges and erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.coupons import codes, facade
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.orders import OrderFact, OrderFactKind
from tests.conftest import Tenant
from tests.coupons.helpers import (
    API,
    claim,
    claim_counts,
    claimed,
    coupon,
    make_members,
    make_template,
    redeem,
    stock_state,
    template,
)
from tests.reachability.helpers import OPENID, PHONE, ev, send


def order(
    member: str, order_id: str, codes_: list[str], *, amount: Any = 5000, **extra: Any
) -> dict[str, Any]:
    return {"member_id": member, "order_id": order_id, "codes": codes_, "amount_fen": amount, **extra}


class TestTemplates:
    @pytest.mark.parametrize(
        ("fields", "pointer"),
        [
            ({"kind": "discount", "value_fen": None, "discount_bp": 0}, "/discount_bp"),
            ({"kind": "discount", "value_fen": None, "discount_bp": 10000}, "/discount_bp"),
            ({"kind": "threshold", "threshold_fen": 1000, "value_fen": 1000}, "/threshold_fen"),
            ({"kind": "threshold", "value_fen": 1000}, "/threshold_fen"),
            ({"kind": "cash", "value_fen": None}, "/value_fen"),
            ({"kind": "cash", "discount_bp": 1000}, "/discount_bp"),
            ({"kind": "exchange", "value_fen": None}, "/item_name"),
            ({"value_fen": 10.5}, "/value_fen"),
            ({"value_fen": -100}, "/value_fen"),
            ({"total_stock": 0}, "/total_stock"),
            ({"valid_days": None}, "/valid_until"),
            ({"period": "day"}, "/period_limit"),
            ({"code_mode": "shared"}, "/shared_code"),
            ({"code_mode": "shared", "shared_code": "ABCDEFGHJKMNP"}, "/shared_code"),
        ],
    )
    def test_invalid_templates_are_422_with_the_field(
        self, client: TestClient, tenant: Tenant, fields: dict[str, Any], pointer: str
    ) -> None:
        # given
        body = {"name": "券", "kind": "cash", "value_fen": 1000, "total_stock": 10, "valid_days": 7, **fields}
        body = {k: v for k, v in body.items() if v is not None}
        # when
        response = client.post(f"{API}/coupon-templates", json=body, headers=tenant.headers)
        # then
        assert response.status_code == 422, response.text
        assert pointer in [e.get("pointer") for e in response.json()["errors"]]
        assert client.get(f"{API}/coupon-templates", headers=tenant.headers).json()["items"] == []

    def test_status_goes_draft_active_paused_active_ended_and_only_active_issues(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant, activate=False)
        assert t["status"] == "draft"
        # when / then
        assert claim(client, tenant, t["id"], member).json()["reason"] == "not_active"
        path = f"{API}/coupon-templates/{t['id']}"
        assert client.post(f"{path}/activate", headers=tenant.headers).json()["status"] == "active"
        assert client.post(f"{path}/pause", headers=tenant.headers).json()["status"] == "paused"
        refused = claim(client, tenant, t["id"], member)
        assert (refused.status_code, refused.json()["reason"]) == (409, "not_active")
        assert client.post(f"{path}/activate", headers=tenant.headers).json()["status"] == "active"
        claimed(client, tenant, t["id"], member)
        assert client.post(f"{path}/end", headers=tenant.headers).json()["status"] == "ended"
        assert client.post(f"{path}/activate", headers=tenant.headers).status_code == 409
        assert claim(client, tenant, t["id"], member).json()["reason"] == "not_active"
        assert template(client, tenant, t["id"])["issued"] == 1

    def test_get_shows_stock_issued_remaining_redeemed_and_budget_and_stock_can_grow(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        members = make_members(db, tenant.merchant_id, 3)
        t = make_template(client, tenant, total_stock=20, budget_fen=50_000)
        issued = [claimed(client, tenant, t["id"], m) for m in members]
        assert redeem(client, tenant, **order(members[0], "o-1", [issued[0]["code"]])).status_code == 201
        # when
        grown = client.post(
            f"{API}/coupon-templates/{t['id']}/stock", json={"count": 5}, headers=tenant.headers
        )
        # then
        assert grown.status_code == 200
        view = template(client, tenant, t["id"])
        assert {k: view[k] for k in ("stock", "issued", "remaining", "redeemed", "budget_used_fen")} == {
            "stock": 25,
            "issued": 3,
            "remaining": 22,
            "redeemed": 1,
            "budget_used_fen": 1000,
        }
        assert stock_state(db, tenant.merchant_id, t["id"])[:2] == (3, 22)

    def test_patch_changes_what_may_change(self, client: TestClient, tenant: Tenant) -> None:
        # given
        t = make_template(client, tenant)
        # when
        response = client.patch(
            f"{API}/coupon-templates/{t['id']}",
            json={"name": "新名字", "store_ids": ["s1"], "stacking": "combinable", "budget_fen": 900},
            headers=tenant.headers,
        )
        # then
        assert response.status_code == 200, response.text
        assert (response.json()["name"], response.json()["store_ids"], response.json()["budget_fen"]) == (
            "新名字",
            ["s1"],
            900,
        )
        money = client.patch(
            f"{API}/coupon-templates/{t['id']}", json={"value_fen": 1}, headers=tenant.headers
        )
        assert money.status_code == 422


class TestClaims:
    def test_a_claim_answers_a_small_coupon_and_a_source_ref_makes_it_idempotent(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant)
        # when
        first = claimed(client, tenant, t["id"], member, source="campaign", source_ref="cmp-1")
        again = claimed(client, tenant, t["id"], member, source="campaign", source_ref="cmp-1")
        other = claimed(client, tenant, t["id"], member, source="campaign", source_ref="cmp-2")
        # then
        assert set(first) == {
            "id",
            "code",
            "template_id",
            "member_id",
            "valid_from",
            "valid_until",
            "replayed",
        }
        assert codes.is_valid(codes.normalise(first["code"]))
        assert (again["id"], again["replayed"], first["replayed"]) == (first["id"], True, False)
        assert other["id"] != first["id"]
        assert template(client, tenant, t["id"])["issued"] == 2
        assert coupon(client, tenant, first["code"])["source"] == "campaign"

    def test_limits_and_stock_refuse_with_a_reason_and_change_nothing(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a, b, c = make_members(db, tenant.merchant_id, 3)
        t = make_template(client, tenant, total_stock=3, per_member_limit=2)
        claimed(client, tenant, t["id"], a)
        claimed(client, tenant, t["id"], a)
        # when
        limited = claim(client, tenant, t["id"], a)
        claimed(client, tenant, t["id"], b)
        sold_out = claim(client, tenant, t["id"], c)
        # then
        assert (limited.status_code, limited.json()["reason"]) == (409, "member_limit")
        assert limited.json()["type"].endswith("/coupon-refused")
        assert (sold_out.status_code, sold_out.json()["reason"]) == (409, "out_of_stock")
        assert stock_state(db, tenant.merchant_id, t["id"]) == (3, 0, 0)
        assert claim_counts(db, tenant.merchant_id, a) == {(t["id"], "*"): 2}
        assert claim_counts(db, tenant.merchant_id, c) in ({}, {(t["id"], "*"): 0})

    def test_a_refusal_through_the_facade_leaves_nothing_in_a_committed_transaction(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: stock 1, taken
        a, b = make_members(db, tenant.merchant_id, 2)
        t = make_template(client, tenant, total_stock=1, per_member_limit=5)
        claimed(client, tenant, t["id"], a)
        # when: a campaign catches the refusal and commits the rest of its work
        with db.unit_of_work() as session, pytest.raises(facade.CouponRefused) as refused:
            facade.issue_coupon(
                session, tenant.merchant_id, t["id"], b, source="campaign", source_ref=None, now=utcnow()
            )
        # then
        assert refused.value.reason == "out_of_stock"
        assert stock_state(db, tenant.merchant_id, t["id"]) == (1, 0, 0)
        assert claim_counts(db, tenant.merchant_id, b) in ({}, {(t["id"], "*"): 0})

    def test_budget_used_up_and_an_ended_window_refuse(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a, b = make_members(db, tenant.merchant_id, 2)
        t = make_template(client, tenant, budget_fen=1000)
        first = claimed(client, tenant, t["id"], a)
        assert redeem(client, tenant, **order(a, "o-1", [first["code"]])).status_code == 201
        # when
        refused = claim(client, tenant, t["id"], b)
        # then
        assert refused.json()["reason"] == "budget_exhausted"
        with db.unit_of_work() as session:
            past = make_template(
                client, tenant, valid_days=None, valid_until=(utcnow() + timedelta(days=1)).isoformat()
            )
            with pytest.raises(facade.CouponRefused) as late:
                facade.issue_coupon(
                    session,
                    tenant.merchant_id,
                    past["id"],
                    b,
                    source="api",
                    source_ref=None,
                    now=utcnow() + timedelta(days=2),
                )
        assert late.value.reason == "expired_template"

    def test_unknown_member_or_template_is_404_and_an_erased_member_cannot_claim(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        member = send(client, tenant, ev("v1", "visit"))
        t = make_template(client, tenant)
        # when / then
        assert claim(client, tenant, t["id"], "mbr_nobody").status_code == 404
        assert claim(client, tenant, "cpt_nothing", member).status_code == 404
        assert client.post(f"{API}/members/{member}/erase", headers=tenant.headers).status_code == 200
        erased = claim(client, tenant, t["id"], member)
        assert (erased.status_code, erased.json()["reason"]) == (409, "member_erased")

    def test_a_merged_members_old_id_claims_for_the_survivor(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given: two members merged into one
        a = send(client, tenant, ev("a", "visit", identities=PHONE))
        b = send(client, tenant, ev("b", "visit", identities=OPENID))
        survivor = send(client, tenant, ev("link", "visit", identities={**PHONE, **OPENID}))
        merged = b if survivor == a else a
        t = make_template(client, tenant, per_member_limit=2)
        # when
        first = claimed(client, tenant, t["id"], merged)
        second = claimed(client, tenant, t["id"], survivor)
        third = claim(client, tenant, t["id"], merged)
        # then: one member, one limit
        assert (first["member_id"], second["member_id"]) == (survivor, survivor)
        assert (third.status_code, third.json()["reason"]) == (409, "member_limit")
        assert survivor in third.json()["detail"]

    def test_a_claim_with_an_idempotency_key_answers_the_same_coupon_again(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant)
        headers = {**tenant.headers, "Idempotency-Key": "claim-1"}
        path = f"{API}/coupon-templates/{t['id']}/claims"
        # when
        first = client.post(path, json={"member_id": member}, headers=headers)
        again = client.post(path, json={"member_id": member}, headers=headers)
        # then
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert template(client, tenant, t["id"])["issued"] == 1

    def test_a_period_limit_over_the_api_stops_claims_and_counts_the_day(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: a day limit of 2 under a lifetime limit of 5
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant, per_member_limit=5, period="day", period_limit=2)
        # when
        answers = [claim(client, tenant, t["id"], member) for _ in range(3)]
        # then
        assert [a.status_code for a in answers] == [201, 201, 409]
        assert answers[2].json()["reason"] == "period_limit"
        counts = claim_counts(db, tenant.merchant_id, member)
        assert counts[(t["id"], "*")] == 2
        assert sorted(counts.values()) == [2, 2]
        assert stock_state(db, tenant.merchant_id, t["id"])[0] == 2

    def test_validity_is_n_days_after_the_claim_or_the_fixed_window(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        by_days = make_template(client, tenant, valid_days=3)
        start, end = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
        fixed = make_template(
            client, tenant, valid_days=None, valid_from=start.isoformat(), valid_until=end.isoformat()
        )
        now = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
        # when
        with db.unit_of_work() as session:
            a = facade.issue_coupon(
                session, tenant.merchant_id, by_days["id"], member, source="api", source_ref=None, now=now
            )
            b = facade.issue_coupon(
                session, tenant.merchant_id, fixed["id"], member, source="api", source_ref=None, now=now
            )
        # then
        assert (a.valid_from, a.valid_until) == (now, now + timedelta(days=3))
        assert (b.valid_from, b.valid_until) == (start, end)
        at = (now + timedelta(days=3) - timedelta(seconds=1)).isoformat()
        late = (now + timedelta(days=3)).isoformat()
        refused = client.post(
            f"{API}/redemptions/preview", json=order(member, "p", [a.code], at=late), headers=tenant.headers
        )
        assert (refused.status_code, refused.json()["reason"]) == (409, "expired")
        ok = client.post(
            f"{API}/redemptions/preview", json=order(member, "p", [a.code], at=at), headers=tenant.headers
        )
        assert ok.status_code == 200, ok.text
        early = client.post(
            f"{API}/redemptions/preview", json=order(member, "p", [b.code]), headers=tenant.headers
        )
        assert early.json()["reason"] == "not_yet_valid"


class TestPeriodLimits:
    def test_a_daily_limit_resets_at_local_midnight_in_shanghai(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: one a day; 23:59 and 00:00 Shanghai are 15:59 and 16:00 UTC
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant, period="day", period_limit=1)
        before_midnight = datetime(2026, 11, 28, 15, 59, tzinfo=UTC)
        after_midnight = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)

        def issue(now: datetime) -> str:
            with db.unit_of_work() as session:
                try:
                    facade.issue_coupon(
                        session, tenant.merchant_id, t["id"], member, source="api", source_ref=None, now=now
                    )
                except facade.CouponRefused as refused:
                    return refused.reason
            return "issued"

        # when / then
        assert issue(before_midnight - timedelta(hours=15)) == "issued"  # 08:59 local, 28 Nov
        assert issue(before_midnight) == "period_limit"  # 23:59 local, same day
        assert issue(after_midnight) == "issued"  # 00:00 local, 29 Nov
        assert issue(after_midnight + timedelta(hours=7)) == "period_limit"
        assert claim_counts(db, tenant.merchant_id, member) == {
            (t["id"], "2026-11-28"): 1,
            (t["id"], "2026-11-29"): 1,
        }

    def test_weekly_and_monthly_keys(self) -> None:
        from siyu.coupons.models import LimitPeriod
        from siyu.coupons.service import period_key

        sunday_night = datetime(2026, 11, 29, 15, 59, tzinfo=UTC)  # Sun 23:59 Shanghai
        assert period_key(LimitPeriod.WEEK, sunday_night, "Asia/Shanghai") == "2026-W48"
        assert (
            period_key(LimitPeriod.WEEK, sunday_night + timedelta(minutes=1), "Asia/Shanghai") == "2026-W49"
        )
        assert (
            period_key(LimitPeriod.MONTH, datetime(2026, 11, 30, 16, 0, tzinfo=UTC), "Asia/Shanghai")
            == "2026-12"
        )


class TestLifecycle:
    def test_claim_redeem_reverse_redeem_again(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant, kind="threshold", threshold_fen=3000, value_fen=1000)
        c = claimed(client, tenant, t["id"], member)
        # when: redeemed, retried, reversed twice, redeemed on another order
        first = redeem(client, tenant, **order(member, "o-1", [c["code"].lower()], amount=3000))
        retry = redeem(client, tenant, **order(member, "o-1", [c["code"]], amount=3000))
        used = redeem(client, tenant, **order(member, "o-2", [c["code"]], amount=3000))
        reversed_ = client.post(f"{API}/redemptions/o-1/reverse", headers=tenant.headers)
        twice = client.post(f"{API}/redemptions/o-1/reverse", headers=tenant.headers)
        again = redeem(client, tenant, **order(member, "o-2", [c["code"]], amount=3000))
        # then
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["discount_fen"], body["payable_fen"], body["lines"][0]["discount_fen"]) == (
            1000,
            2000,
            1000,
        )
        assert (retry.status_code, retry.json()["id"], retry.json()["replayed"]) == (201, body["id"], True)
        assert (used.status_code, used.json()["reason"]) == (409, "already_redeemed")
        assert (reversed_.json()["status"], twice.json()["status"], twice.json()["replayed"]) == (
            "reversed",
            "reversed",
            True,
        )
        assert again.status_code == 201
        assert again.json()["discount_fen"] == 1000
        assert coupon(client, tenant, c["id"])["status"] == "redeemed"
        view = template(client, tenant, t["id"])
        assert (view["redeemed"], view["budget_used_fen"]) == (1, 1000)
        assert client.get(f"{API}/redemptions/o-1", headers=tenant.headers).json()["status"] == "reversed"

    def test_other_codes_for_a_redeemed_order_are_409(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant, stacking="combinable")
        a, b = claimed(client, tenant, t["id"], member), claimed(client, tenant, t["id"], member)
        assert redeem(client, tenant, **order(member, "o-1", [a["code"]])).status_code == 201
        # when
        other = redeem(client, tenant, **order(member, "o-1", [a["code"], b["code"]]))
        # then
        assert (other.status_code, other.json()["reason"]) == (409, "order_conflict")
        assert coupon(client, tenant, b["id"])["status"] == "available"

    def test_stacking_exclusive_against_combinable(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        combinable = make_template(client, tenant, stacking="combinable", value_fen=500)
        percent = make_template(
            client, tenant, kind="discount", value_fen=None, discount_bp=1000, stacking="combinable"
        )
        exclusive = make_template(client, tenant, stacking="exclusive")
        a, b, c = (claimed(client, tenant, x["id"], member) for x in (combinable, percent, exclusive))
        # when
        together = redeem(client, tenant, **order(member, "o-1", [b["code"], a["code"]], amount=10_005))
        d = claimed(client, tenant, combinable["id"], member)
        refused = redeem(client, tenant, **order(member, "o-2", [c["code"], d["code"]]))
        # then: 500 off, then 10 % of 9,505 = 950.5 → 951
        assert together.status_code == 201, together.text
        assert [line["discount_fen"] for line in together.json()["lines"]] == [951, 500]
        assert (refused.status_code, refused.json()["reason"]) == (409, "not_combinable")
        assert coupon(client, tenant, c["id"])["status"] == "available"

    def test_the_expiry_job_expires_due_coupons_and_a_late_reversal_gives_back_an_expired_one(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given: coupons valid 1 day, claimed 2 days ago; one redeemed then
        a, b = make_members(db, tenant.merchant_id, 2)
        t = make_template(client, tenant, valid_days=1)
        then = utcnow() - timedelta(days=2)
        with db.unit_of_work() as session:
            old_a = facade.issue_coupon(
                session, tenant.merchant_id, t["id"], a, source="api", source_ref=None, now=then
            )
            old_b = facade.issue_coupon(
                session, tenant.merchant_id, t["id"], b, source="api", source_ref=None, now=then
            )
        body = order(b, "o-old", [old_b.code], at=(then + timedelta(hours=1)).isoformat())
        assert redeem(client, tenant, **body).status_code == 201
        fresh = claimed(client, tenant, t["id"], a)
        # when
        with db.unit_of_work() as session:
            expired = facade.expire_due(session, now=utcnow())
        with db.unit_of_work() as session:
            again = facade.expire_due(session, now=utcnow())
        reversal = client.post(f"{API}/redemptions/o-old/reverse", headers=tenant.headers)
        # then
        assert (expired, again) == (1, 0)
        assert coupon(client, tenant, old_a.id)["status"] == "expired"
        assert coupon(client, tenant, fresh["id"])["status"] == "available"
        assert reversal.status_code == 200
        assert coupon(client, tenant, old_b.id)["status"] == "expired"
        listed = client.get(f"{API}/members/{a}/coupons?status=expired", headers=tenant.headers).json()
        assert [c["id"] for c in listed["items"]] == [old_a.id]


class TestBadInput:
    def test_bad_redemptions_are_clear_4xx_and_change_nothing(
        self, client: TestClient, tenant: Tenant, make_tenant: Any, db: Database
    ) -> None:
        # given
        mine, theirs = make_members(db, tenant.merchant_id, 2)
        t = make_template(client, tenant, store_ids=["s1"], channels=["pos"])
        c = claimed(client, tenant, t["id"], mine)
        other = make_tenant("乙商户")
        (stranger,) = make_members(db, other.merchant_id, 1)
        foreign = claimed(client, other, make_template(client, other)["id"], stranger)
        typo = c["code"][:-1] + ("0" if c["code"][-1] != "0" else "1")
        where = {"store_id": "s1", "channel": "pos"}
        cases = [
            (order(mine, "o", [c["code"]], amount=-1, **where), 422, None),
            (order(mine, "o", [c["code"]], amount=1.5, **where), 422, None),
            (order(mine, "o", [typo], **where), 422, None),
            (order(mine, "o", [c["code"], c["code"]], **where), 422, None),
            (order(mine, "o", ["HELLO"], **where), 422, None),
            (order(mine, "o", [codes.display(codes.new_code())], **where), 404, None),
            (order(mine, "o", [foreign["code"]], **where), 404, None),
            (order(theirs, "o", [c["code"]], **where), 409, "not_owner"),
            (order("mbr_nobody", "o", [c["code"]], **where), 404, None),
            (order(mine, "o", [c["code"]], store_id="s2", channel="pos"), 409, "wrong_store"),
            (order(mine, "o", [c["code"]], store_id="s1"), 409, "wrong_channel"),
            (
                order(mine, "o", [c["code"]], at=(utcnow() + timedelta(hours=1)).isoformat(), **where),
                422,
                None,
            ),
        ]
        for body, status, reason in cases:
            # when
            response = redeem(client, tenant, **body)
            # then
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            if reason:
                assert response.json()["reason"] == reason
        assert coupon(client, tenant, c["id"])["status"] == "available"
        assert client.get(f"{API}/redemptions/o", headers=tenant.headers).status_code == 404
        assert template(client, tenant, t["id"])["redeemed"] == 0

    def test_bad_claims_and_stock(self, client: TestClient, tenant: Tenant, db: Database) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant)
        path = f"{API}/coupon-templates/{t['id']}"
        # when / then
        assert claim(client, tenant, t["id"], member, source="fax").status_code == 422
        assert client.post(f"{path}/stock", json={"count": -5}, headers=tenant.headers).status_code == 422
        assert client.post(f"{path}/codes", json={"count": 5}, headers=tenant.headers).status_code == 409
        assert client.get(f"{API}/coupons/NOT-A-CODE", headers=tenant.headers).status_code == 422
        assert client.get(f"{API}/coupons/cpn_unknown", headers=tenant.headers).status_code == 404
        assert template(client, tenant, t["id"])["stock"] == 100


class TestPromoCodes:
    def test_unique_codes_claim_once_and_export_page_by_page(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a, b = make_members(db, tenant.merchant_id, 2)
        t = make_template(client, tenant, code_mode="unique")
        made = client.post(
            f"{API}/coupon-templates/{t['id']}/codes", json={"count": 30}, headers=tenant.headers
        )
        assert made.status_code == 201
        assert made.json()["total"] == 30
        code = made.json()["codes"][0]
        # when
        first = client.post(
            f"{API}/coupons/claim-by-code",
            json={"member_id": a, "code": code.lower()},
            headers=tenant.headers,
        )
        second = client.post(
            f"{API}/coupons/claim-by-code", json={"member_id": b, "code": code}, headers=tenant.headers
        )
        typo = client.post(
            f"{API}/coupons/claim-by-code",
            json={"member_id": b, "code": code[:-1] + ("*" if code[-1] != "*" else "~")},
            headers=tenant.headers,
        )
        # then
        assert first.status_code == 201, first.text
        assert (second.status_code, second.json()["reason"]) == (409, "code_used")
        assert typo.status_code in (404, 422)
        exported: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = client.get(
                f"{API}/coupon-templates/{t['id']}/codes?limit=7{cursor}", headers=tenant.headers
            ).json()
            exported.extend(page["items"])
            if not page["next_cursor"]:
                break
            cursor = f"&cursor={page['next_cursor']}"
        assert len({c["code"] for c in exported}) == 30
        assert [c["coupon_id"] for c in exported if c["claimed"]] == [first.json()["id"]]
        assert template(client, tenant, t["id"])["issued"] == 1

    def test_a_shared_code_serves_anyone_until_the_limits_stop_it(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a, b = make_members(db, tenant.merchant_id, 2)
        make_template(client, tenant, code_mode="shared", shared_code="welcome-2026", per_member_limit=1)

        def use(member: str) -> Any:
            return client.post(
                f"{API}/coupons/claim-by-code",
                json={"member_id": member, "code": "WELCOME 2026"},
                headers=tenant.headers,
            )

        # when / then
        assert use(a).status_code == 201
        assert use(b).status_code == 201
        assert use(a).json()["reason"] == "member_limit"
        unknown = client.post(
            f"{API}/coupons/claim-by-code", json={"member_id": a, "code": "GOODBYE"}, headers=tenant.headers
        )
        assert unknown.status_code == 404


class TestIsolation:
    def test_another_merchants_key_sees_and_changes_nothing(
        self, client: TestClient, tenant: Tenant, make_tenant: Any, db: Database
    ) -> None:
        # given
        (member,) = make_members(db, tenant.merchant_id, 1)
        t = make_template(client, tenant)
        c = claimed(client, tenant, t["id"], member)
        assert redeem(client, tenant, **order(member, "o-1", [c["code"]])).status_code == 201
        other = make_tenant("乙商户")
        # when / then
        h = other.headers
        assert client.get(f"{API}/coupon-templates/{t['id']}", headers=h).status_code == 404
        assert client.get(f"{API}/coupon-templates", headers=h).json()["items"] == []
        assert client.post(f"{API}/coupon-templates/{t['id']}/pause", headers=h).status_code == 404
        assert (
            client.post(f"{API}/coupon-templates/{t['id']}/stock", json={"count": 1}, headers=h).status_code
            == 404
        )
        assert claim(client, other, t["id"], member).status_code == 404
        assert client.get(f"{API}/coupons/{c['id']}", headers=h).status_code == 404
        assert client.get(f"{API}/coupons/{c['code']}", headers=h).status_code == 404
        assert client.get(f"{API}/members/{member}/coupons", headers=h).status_code == 404
        assert client.get(f"{API}/redemptions/o-1", headers=h).status_code == 404
        assert client.post(f"{API}/redemptions/o-1/reverse", headers=h).status_code == 404
        assert template(client, tenant, t["id"])["status"] == "active"

    def test_scopes_are_enforced(self, client: TestClient, make_tenant: Any) -> None:
        reader = make_tenant("只读", scopes=["coupons:read"])
        assert client.get(f"{API}/coupon-templates", headers=reader.headers).status_code == 200
        body = {"name": "x", "kind": "cash", "value_fen": 1, "total_stock": 1, "valid_days": 1}
        assert client.post(f"{API}/coupon-templates", json=body, headers=reader.headers).status_code == 403


class TestMembers:
    def test_a_merge_moves_coupons_and_sums_claim_counts(self, client: TestClient, tenant: Tenant) -> None:
        # given: the same person known twice, each with one coupon of a one-per-member template
        a = send(client, tenant, ev("a", "visit", identities=PHONE))
        b = send(client, tenant, ev("b", "visit", identities=OPENID))
        t = make_template(client, tenant, per_member_limit=1)
        ca, cb = claimed(client, tenant, t["id"], a), claimed(client, tenant, t["id"], b)
        # when
        survivor = send(client, tenant, ev("link", "visit", identities={**PHONE, **OPENID}))
        merged = b if survivor == a else a
        # then
        items = client.get(f"{API}/members/{survivor}/coupons", headers=tenant.headers).json()["items"]
        assert {c["id"] for c in items} == {ca["id"], cb["id"]}
        assert claim(client, tenant, t["id"], merged).json()["reason"] == "member_limit"
        assert claim(client, tenant, t["id"], survivor).json()["reason"] == "member_limit"
        code = ca["code"] if survivor == b else cb["code"]
        assert redeem(client, tenant, **order(merged, "o-m", [code])).status_code == 201

    def test_erasure_voids_available_coupons_and_keeps_redemptions(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        # given
        member = send(client, tenant, ev("e", "visit", identities=PHONE))
        t = make_template(client, tenant)
        used, kept = (
            claimed(client, tenant, t["id"], member, source_ref="r1"),
            claimed(client, tenant, t["id"], member),
        )
        assert redeem(client, tenant, **order(member, "o-e", [used["code"]])).status_code == 201
        exported = client.get(f"{API}/members/{member}/export", headers=tenant.headers)
        # when
        assert client.post(f"{API}/members/{member}/erase", headers=tenant.headers).status_code == 200
        # then
        if exported.status_code == 200:
            assert len(exported.json()["coupons"]) == 2
        assert coupon(client, tenant, kept["id"])["status"] == "void"
        assert coupon(client, tenant, used["id"])["source_ref"] is None
        assert client.get(f"{API}/redemptions/o-e", headers=tenant.headers).json()["discount_fen"] == 1000


class TestOrderFacts:
    def test_paid_orders_redeem_their_codes_and_record_the_ones_that_fail(
        self, client: TestClient, tenant: Tenant, db: Database
    ) -> None:
        # given
        a, b = make_members(db, tenant.merchant_id, 2)
        t = make_template(client, tenant, stacking="combinable")
        good, foreign = claimed(client, tenant, t["id"], a), claimed(client, tenant, t["id"], b)
        now = utcnow()
        paid = OrderFact(
            OrderFactKind.PAID,
            a,
            "o-f",
            "ev-1",
            5000,
            now,
            coupon_codes=(good["code"], foreign["code"], "BAD"),
        )
        refund = OrderFact(OrderFactKind.REFUNDED, a, "o-f", "ev-2", 5000, now)
        # when: delivered twice, then refunded twice
        for _ in range(2):
            with db.unit_of_work() as session:
                facade.redeem_for_orders(session, tenant.merchant_id, [paid], now=now)
        redeemed = client.get(f"{API}/redemptions/o-f", headers=tenant.headers).json()
        for _ in range(2):
            with db.unit_of_work() as session:
                facade.reverse_for_refunds(session, tenant.merchant_id, [refund], now=now)
        # then
        assert [line["coupon_id"] for line in redeemed["lines"]] == [good["id"]]
        assert coupon(client, tenant, foreign["id"])["status"] == "available"
        from sqlalchemy import select

        from siyu.coupons.models import CouponRedemptionFailure

        with db.reading() as session:
            failures = session.execute(
                select(CouponRedemptionFailure.reason).where(CouponRedemptionFailure.order_id == "o-f")
            ).scalars()
            assert sorted(failures) == ["invalid_code", "not_owner"]
        assert coupon(client, tenant, good["id"])["status"] == "available"
        assert template(client, tenant, t["id"])["redeemed"] == 0
        with db.reading() as session:
            assert [c.id for c in facade.coupons_of(session, tenant.merchant_id, a)] == [good["id"]]
