"""Giving treatments: budget first, then the effect, set-wise for a slice of members.

For a slice (a broadcast's 2,000 members, or the members a trigger fires for):

1. every treatment gets its key ``{campaign_id}:{member_id}:{step}:{i}``; keys already recorded
   are left alone (a replayed slice is harmless);
2. each member's cost (coupons, points, fen) is reserved with one conditional ``UPDATE`` for the
   whole slice (:func:`siyu.campaigns.repository.reserve_each`): a member that does not fit gets
   ``over_budget`` rows and nothing else;
3. coupons and points become outbox items of kind ``campaign.treatment`` in this transaction (the
   handler below issues them after commit, idempotent by key, and releases the budget of a
   refusal); messages go to :func:`siyu.messaging.facade.send_many` in one call (caps, quiet hours
   and opt-out are messaging's); guide tasks to :func:`siyu.messaging.facade.create_guide_task`;
4. one multi-row insert of the treatment rows, one ``UPDATE`` of the members' ``treated_at``.

Holdout members never reach this module: callers pass treatment-group members only, and
:func:`treat` checks the assignment itself.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from siyu.campaigns import repository as repo
from siyu.campaigns.models import CampaignTreatment, Group, TreatmentAction, TreatmentStatus
from siyu.campaigns.repository import Cost
from siyu.campaigns.views import CampaignView, TreatmentView, treatment_view
from siyu.coupons import facade as coupons
from siyu.db import Database
from siyu.kit.bulk import execute_many
from siyu.kit.clock import utcnow
from siyu.kit.ids import IdKind, new_id
from siyu.kit.problems import Problem
from siyu.kit.sql import dialect_insert
from siyu.messaging import facade as messaging
from siyu.outbox import facade as outbox
from siyu.points import facade as points

log = logging.getLogger("siyu.campaigns")

OUTBOX_KIND = "campaign.treatment"
SENT = frozenset({messaging.SendStatus.QUEUED, messaging.SendStatus.DEFERRED, messaging.SendStatus.DUPLICATE})
"""Messaging's answers that mean the message is on its way (``deferred``: held until the quiet
hours end; ``duplicate``: sent before under the same key)."""


def treatment_key(campaign_id: str, member_id: str, step: str, index: int) -> str:
    return f"{campaign_id}:{member_id}:{step}:{index}"


def coupon_cost_fen(template: coupons.TemplateView) -> int:
    """What one coupon of ``template`` costs the budget in fen: the face value of a cash or
    threshold coupon (满减), the accounting value of an exchange coupon, the cap of a discount
    coupon. An uncapped discount coupon has no face value to count: it costs 0 fen (a campaign
    that must bound its money should use capped discounts; docs/campaigns.md)."""
    if template.kind == "discount":
        return int(template.cap_fen or 0)
    return int(template.value_fen or 0)


class CostBook:
    """Costs of treatments, with each coupon template read once per slice."""

    def __init__(self, session: Session, merchant_id: str) -> None:
        self.session = session
        self.merchant_id = merchant_id
        self._templates: dict[str, int] = {}

    def of(self, treatment: Mapping[str, Any]) -> Cost:
        action = treatment.get("action")
        if action == TreatmentAction.COUPON:
            template_id = str(treatment["template_id"])
            if template_id not in self._templates:
                template = coupons.get_template(self.session, self.merchant_id, template_id)
                self._templates[template_id] = coupon_cost_fen(template) if template else 0
            return Cost(coupons=1, fen=self._templates[template_id])
        if action == TreatmentAction.POINTS:
            return Cost(points=int(treatment["points"]))
        return Cost()


@dataclass(frozen=True, slots=True)
class Target:
    """One member to treat: its variant and the treatments to give."""

    member_id: str
    variant: str | None
    treatments: Sequence[Mapping[str, Any]]


@dataclass(slots=True)
class Outcome:
    treated: list[str] = field(default_factory=list)
    """Members who were given at least one treatment (or had one queued) now."""
    over_budget: list[str] = field(default_factory=list)
    """Members with a cost who did not fit the budget."""
    keys: list[str] = field(default_factory=list)
    """Every key of the slice, recorded now or before."""


def treat_targets(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    targets: Sequence[Target],
    *,
    step: str,
    now: datetime,
    mark_treated: bool = True,
    unassigned: Collection[str] = (),
) -> Outcome:
    """Give each target its treatments (see the module docstring); idempotent by key. With
    ``mark_treated=False`` the caller sets the members' ``treated_at`` itself (a broadcast
    writes it with the assignment rows it has not inserted yet). Members in ``unassigned`` were
    never in the campaign before, so they cannot have treatment rows: their keys are not looked
    up."""
    outcome = Outcome()
    planned: list[tuple[Target, list[tuple[int, Mapping[str, Any], str]]]] = []
    for target in targets:
        plan = [
            (i, t, treatment_key(campaign.id, target.member_id, step, i))
            for i, t in enumerate(target.treatments)
        ]
        outcome.keys.extend(key for _, _, key in plan)
        planned.append((target, plan))
    unseen = set(unassigned)
    done = repo.existing_keys(
        session, merchant_id, [k for (t, plan) in planned if t.member_id not in unseen for _, _, k in plan]
    )
    planned = [(t, [p for p in plan if p[2] not in done]) for t, plan in planned]
    planned = [(t, plan) for t, plan in planned if plan]
    if not planned:
        return outcome
    book = CostBook(session, merchant_id)
    costs = [sum((book.of(p[1]) for p in plan), Cost()) for _, plan in planned]
    fits = repo.reserve_each(session, merchant_id, campaign.id, costs)

    rows: list[dict[str, Any]] = []
    items: list[outbox.NewItem] = []
    sends: list[messaging.SendRequest] = []
    pending: dict[str, dict[str, Any]] = {}

    def row(
        target: Target, index: int, treatment: Mapping[str, Any], key: str, status: str
    ) -> dict[str, Any]:
        cost_fen = book.of(treatment).fen
        return {
            "merchant_id": merchant_id,
            "id": new_id(IdKind.CAMPAIGN_TREATMENT),
            "campaign_id": campaign.id,
            "member_id": target.member_id,
            "variant": target.variant,
            "action": str(treatment.get("action")),
            "key": key,
            "status": status,
            "ref": None,
            "reason": None,
            "cost_fen": cost_fen if status == TreatmentStatus.QUEUED else 0,
            "at": now,
        }

    treated: set[str] = set()
    for (target, plan), fit in zip(planned, fits, strict=True):
        if not fit:
            outcome.over_budget.append(target.member_id)
            for index, treatment, key in plan:
                rows.append(
                    row(target, index, treatment, key, TreatmentStatus.OVER_BUDGET) | {"reason": "budget"}
                )
            continue
        for index, treatment, key in plan:
            action = treatment.get("action")
            if action in (TreatmentAction.COUPON, TreatmentAction.POINTS):
                cost = book.of(treatment)
                payload = {
                    "campaign_id": campaign.id,
                    "member_id": target.member_id,
                    "key": key,
                    "action": action,
                    "template_id": treatment.get("template_id"),
                    "points": int(treatment.get("points") or 0),
                    "cost": {"coupons": cost.coupons, "points": cost.points, "fen": cost.fen},
                }
                items.append(outbox.NewItem(kind=OUTBOX_KIND, key=f"campaign:{key}", payload=payload))
                rows.append(row(target, index, treatment, key, TreatmentStatus.QUEUED))
                treated.add(target.member_id)
            elif action == TreatmentAction.MESSAGE:
                variables = {str(k): str(v) for k, v in (treatment.get("variables") or {}).items()}
                sends.append(
                    messaging.SendRequest(
                        member_id=target.member_id,
                        template_id=str(treatment["template_id"]),
                        key=key,
                        variables=variables,
                        campaign_id=campaign.id,
                    )
                )
                pending[key] = row(target, index, treatment, key, TreatmentStatus.DONE)
            elif action == TreatmentAction.GUIDE_TASK:
                task_id = messaging.create_guide_task(
                    session,
                    merchant_id,
                    target.member_id,
                    title=str(treatment.get("title", "")),
                    body=str(treatment.get("body", "")),
                    key=key,
                    now=now,
                    campaign_id=campaign.id,
                )
                done_row = row(target, index, treatment, key, TreatmentStatus.DONE)
                if task_id is None:
                    done_row |= {"status": TreatmentStatus.SKIPPED, "reason": "no_guide"}
                else:
                    done_row["ref"] = task_id
                    treated.add(target.member_id)
                rows.append(done_row)
            else:  # validated at creation; a row says so rather than failing the slice
                rows.append(
                    row(target, index, treatment, key, TreatmentStatus.SKIPPED) | {"reason": "unknown"}
                )
    if items:
        outbox.enqueue_many(session, merchant_id, items, now=now)
    if sends:
        for result in messaging.send_many(session, merchant_id, sends, now=now):
            message_row = pending.pop(result.key, None)
            if message_row is None:
                continue
            message_row["ref"] = result.message_id
            if result.status in SENT:
                treated.add(message_row["member_id"])
            else:
                message_row["status"] = TreatmentStatus.SKIPPED
                detail = f"{result.status}: {result.reason}" if result.reason else str(result.status)
                message_row["reason"] = detail[:200]
            rows.append(message_row)
        for message_row in pending.values():  # messaging answered nothing for these
            rows.append(message_row | {"status": TreatmentStatus.SKIPPED, "reason": "no_answer"})
    insert_treatments(session, rows)
    outcome.treated = sorted(treated)
    if mark_treated:
        repo.mark_treated(session, merchant_id, campaign.id, outcome.treated, now)
    return outcome


def insert_treatments(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One multi-row ``INSERT … ON CONFLICT DO NOTHING`` (driver speed: :mod:`siyu.kit.bulk`)."""
    table = CampaignTreatment.__table__
    execute_many(
        session,
        table,  # type: ignore[arg-type]
        "campaign_treatments",
        lambda dialect: dialect_insert(dialect, table).on_conflict_do_nothing(),
        list(rows),
    )


def treat(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    member_id: str,
    treatments: Sequence[Mapping[str, Any]],
    *,
    step: str,
    now: datetime,
) -> list[TreatmentView]:
    """One member (see :func:`siyu.campaigns.facade.treat`): nothing unless assigned to the
    treatment group."""
    assigned = repo.members_of(session, merchant_id, campaign.id, [member_id]).get(member_id)
    if assigned is None or assigned.group != Group.TREATMENT:
        return []
    outcome = treat_targets(
        session, merchant_id, campaign, [Target(member_id, assigned.variant, treatments)], step=step, now=now
    )
    return [treatment_view(r) for r in repo.treatments_by_keys(session, merchant_id, outcome.keys)]


# ---------------------------------------------------------------- the outbox handler


@outbox.handles(OUTBOX_KIND)
def give(db: Database, item: outbox.OutboxItemView) -> None:
    """Issue the coupon or award the points of one queued treatment (after the decision's
    commit). Idempotent by key: coupons by ``source_ref``, points by the ledger key, and the row
    moves out of ``queued`` only once. A refusal (out of stock, member erased…) marks the row
    ``refused`` and gives its cost back to the budget, in the same transaction."""
    payload = item.payload
    merchant_id, key = item.merchant_id, str(payload["key"])
    with db.unit_of_work() as session:
        now = utcnow()
        row = repo.treatment_by_key(session, merchant_id, key, lock=True)
        if row is None or row.status != TreatmentStatus.QUEUED:
            return
        if payload["action"] != TreatmentAction.COUPON:
            settled = _award_points(session, item, row, now)
        else:
            try:
                with session.begin_nested():
                    issued = coupons.issue_coupon(
                        session, merchant_id, str(payload["template_id"]), row.member_id,
                        source="campaign", source_ref=key, now=now,
                    )  # fmt: skip
                settled = _Settled(item, row, issued.id, None)
            except Problem as exc:
                settled = _Settled(item, row, None, _refusal_of(exc))
        _settle(session, merchant_id, [settled])


def _refusal_of(exc: Problem) -> str:
    """What a refused treatment records: a coupon refusal's reason (``out_of_stock``…), else the
    problem's detail (unknown member or template, an erased member…: it will never work)."""
    return exc.reason if isinstance(exc, coupons.CouponRefused) else exc.detail[:200]


def _award_points(
    session: Session, item: outbox.OutboxItemView, row: CampaignTreatment, now: datetime
) -> _Settled:
    """A points treatment, in a savepoint (idempotent by the treatment key)."""
    try:
        with session.begin_nested():
            entry = points.adjust(
                session, item.merchant_id, row.member_id, points=int(item.payload["points"]),
                reason=f"campaign {row.campaign_id}", key=row.key, source="campaign", now=now,
            )  # fmt: skip
        return _Settled(item, row, entry.id, None)
    except Problem as exc:
        return _Settled(item, row, None, _refusal_of(exc))


@outbox.handles_batch(OUTBOX_KIND)
def give_many(db: Database, items: Sequence[outbox.OutboxItemView]) -> dict[str, Exception | None]:
    """:func:`give` for a round's worth of queued treatments, one transaction per merchant: the
    rows locked and read at once, each coupon template's coupons issued together
    (:func:`siyu.coupons.facade.issue_coupons`: same checks, refusals and idempotency keys as one
    by one), points awarded one by one, and the rows settled and refused costs given back in a
    few statements. Raises (the outbox then runs :func:`give` per item) if a row changed under it."""
    by_merchant: dict[str, list[outbox.OutboxItemView]] = {}
    for item in items:
        by_merchant.setdefault(item.merchant_id, []).append(item)
    answers: dict[str, Exception | None] = {}
    for merchant_id, group in by_merchant.items():
        with db.unit_of_work() as session:
            now = utcnow()
            keys = [str(item.payload["key"]) for item in group]
            rows = {r.key: r for r in repo.treatments_by_keys(session, merchant_id, keys, lock=True)}
            settled: list[_Settled] = []
            by_template: dict[str, list[tuple[outbox.OutboxItemView, CampaignTreatment]]] = {}
            for item, key in zip(group, keys, strict=True):
                row = rows.get(key)
                if row is None or row.status != TreatmentStatus.QUEUED:
                    continue
                if item.payload["action"] == TreatmentAction.COUPON:
                    by_template.setdefault(str(item.payload["template_id"]), []).append((item, row))
                else:
                    settled.append(_award_points(session, item, row, now))
            for template_id, pairs in by_template.items():
                results = coupons.issue_coupons(
                    session, merchant_id, template_id, [(row.member_id, row.key) for _, row in pairs],
                    source="campaign", now=now,
                )  # fmt: skip
                for (item, row), result in zip(pairs, results, strict=True):
                    if isinstance(result, coupons.IssuedCoupon):
                        settled.append(_Settled(item, row, result.id, None))
                    else:
                        settled.append(_Settled(item, row, None, _refusal_of(result)))
            _settle(session, merchant_id, settled)
        answers.update((item.id, None) for item in group)
    return answers


@dataclass(frozen=True)
class _Settled:
    item: outbox.OutboxItemView
    row: CampaignTreatment
    ref: str | None
    refusal: str | None


_TREATMENTS = CampaignTreatment.__table__
_SETTLE = (
    update(_TREATMENTS)  # type: ignore[arg-type]
    .where(
        _TREATMENTS.c.merchant_id == bindparam("b_merchant"),
        _TREATMENTS.c.key == bindparam("b_key"),
        _TREATMENTS.c.status == TreatmentStatus.QUEUED.value,
    )
    .values(
        status=bindparam("b_status"),
        ref=bindparam("b_ref"),
        reason=bindparam("b_reason"),
        cost_fen=bindparam("b_cost"),
    )
)


def _settle(session: Session, merchant_id: str, settled: Sequence[_Settled]) -> None:
    """Move queued rows to done or refused in one executemany, and give refused costs back to
    their campaigns' budgets (one ``UPDATE`` per campaign)."""
    if not settled:
        return
    result = session.connection().execute(
        _SETTLE,
        [
            {
                "b_merchant": merchant_id,
                "b_key": s.row.key,
                "b_status": (TreatmentStatus.REFUSED if s.refusal else TreatmentStatus.DONE).value,
                "b_ref": s.ref,
                "b_reason": s.refusal,
                "b_cost": 0 if s.refusal else s.row.cost_fen,
            }
            for s in settled
        ],
    )
    changed = int(getattr(result, "rowcount", -1))
    if changed != -1 and changed != len(settled):
        raise RuntimeError(f"{len(settled) - changed} treatments changed while being settled")
    given_back: dict[str, Cost] = {}
    for s in settled:
        if s.refusal:
            cost = s.item.payload.get("cost") or {}
            given_back[s.row.campaign_id] = given_back.get(s.row.campaign_id, Cost()) + Cost(
                int(cost.get("coupons", 0)), int(cost.get("points", 0)), int(cost.get("fen", 0))
            )
            log.info("campaign %s treatment %s refused: %s", s.row.campaign_id, s.row.key, s.refusal)
    for campaign_id, cost in given_back.items():
        repo.release(session, merchant_id, campaign_id, cost)
