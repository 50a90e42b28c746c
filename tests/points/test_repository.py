"""The points repository's set-wise balance update (one statement on PostgreSQL, unnest arrays)."""

from __future__ import annotations

from siyu.db import Database
from siyu.points import repository as repo
from tests.points.helpers import T0, make_member, make_merchant


def test_add_to_balances_adds_each_members_own_delta(db: Database) -> None:
    # given: three members' accounts, one of them with 10 points already
    merchant_id = make_merchant(db)
    members = [make_member(db, merchant_id) for _ in range(3)]
    other_merchant = make_merchant(db)
    stranger = make_member(db, other_merchant)
    with db.unit_of_work() as session:
        repo.lock_accounts(session, merchant_id, members, T0)
        repo.lock_accounts(session, other_merchant, [stranger], T0)
        repo.add_to_balances(session, merchant_id, {members[2]: 10}, T0)
    # when: one batch's deltas (a zero among them), then a second update in the same transaction
    with db.unit_of_work() as session:
        repo.add_to_balances(session, merchant_id, {members[0]: 5, members[1]: 0, members[2]: -7}, T0)
        repo.add_to_balances(session, merchant_id, {members[0]: 2}, T0)
        repo.add_to_balances(session, merchant_id, {}, T0)
    # then: each balance moved by its own deltas only, and no other merchant's account moved
    with db.unit_of_work() as session:
        assert [repo.balance_of(session, merchant_id, m) for m in members] == [7, 0, 3]
        assert repo.balance_of(session, other_merchant, stranger) == 0
