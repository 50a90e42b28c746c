"""The batch path against definitions computed from scratch.

Whatever the order of the events and however they are cut into batches, the active members are
exactly the connected components of the identity links, and every member's rollup (folded in
batch by batch) equals :func:`recompute_rollup` over its events.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from siyu.db import Database
from siyu.events.models import MemberRollup
from siyu.events.service import recompute_rollup
from siyu.integrity import orphans
from siyu.kit.pii import IdentityKind
from siyu.members import repository as members_repo
from tests.conftest import Tenant

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
KINDS = ["device_id", "member_no", "wechat_openid"]
COLUMNS = [c.name for c in MemberRollup.__table__.columns if c.name not in ("merchant_id", "member_id")]

one_event = st.tuples(
    st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=3, unique_by=lambda t: t % 3),
    st.sampled_from(["visit", "order_paid", "order_refunded", "scan"]),
    st.integers(min_value=0, max_value=40),  # minutes: small, so equal times (ties) are common
    st.integers(min_value=0, max_value=9_999),
    st.sampled_from([None, "mini_program", "life_account"]),
    st.sampled_from([None, "S1", "S2"]),
    st.sampled_from([None, "双十一", "c" * 80]),
)


def to_event(n: int, spec: tuple) -> dict[str, object]:  # type: ignore[type-arg]
    tokens, type_, minute, amount, channel, store, campaign = spec
    properties: dict[str, object] = {}
    if type_ in ("order_paid", "order_refunded"):
        properties = {"order_id": f"o{n}", "amount_fen": amount}
    elif type_ == "scan":
        properties = {"code_id": "qr-1"}
    if campaign:
        properties["campaign"] = campaign
    body: dict[str, object] = {
        "event_id": f"ev-{n:03d}" if n % 2 else f"ev{n}",
        "type": type_,
        "occurred_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "identities": {KINDS[t % 3]: f"token-{t}" for t in tokens},
        "properties": properties,
    }
    if channel:
        body["channel"] = channel
    if store:
        body["store_id"] = store
    return body


def components(events: list[dict[str, object]]) -> set[frozenset[tuple[str, str]]]:
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in events:
        keys = list(e["identities"].items())  # type: ignore[attr-defined]
        for key in keys:
            parent[find(key)] = find(keys[0])
    groups: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for key in list(parent):
        groups.setdefault(find(key), set()).add(key)
    return {frozenset(g) for g in groups.values()}


def snapshot(session, merchant_id: str, member_id: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    row = session.execute(
        select(MemberRollup.__table__).where(
            MemberRollup.merchant_id == merchant_id, MemberRollup.member_id == member_id
        )
    ).one()
    return {c: getattr(row, c) for c in COLUMNS}


class TestBatchesAgainstScratch:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(specs=st.lists(one_event, min_size=1, max_size=25), seed=st.integers(0, 10**6))
    def test_members_are_components_and_rollups_equal_a_recompute(
        self,
        client: TestClient,
        make_tenant,
        db: Database,
        specs: list[tuple],
        seed: int,  # type: ignore[type-arg]
    ) -> None:  # type: ignore[no-untyped-def]
        # given: the events shuffled and cut into batches of random sizes (a few sent twice)
        tenant: Tenant = make_tenant("性质")
        events = [to_event(n, spec) for n, spec in enumerate(specs)]
        rng = random.Random(seed)
        shuffled = list(events)
        rng.shuffle(shuffled)
        shuffled += rng.sample(events, k=min(3, len(events)))
        # when
        start = 0
        while start < len(shuffled):
            size = rng.randint(1, 8)
            chunk = shuffled[start : start + size]
            response = client.post("/api/v1/events/batch", json={"events": chunk}, headers=tenant.headers)
            assert response.status_code == 200, response.text
            assert response.json()["rejected"] == 0
            start += size
        # then: members are the components of the identity links…
        with db.reading() as session:
            active = members_repo.active_member_ids(session, tenant.merchant_id)
            held = set()
            for member_id in active:
                identities = members_repo.identities_of(session, tenant.merchant_id, member_id)
                held.add(frozenset((i.kind, i.blind_index) for i in identities))
            folded = {m: snapshot(session, tenant.merchant_id, m) for m in active}
        vault = client.app.state.vault  # type: ignore[attr-defined]
        expected = {
            frozenset((k, vault.blind_index(tenant.merchant_id, IdentityKind(k), v)) for k, v in group)
            for group in components(events)
        }
        assert held == expected
        with db.engine.connect() as connection:  # merges moved every row to a member that exists
            assert orphans(connection) == []
        # …and each rollup equals the one rebuilt from its events
        with db.unit_of_work() as session:
            for member_id in active:
                recompute_rollup(session, tenant.merchant_id, member_id)
                session.flush()
                session.expire_all()
                assert snapshot(session, tenant.merchant_id, member_id) == folded[member_id], member_id
            session.rollback()
