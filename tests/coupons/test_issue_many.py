"""``issue_coupons`` (a campaign's fan-out in a few multi-row statements) against ``issue_coupon``
one by one: on generated templates (stock, per-member and per-period limits) and requests
(unknown, erased and merged members, repeats, refs already issued), the batch gives every request
the answer the one-by-one path gives; with repeated members, where rounds may hand the last stock
to another request, the money rules still hold exactly (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from siyu.coupons import facade as coupons
from siyu.coupons.models import Coupon, CouponClaimCount, CouponStockBucket
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database
from siyu.kit.ids import IdKind, new_id
from siyu.kit.problems import NotFound
from siyu.members.models import Member
from siyu.tenancy import facade as tenancy

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MEMBERS = 6  # 0–3 active, 4 erased, 5 merged into 0; index 6 is unknown

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Case:
    stock: int
    per_member_limit: int | None
    period_limit: int | None
    earlier: list[tuple[int, int]]
    """(member, ref) issued one by one before the batch."""
    requests: list[tuple[int, int]]


def cases(*, distinct_members: bool) -> st.SearchStrategy[Case]:
    pair = st.tuples(st.integers(0, MEMBERS), st.integers(0, 7))
    requests = st.lists(pair, max_size=14, unique_by=(lambda p: p[0]) if distinct_members else (lambda p: p))
    if distinct_members:  # 5 is merged into 0: the same member too
        requests = requests.filter(lambda rs: not {0, 5} <= {m for m, _ in rs})
    return st.builds(
        Case,
        stock=st.integers(1, 12),
        per_member_limit=st.none() | st.integers(1, 3),
        period_limit=st.none() | st.integers(1, 2),
        earlier=st.lists(pair, max_size=4),
        requests=requests,
    )


def build(session: Session, case: Case) -> tuple[str, str, list[str]]:
    """A merchant, its members (index 6: an id nobody has) and an active template."""
    merchant_id = tenancy.create_merchant(session, name="券商户").id
    ids = [new_id(IdKind.MEMBER) for _ in range(MEMBERS + 1)]
    status = ["active"] * 4 + ["erased", "merged"]
    session.execute(
        insert(Member),
        [
            {
                "merchant_id": merchant_id,
                "id": ids[i],
                "status": status[i],
                "merged_into_id": ids[0] if status[i] == "merged" else None,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(MEMBERS)
        ],
    )
    spec = TemplateIn(
        name="满30减10",
        kind="cash",
        value_fen=1000,
        total_stock=case.stock,
        valid_days=7,
        per_member_limit=case.per_member_limit,
        period="day" if case.period_limit else None,
        period_limit=case.period_limit,
    )
    template = coupons.create_template(session, merchant_id, spec, now=NOW)
    coupons.change_template_status(session, merchant_id, template.id, "activate", now=NOW)
    for member, ref in case.earlier:
        try:
            with session.begin_nested():
                coupons.issue_coupon(
                    session,
                    merchant_id,
                    template.id,
                    ids[member],
                    source="campaign",
                    source_ref=f"r{ref}",
                    now=NOW,
                )
        except (coupons.CouponRefused, NotFound):
            pass
    return merchant_id, template.id, ids


def answer(result: object) -> tuple[str, ...]:
    """What a request's answer means, free of generated ids."""
    if isinstance(result, coupons.IssuedCoupon):
        return ("issued", str(result.replayed))
    if isinstance(result, coupons.CouponRefused):
        return ("refused", result.reason)
    assert isinstance(result, NotFound), result
    return ("not_found",)


def one_by_one(
    session: Session, merchant_id: str, template_id: str, requests: list[tuple[str, str]]
) -> list[object]:
    answers: list[object] = []
    for member_id, ref in requests:
        try:
            with session.begin_nested():
                answers.append(
                    coupons.issue_coupon(
                        session,
                        merchant_id,
                        template_id,
                        member_id,
                        source="campaign",
                        source_ref=ref,
                        now=NOW,
                    )
                )
        except (coupons.CouponRefused, NotFound) as exc:
            answers.append(exc)
    return answers


def books(
    session: Session, merchant_id: str, template_id: str
) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """(coupons issued, stock left, coupons per member, lifetime count per member)."""
    issued = session.execute(
        select(Coupon.member_id).where(Coupon.merchant_id == merchant_id, Coupon.template_id == template_id)
    ).scalars()
    left = session.execute(
        select(func.sum(CouponStockBucket.remaining)).where(
            CouponStockBucket.merchant_id == merchant_id, CouponStockBucket.template_id == template_id
        )
    ).scalar_one()
    counted = session.execute(
        select(CouponClaimCount.member_id, CouponClaimCount.claimed).where(
            CouponClaimCount.merchant_id == merchant_id,
            CouponClaimCount.template_id == template_id,
            CouponClaimCount.period_key == "*",
        )
    ).all()
    per_member = Counter(issued)
    return sum(per_member.values()), int(left or 0), dict(per_member), {m: c for m, c in counted if c}


class TestAgainstOneByOne:
    @PROPERTY
    @given(case=cases(distinct_members=True))
    def test_each_request_gets_the_answer_issue_coupon_gives(self, db: Database, case: Case) -> None:
        with db.unit_of_work() as session:
            batch_merchant, batch_template, batch_ids = build(session, case)
            alone_merchant, alone_template, alone_ids = build(session, case)
            # when
            batch = coupons.issue_coupons(
                session,
                batch_merchant,
                batch_template,
                [(batch_ids[m], f"r{r}") for m, r in case.requests],
                source="campaign",
                now=NOW,
            )
            alone = one_by_one(
                session, alone_merchant, alone_template, [(alone_ids[m], f"r{r}") for m, r in case.requests]
            )
            # then
            assert [answer(a) for a in batch] == [answer(a) for a in alone]
            batch_books = books(session, batch_merchant, batch_template)
            alone_books = books(session, alone_merchant, alone_template)
            assert batch_books[:2] == alone_books[:2]
            index = {m: i for i, m in enumerate(batch_ids)}
            alone_index = {m: i for i, m in enumerate(alone_ids)}
            assert {index[m]: n for m, n in batch_books[2].items()} == {
                alone_index[m]: n for m, n in alone_books[2].items()
            }


class TestMoneyRules:
    @PROPERTY
    @given(case=cases(distinct_members=False))
    def test_stock_limits_and_counts_hold_with_repeats(self, db: Database, case: Case) -> None:
        with db.unit_of_work() as session:
            merchant_id, template_id, ids = build(session, case)
            before, _, _, _ = books(session, merchant_id, template_id)
            requests = [(ids[m], f"r{r}") for m, r in case.requests]
            # when
            answers = coupons.issue_coupons(
                session, merchant_id, template_id, requests, source="campaign", now=NOW
            )
            again = coupons.issue_coupons(
                session, merchant_id, template_id, requests, source="campaign", now=NOW
            )
            # then: never past the stock or a member's limit; the counters agree with the coupons
            issued, left, per_member, counted = books(session, merchant_id, template_id)
            assert issued + left == case.stock
            assert counted == (per_member if case.per_member_limit else {})
            for n in per_member.values():
                assert n <= min(case.per_member_limit or 99, case.period_limit or 99)
            new = [a for a in answers if isinstance(a, coupons.IssuedCoupon) and not a.replayed]
            assert issued == before + len(new)
            # a request answered with a coupon answers it again, replayed; the rest stay refused
            for first, second, (member_id, _) in zip(answers, again, requests, strict=True):
                if isinstance(first, coupons.IssuedCoupon):
                    assert isinstance(second, coupons.IssuedCoupon)
                    assert second.replayed
                    assert second.id == first.id
                else:
                    assert answer(second)[0] == answer(first)[0]  # stock and room only shrink
                if member_id == ids[MEMBERS]:
                    assert isinstance(first, NotFound)
                if member_id == ids[4]:
                    assert answer(first) == ("refused", "member_erased")

    def test_the_earliest_requests_take_the_last_stock(self, db: Database) -> None:
        case = Case(stock=3, per_member_limit=None, period_limit=None, earlier=[], requests=[])
        with db.unit_of_work() as session:
            merchant_id, template_id, ids = build(session, case)
            answers = coupons.issue_coupons(
                session,
                merchant_id,
                template_id,
                [(ids[m], f"x{m}") for m in (3, 2, 1, 0)],
                source="campaign",
                now=NOW,
            )
        assert [answer(a) for a in answers] == [("issued", "False")] * 3 + [("refused", "out_of_stock")]

    def test_an_inactive_template_refuses_every_request(self, db: Database) -> None:
        case = Case(stock=3, per_member_limit=None, period_limit=None, earlier=[], requests=[])
        with db.unit_of_work() as session:
            merchant_id, template_id, ids = build(session, case)
            coupons.change_template_status(session, merchant_id, template_id, "pause", now=NOW)
            answers = coupons.issue_coupons(
                session, merchant_id, template_id, [(ids[0], "a"), (ids[1], "b")], source="campaign", now=NOW
            )
        assert [answer(a) for a in answers] == [("refused", "not_active")] * 2
