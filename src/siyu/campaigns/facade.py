"""What other modules (results, journeys, the payment-success decision, CLI, console) may use of
campaigns.

* :func:`group_of` / :func:`variant_of` — pure and stable: the holdout and variant of a member.
* :func:`assign` — put a member in a campaign's experiment (idempotent: the group never changes).
* :func:`reserve_budget` — one conditional ``UPDATE``; ``False`` means over budget.
* :func:`treat` — give one member a variant's treatments (never a holdout member).

Every function takes the caller's session; the caller owns the unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.campaigns import repository as repo
from siyu.campaigns import service, triggers, validation  # noqa: F401 - triggers registers the ingest listener
from siyu.campaigns.assignment import group_of, variant_of
from siyu.campaigns.models import (
    AssignmentSource,
    CampaignKind,
    CampaignStatus,
    GoalDimension,
    Group,
    TreatmentAction,
    TreatmentStatus,
)
from siyu.campaigns.schemas import CampaignIn
from siyu.campaigns.views import Assignment, CampaignView, TreatmentView, campaign_view
from siyu.kit import config_cache
from siyu.kit.pagination import PageRequest

__all__ = [
    "Assignment",
    "AssignmentSource",
    "CampaignKind",
    "CampaignStatus",
    "CampaignView",
    "GoalDimension",
    "Group",
    "TreatmentAction",
    "TreatmentStatus",
    "TreatmentView",
    "assign",
    "assign_many",
    "check_treatment",
    "get_campaign",
    "group_of",
    "release_budget",
    "reserve_budget",
    "running_on_placement",
    "treat",
    "variant_of",
]


def get_campaign(session: Session, merchant_id: str, campaign_id: str) -> CampaignView | None:
    row = repo.get(session, merchant_id, campaign_id)
    return campaign_view(row) if row else None


def running_on_placement(
    session: Session, merchant_id: str, placement: str, *, now: datetime
) -> list[CampaignView]:
    """Running campaigns of ``placement`` whose schedule (if any) holds ``now``, highest
    ``priority`` first (then oldest).

    The definitions are read through :mod:`siyu.kit.config_cache` (read on every payment-success
    decision): a campaign paused, ended or changed is seen at once by this process and within
    ``config_cache.TTL_SECONDS`` by other processes. The ``spent_*`` counters of a campaign with
    a budget are read fresh each time (one ``SELECT``), since they move with every offer."""

    def load() -> tuple[CampaignView, ...]:
        return tuple(campaign_view(row) for row in repo.on_placement(session, merchant_id, placement))

    running = config_cache.cached(session, ("on_placement", merchant_id, placement), load)
    found = [c for c in running if service.within_schedule(c.schedule, now)]
    budgeted = [
        c.id
        for c in found
        if c.budget_coupons is not None or c.budget_points is not None or c.budget_fen is not None
    ]
    if not budgeted:
        return found
    spent = repo.spent_of(session, merchant_id, budgeted)
    return [
        replace(c, spent_coupons=spent[c.id][0], spent_points=spent[c.id][1], spent_fen=spent[c.id][2])
        if c.id in spent
        else c
        for c in found
    ]


def assign(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    member_id: str,
    *,
    now: datetime,
    source: str,
    unassigned: bool = False,
) -> Assignment:
    """The member's assignment in the campaign, created if it has none (``new=True``).
    ``unassigned``: the member was created in this transaction (skips one read)."""
    return service.assign_many(
        session, merchant_id, campaign, [member_id], now=now, source=source, unassigned=unassigned
    )[0]


def assign_many(
    session: Session,
    merchant_id: str,
    campaign: CampaignView,
    member_ids: Sequence[str],
    *,
    now: datetime,
    source: str,
) -> list[Assignment]:
    """:func:`assign` for many members in one multi-row insert and one read (in the given order)."""
    return service.assign_many(session, merchant_id, campaign, member_ids, now=now, source=source)


def reserve_budget(
    session: Session, merchant_id: str, campaign_id: str, *, coupons: int = 0, points: int = 0, fen: int = 0
) -> bool:
    """Take ``coupons``/``points``/``fen`` from the campaign's budgets in one conditional
    ``UPDATE``; ``False`` = over budget (nothing changed)."""
    return repo.reserve(session, merchant_id, campaign_id, repo.Cost(coupons, points, fen))


def release_budget(
    session: Session, merchant_id: str, campaign_id: str, *, coupons: int = 0, points: int = 0, fen: int = 0
) -> None:
    """Give back what :func:`reserve_budget` took for a treatment that did not happen."""
    repo.release(session, merchant_id, campaign_id, repo.Cost(coupons, points, fen))


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
    """Give one member ``treatments`` (keys ``{campaign_id}:{member_id}:{step}:{i}``; a replay
    returns the first attempts). Nothing for a member in the holdout or not assigned: assign
    first. Coupons and points go through an outbox item written in this transaction."""
    return service.treat(session, merchant_id, campaign, member_id, treatments, step=step, now=now)


def check_treatment(session: Session, merchant_id: str, treatment: object, pointer: str) -> None:
    """Raise a 422 naming ``pointer`` + the bad field when ``treatment`` (a treatment JSON) is
    not valid: unknown action, missing coupon or message template, bad points… (journeys check
    their action nodes with it)."""
    validation.check_treatment(session, merchant_id, treatment, pointer)


@dataclass(frozen=True, slots=True)
class MemberCampaignView:
    """A campaign a member entered: its group (treatment or holdout) and when it was treated."""

    campaign_id: str
    name: str
    status: str
    group: str
    variant: str | None
    assigned_at: datetime
    treated_at: datetime | None


def campaigns_of_member(
    session: Session, merchant_id: str, member_id: str, *, limit: int = 20
) -> list[MemberCampaignView]:
    """The campaigns the member was assigned to (treated or held out), newest first."""
    return [
        MemberCampaignView(*row) for row in repo.campaigns_of_member(session, merchant_id, member_id, limit)
    ]


def create_campaign(
    session: Session, merchant_id: str, spec: Mapping[str, Any], *, now: datetime
) -> CampaignView:
    """A new draft from a specification shaped like the API's ``CampaignIn`` (validated the same
    way: a 422 naming the bad field)."""
    body = CampaignIn.model_validate(dict(spec))
    return campaign_view(service.create(session, merchant_id, body.model_dump(mode="json"), now=now))


def list_campaigns(session: Session, merchant_id: str, *, limit: int = 200) -> list[CampaignView]:
    """The merchant's campaigns, oldest first (the first ``limit``)."""
    rows, _ = service.list_campaigns(session, merchant_id, PageRequest(limit=limit))
    return [campaign_view(r) for r in rows]


def move(session: Session, merchant_id: str, campaign_id: str, action: str, *, now: datetime) -> CampaignView:
    """Apply a state-machine action (``schedule``, ``start``, ``pause``, ``resume``, ``cancel``,
    ``complete``); a 409 when the campaign's status does not allow it."""
    return campaign_view(service.transition(session, merchant_id, campaign_id, action, now=now))


def allowed_actions(status: str) -> list[str]:
    """The actions the state machine allows from ``status``, in a stable order."""
    return [action for action, (sources, _) in service.TRANSITIONS.items() if status in sources]


def assigned_groups(
    session: Session, merchant_id: str, campaign_id: str, member_ids: Sequence[str]
) -> dict[str, str]:
    """The recorded group (``treatment`` / ``holdout``) of those of ``member_ids`` assigned to
    the campaign (the simulator reads who it must answer for)."""
    return {m: row.group for m, row in repo.members_of(session, merchant_id, campaign_id, member_ids).items()}
