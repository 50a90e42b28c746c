"""Identity resolution: one member per connected component of the identity graph."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault, IdentityKind
from siyu.members import repository as repo
from siyu.members.models import Member, MemberIdentity, MemberMerge, MemberStatus
from siyu.members.service import IdentityError, current_member_id, resolve_batch, resolve_identities
from siyu.tenancy import facade
from tests.threads import run_threads

VAULT = IdentifierVault("v" * 48)


@pytest.fixture
def merchant_id(db: Database) -> str:
    with db.unit_of_work() as session:
        return facade.create_merchant(session, name="会员测试").id


def resolve(db: Database, merchant_id: str, identities: dict[str, str], source: str = "test") -> str:
    with db.unit_of_work() as session:
        return resolve_identities(
            session, VAULT, merchant_id, identities, now=utcnow(), source=source
        ).member_id


class TestResolution:
    def test_same_phone_in_any_format_is_one_member(self, db: Database, merchant_id: str) -> None:
        first = resolve(db, merchant_id, {"phone": "13800138000"})
        second = resolve(db, merchant_id, {"phone": "+86 138-0013-8000"})
        assert first == second

    def test_a_linking_event_merges_into_the_oldest_member(self, db: Database, merchant_id: str) -> None:
        # given: two members known by different identities
        by_phone = resolve(db, merchant_id, {"phone": "13800138000"})
        by_alipay = resolve(db, merchant_id, {"alipay_user_id": "2088000000000001"})
        # when: an event carries both
        survivor = resolve(db, merchant_id, {"phone": "13800138000", "alipay_user_id": "2088000000000001"})
        # then
        assert survivor == min(by_phone, by_alipay) == by_phone
        with db.reading() as session:
            merged = repo.get_member(session, merchant_id, by_alipay)
            assert merged is not None
            assert merged.status == MemberStatus.MERGED
            assert current_member_id(session, merchant_id, by_alipay) == survivor
            kinds = {i.kind for i in repo.identities_of(session, merchant_id, survivor)}
            log = session.execute(select(MemberMerge)).scalars().all()
        assert kinds == {"phone", "alipay_user_id"}
        assert [(m.survivor_id, m.merged_id) for m in log] == [(survivor, by_alipay)]

    def test_identifiers_are_stored_encrypted_and_masked(self, db: Database, merchant_id: str) -> None:
        member = resolve(db, merchant_id, {"phone": "13800138000"})
        with db.reading() as session:
            (identity,) = repo.identities_of(session, merchant_id, member)
        assert identity.masked_value == "138****8000"
        assert "13800138000" not in identity.encrypted_value + identity.blind_index
        assert (
            VAULT.decrypt(merchant_id, IdentityKind(identity.kind), identity.encrypted_value)
            == "+8613800138000"
        )

    def test_merchants_do_not_share_members(self, db: Database, merchant_id: str) -> None:
        with db.unit_of_work() as session:
            other = facade.create_merchant(session, name="别家").id
        assert resolve(db, merchant_id, {"phone": "13800138000"}) != resolve(
            db, other, {"phone": "13800138000"}
        )

    @pytest.mark.parametrize(
        ("identities", "pointer"),
        [
            ({}, "/identities"),
            ({"qq": "123"}, "/identities/qq"),
            ({"phone": "12"}, "/identities/phone"),
            ({"email": "not-an-address"}, "/identities/email"),
        ],
    )
    def test_bad_identities_name_their_pointer(
        self, db: Database, merchant_id: str, identities: dict[str, str], pointer: str
    ) -> None:
        with db.unit_of_work() as session, pytest.raises(IdentityError) as info:
            resolve_identities(session, VAULT, merchant_id, identities, now=utcnow(), source="test")
        assert info.value.pointer == pointer


def components(events: list[list[int]]) -> set[frozenset[int]]:
    """Connected components of identities linked by appearing in one event (union-find)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for event in events:
        for token in event:
            find(token)
        for token in event[1:]:
            parent[find(token)] = find(event[0])
    groups: dict[int, set[int]] = {}
    for token in parent:
        groups.setdefault(find(token), set()).add(token)
    return {frozenset(g) for g in groups.values()}


def identities_for(tokens: list[int]) -> dict[str, str]:
    """Tokens 0..11 → identities of three kinds (so one event can carry several)."""
    kinds = ["device_id", "member_no", "wechat_openid"]
    by_kind: dict[str, str] = {}
    for token in tokens:
        by_kind.setdefault(kinds[token % 3], f"token-{token}")
    return by_kind


events_strategy = st.lists(
    st.lists(st.integers(min_value=0, max_value=11), min_size=1, max_size=3, unique_by=lambda t: t % 3),
    min_size=1,
    max_size=12,
)


class TestMergeProperty:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(events=events_strategy, order=st.randoms(use_true_random=False))
    def test_members_are_the_connected_components_in_any_order(
        self, db: Database, events: list[list[int]], order: object
    ) -> None:
        # given: a fresh merchant and the events in a random order
        with db.unit_of_work() as session:
            merchant_id = facade.create_merchant(session, name="性质").id
        shuffled = list(events)
        order.shuffle(shuffled)  # type: ignore[attr-defined]
        # when
        for event in shuffled:
            resolve(db, merchant_id, identities_for(event))
        # then: one active member per component, holding exactly that component's identities
        with db.reading() as session:
            active = repo.active_member_ids(session, merchant_id)
            held = {
                member: {(i.kind, i.blind_index) for i in repo.identities_of(session, merchant_id, member)}
                for member in active
            }
            merged_rows = (
                session.execute(
                    select(Member).where(
                        Member.merchant_id == merchant_id, Member.status == MemberStatus.MERGED
                    )
                )
                .scalars()
                .all()
            )
            orphans = (
                session.execute(
                    select(MemberIdentity).where(
                        MemberIdentity.merchant_id == merchant_id, MemberIdentity.member_id.not_in(active)
                    )
                )
                .scalars()
                .all()
            )
        expected = {
            frozenset(
                (kind, VAULT.blind_index(merchant_id, IdentityKind(kind), value))
                for kind, value in _pairs(component)
            )
            for component in components([identities_tokens(e) for e in events])
        }
        assert {frozenset(h) for h in held.values()} == expected
        assert orphans == []
        assert all(m.merged_into_id in active for m in merged_rows), "merged members point at a survivor"


def identities_tokens(event: list[int]) -> list[int]:
    """The tokens an event really carries (one per kind, as identities_for keeps them)."""
    seen: dict[int, int] = {}
    for token in event:
        seen.setdefault(token % 3, token)
    return list(seen.values())


def _pairs(component: frozenset[int]) -> list[tuple[str, str]]:
    kinds = ["device_id", "member_no", "wechat_openid"]
    return [(kinds[t % 3], f"token-{t}") for t in component]


class TestConcurrentResolution:
    def test_the_same_new_identity_from_many_threads_is_one_member(
        self, db: Database, merchant_id: str
    ) -> None:
        import threading

        # given
        barrier = threading.Barrier(8)
        results: list[str] = []
        lock = threading.Lock()

        def worker(index: int) -> None:
            barrier.wait()
            member = resolve(db, merchant_id, {"phone": "13900139000", "device_id": f"device-{index}"})
            with lock:
                results.append(member)

        # when
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # then
        assert len(results) == 8
        with db.reading() as session:
            active = repo.active_member_ids(session, merchant_id)
            identities = repo.identities_of(session, merchant_id, active[0])
        assert len(active) == 1
        assert set(results) == {active[0]}, "every thread got the one member"
        assert len(identities) == 9, "one phone and eight devices on the one member"

    def test_batches_adding_the_same_new_identities_in_opposite_orders_do_not_deadlock(
        self, db: Database, merchant_id: str
    ) -> None:
        """Two senders' batches carrying the same new people in opposite orders. On PostgreSQL
        each waits at the other's first new identity it meets; inserted in key order, those waits
        cannot form a cycle (in arrival order they did: "deadlock detected", a 503 to the client)."""
        # given: 5 rounds of 1,000 new people, sent by two threads, one in reverse
        size = 1_000
        for round_ in range(5):
            people = [{IdentityKind.MEMBER_NO: f"R{round_}-{n:04d}"} for n in range(size)]

            def send(index: int, people: list[dict[IdentityKind, str]] = people) -> None:
                items = people if index == 0 else people[::-1]
                with db.unit_of_work() as session:
                    resolve_batch(
                        session, VAULT, merchant_id, items, [f"sender-{index}"] * size, now=utcnow()
                    )

            # when
            run_threads(2, send)
        # then: both senders' batches went through, one member per person
        with db.reading() as session:
            assert len(repo.active_member_ids(session, merchant_id)) == 5 * size
