"""Merging many people at once equals merging them one at a time.

One identity resolution can fold several people (a batch of events links many members), and
every merge listener then runs once for all of them (``members.service.on_merges``). Two merchants
get the same people, orders, refunds, tags and points adjustments through the real ingestion
path; the first merges the groups in one call, the second one group per call. Everything a merge
touches — members, identities, tags, rollups, points, tiers, lifecycle ledger, merge log — must
read the same, person by person.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.events import service as events
from siyu.events.models import Event, MemberRollup
from siyu.events.service import recompute_rollup
from siyu.kit.pii import IdentifierVault
from siyu.lifecycle.models import MemberStage, StageTransition
from siyu.members import service as members_service
from siyu.members.models import Member, MemberIdentity, MemberMerge, MemberTag
from siyu.members.service import MergeGroup
from siyu.points import rules
from siyu.points import service as points
from siyu.points.models import PointsAccount, PointsEntry, PointsLot
from siyu.reachability.models import ReachChange, ReachState
from siyu.tenancy import facade as tenancy
from siyu.tiers.models import MemberTier, TierChange, TierProgress
from tests.tiers.helpers import make_ladder

VAULT = IdentifierVault("m" * 48)
T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=40)
ROLLUP = [c.name for c in MemberRollup.__table__.columns if c.name not in ("merchant_id", "member_id")]

person = st.fixed_dictionaries(
    {
        "orders": st.lists(st.integers(min_value=100, max_value=800_000), max_size=3),
        "refund_first": st.booleans(),
        "tags": st.sets(st.sampled_from(["a", "b", "c"]), max_size=2),
        "adjust": st.sampled_from([0, 0, 50, -30, -5_000]),
        "second_identity": st.booleans(),
        "subscribe": st.sampled_from(["", "one_time", "long_term", "then_unsubscribe"]),
    }
)


@st.composite
def world(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[list[int]]]:
    people = draw(st.lists(person, min_size=2, max_size=9))
    order = draw(st.permutations(range(len(people))))
    groups: list[list[int]] = []
    at = 0
    while at < len(order):
        size = draw(st.integers(min_value=1, max_value=4))
        group = sorted(order[at : at + size])
        if len(group) > 1:
            groups.append(group)
        at += size
    return people, groups


def build(db: Database, people: list[dict[str, Any]]) -> tuple[str, dict[str, str], list[str]]:
    """A merchant with a ladder and the people's events, tags and adjustments; its id, the tier
    names by id, and the member id of each person."""
    with db.unit_of_work() as session:
        merchant_id = tenancy.create_merchant(session, name="合并").id
        points.save_settings(session, merchant_id, rules.Settings(allow_negative=True), now=T0)
    tiers = {tier_id: name for name, tier_id in make_ladder(db, merchant_id).items()}
    batch: list[dict[str, Any]] = []
    for n, p in enumerate(people):
        identities = {"member_no": f"p{n}"}
        if p["second_identity"]:
            identities["device_id"] = f"d{n}"
        batch.append(_event(f"v{n}", "visit", T0 + timedelta(hours=n), identities, {}))
        for k, amount in enumerate(p["orders"]):
            at = T0 + timedelta(days=k + 1, hours=n)
            batch.append(
                _event(
                    f"o{n}-{k}", "order_paid", at, identities, {"order_id": f"o{n}-{k}", "amount_fen": amount}
                )
            )
        if p["subscribe"]:
            sub = {"channel": "mini_program", "template_id": "t1", "one_time": p["subscribe"] != "long_term"}
            batch.append(_event(f"s{n}", "subscribe", T0 + timedelta(days=5, hours=n), identities, sub))
            if p["subscribe"] == "then_unsubscribe":
                unsub = {"channel": "mini_program", "template_id": "t1"}
                batch.append(
                    _event(f"u{n}", "unsubscribe", T0 + timedelta(days=6, hours=n), identities, unsub)
                )
        if p["orders"] and p["refund_first"]:
            refund = {"order_id": f"o{n}-0", "amount_fen": p["orders"][0] // 2}
            batch.append(
                _event(f"r{n}", "order_refunded", T0 + timedelta(days=9, hours=n), identities, refund)
            )
    member_of: list[str] = []
    with db.unit_of_work() as session:
        for n in range(len(people)):  # one person per call: member ids in person order
            verdicts = events.ingest(session, VAULT, merchant_id, [batch_of(batch, n)[0]], now=T0)
            member_of.append(str(verdicts[0].member_id))
        rest = [e for e in batch if not e["event_id"].startswith("v")]
        events.ingest(session, VAULT, merchant_id, rest, now=T0 + timedelta(days=10))
        for n, p in enumerate(people):
            members_service.add_tags(session, merchant_id, member_of[n], sorted(p["tags"]), now=T0)
            if p["adjust"]:
                points.adjust(
                    session,
                    merchant_id,
                    member_of[n],
                    points=p["adjust"],
                    reason="test",
                    key=f"adjust-{n}",
                    source="test",
                    now=T0 + timedelta(days=11),
                )
    return merchant_id, tiers, member_of


def batch_of(batch: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return [e for e in batch if e["event_id"] == f"v{n}"]


def _event(
    event_id: str, type_: str, at: datetime, identities: dict[str, str], props: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": at.isoformat(),
        "identities": identities,
        "properties": props,
    }


def merge(
    db: Database, merchant_id: str, member_of: list[str], groups: list[list[int]], *, at_once: bool
) -> None:
    merges = [MergeGroup(member_of[g[0]], tuple(member_of[n] for n in g[1:])) for g in groups]
    reasons = [f"test {g}" for g in groups]
    with db.unit_of_work() as session:
        if at_once:
            members_service._merge(session, merchant_id, merges, reasons, now=NOW)
        else:
            for one, reason in zip(merges, reasons, strict=True):
                members_service._merge(session, merchant_id, [one], [reason], now=NOW)


def picture(
    session: Session, merchant_id: str, tiers: dict[str, str], member_of: list[str]
) -> dict[int, Any]:
    """Everything a merge touches, per person (member ids replaced by person numbers)."""
    person_of = {m: n for n, m in enumerate(member_of)}

    def anonymous(text: str) -> str:
        for n, m in enumerate(member_of):
            text = text.replace(m, f"#{n}")
        return text

    def rows(statement: Any) -> list[Any]:
        return list(session.execute(statement).all())

    result: dict[int, Any] = {}
    for n, member_id in enumerate(member_of):

        def mine(model: Any, member_id: str = member_id) -> Any:
            return (model.merchant_id == merchant_id) & (model.member_id == member_id)

        member = session.get(Member, (merchant_id, member_id))
        assert member is not None
        rollup = session.execute(select(MemberRollup.__table__).where(mine(MemberRollup))).first()
        tier = session.execute(
            select(MemberTier.tier_id, MemberTier.paid_tier_id).where(mine(MemberTier))
        ).first()
        result[n] = {
            "status": (
                getattr(member.status, "value", member.status),
                person_of.get(member.merged_into_id or ""),
            ),
            "identities": sorted(
                rows(select(MemberIdentity.kind, MemberIdentity.masked_value).where(mine(MemberIdentity)))
            ),
            "tags": sorted(rows(select(MemberTag.tag).where(mine(MemberTag)))),
            "events": sorted(rows(select(Event.event_id).where(mine(Event)))),
            "rollup": None if rollup is None else {c: getattr(rollup, c) for c in ROLLUP},
            "points": (
                session.execute(
                    select(PointsAccount.balance).where(mine(PointsAccount))
                ).scalar_one_or_none(),
                sorted(
                    rows(
                        select(PointsEntry.kind, PointsEntry.points, PointsEntry.key).where(mine(PointsEntry))
                    )
                ),
                session.execute(
                    select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(mine(PointsLot))
                ).scalar_one(),
            ),
            "tier": None if tier is None else (tiers.get(tier[0] or ""), tiers.get(tier[1] or "")),
            "tier_changes": sorted(
                (tiers.get(f or ""), tiers.get(t or ""), str(r), anonymous(d))
                for f, t, r, d in rows(
                    select(
                        TierChange.from_tier_id, TierChange.to_tier_id, TierChange.reason, TierChange.detail
                    ).where(mine(TierChange))
                )
            ),
            "reach": sorted(
                rows(
                    select(
                        ReachState.channel,
                        ReachState.target,
                        ReachState.active,
                        ReachState.remaining,
                        ReachState.opted_out_at,
                    ).where(mine(ReachState))
                )
            ),
            "reach_changes": len(rows(select(ReachChange.id).where(mine(ReachChange)))),
            "progress": sorted(rows(select(TierProgress.key, TierProgress.growth).where(mine(TierProgress)))),
            "stage": session.execute(
                select(MemberStage.stage, MemberStage.due_on).where(mine(MemberStage))
            ).first(),
            "ledger": sorted(
                rows(
                    select(
                        StageTransition.seq,
                        StageTransition.from_stage,
                        StageTransition.to_stage,
                        StageTransition.cause,
                    ).where(mine(StageTransition))
                )
            ),
            "merged_into_me": sorted(
                (person_of[m], reason)
                for m, reason in rows(
                    select(MemberMerge.merged_id, MemberMerge.reason).where(
                        MemberMerge.merchant_id == merchant_id, MemberMerge.survivor_id == member_id
                    )
                )
            ),
        }
    return result


class TestMergeSets:
    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(case=world())
    def test_merging_groups_at_once_equals_one_at_a_time(self, db: Database, case: Any) -> None:
        people, groups = case
        # given: the same people at two merchants
        at_once, tiers_a, members_a = build(db, people)
        one_by_one, tiers_b, members_b = build(db, people)
        with db.reading() as session:
            before = picture(session, at_once, tiers_a, members_a)
        # when: the first merges every group in one call, the second one group per call
        merge(db, at_once, members_a, groups, at_once=True)
        merge(db, one_by_one, members_b, groups, at_once=False)
        # then: person by person, the two read the same
        with db.reading() as session:
            seen_a = picture(session, at_once, tiers_a, members_a)
            seen_b = picture(session, one_by_one, tiers_b, members_b)
        for n in range(len(people)):
            assert seen_a[n] == seen_b[n], (n, groups)
        # and against what a merge means: every merged person is folded into its group's first,
        # which holds the union of their identities, tags, events, ledger entries and progress,
        # the sum of their balances, lots worth max(balance, 0) and a rollup equal to a recompute
        for group in groups:
            survivor = seen_a[group[0]]
            for n in group[1:]:
                assert seen_a[n]["status"] == ("merged", group[0])
                assert seen_a[n]["events"] == seen_a[n]["identities"] == seen_a[n]["tags"] == []
            assert len(survivor["merged_into_me"]) == len(group) - 1
            for part in ("identities", "events", "progress"):
                assert survivor[part] == sorted(x for n in group for x in before[n][part]), part
            assert survivor["tags"] == sorted({x for n in group for x in before[n]["tags"]})
            assert {r[:2] for r in survivor["reach"]} == {r[:2] for n in group for r in before[n]["reach"]}
            assert survivor["reach_changes"] >= sum(before[n]["reach_changes"] for n in group)
            balance, entries, lots = survivor["points"]
            assert balance == sum(before[n]["points"][0] or 0 for n in group)
            assert entries == sorted(x for n in group for x in before[n]["points"][1])
            assert lots == max(balance, 0)
        with db.unit_of_work() as session:
            for group in groups:
                survivor = members_a[group[0]]
                recompute_rollup(session, at_once, survivor)
                session.flush()
                session.expire_all()
                rebuilt = session.execute(
                    select(MemberRollup.__table__).where(
                        MemberRollup.merchant_id == at_once, MemberRollup.member_id == survivor
                    )
                ).one()
                assert {c: getattr(rebuilt, c) for c in ROLLUP} == seen_a[group[0]]["rollup"]
            session.rollback()
