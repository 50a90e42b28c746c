"""Every query of the campaigns module. Each function takes the merchant id first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from siyu.campaigns.models import (
    Campaign,
    CampaignMember,
    CampaignRun,
    CampaignStatus,
    CampaignTreatment,
    CampaignTriggerEntry,
    EntryStatus,
    RunStatus,
)
from siyu.kit.bulk import execute_many
from siyu.kit.pagination import PageRequest, paginate
from siyu.kit.sql import chunked, dialect_insert, insert_ignore

IN_CHUNK = 2_000
"""Ids per ``IN (…)`` list (SQLite's bound-parameter limit is 32,766; PostgreSQL's 65,535)."""


def get(session: Session, merchant_id: str, campaign_id: str, *, lock: bool = False) -> Campaign | None:
    statement = select(Campaign).where(Campaign.merchant_id == merchant_id, Campaign.id == campaign_id)
    if lock:
        statement = statement.with_for_update()
    return session.execute(statement.execution_options(populate_existing=True)).scalar_one_or_none()


def list_page(
    session: Session,
    merchant_id: str,
    page: PageRequest,
    *,
    status: str | None = None,
    kind: str | None = None,
) -> list[Campaign]:
    statement = select(Campaign).where(Campaign.merchant_id == merchant_id)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    if kind is not None:
        statement = statement.where(Campaign.kind == kind)
    return list(session.execute(paginate(statement, Campaign.id, page)).scalars())


def in_status(
    session: Session, merchant_id: str, statuses: Sequence[str], *, kind: str | None = None
) -> list[Campaign]:
    statement = select(Campaign).where(Campaign.merchant_id == merchant_id, Campaign.status.in_(statuses))
    if kind is not None:
        statement = statement.where(Campaign.kind == kind)
    return list(session.execute(statement.order_by(Campaign.id)).scalars())


def merchants_with_campaigns(session: Session, statuses: Sequence[str]) -> list[str]:
    """Merchants having a campaign in one of ``statuses`` (the background round visits only
    these: one small query instead of a round per merchant). Across merchants by design."""
    statement = select(Campaign.merchant_id).where(Campaign.status.in_(statuses)).distinct()
    return sorted(session.execute(statement).scalars())


def on_placement(session: Session, merchant_id: str, placement: str) -> list[Campaign]:
    statement = select(Campaign).where(
        Campaign.merchant_id == merchant_id,
        Campaign.placement == placement,
        Campaign.status == CampaignStatus.RUNNING,
    )
    return list(session.execute(statement.order_by(Campaign.priority.desc(), Campaign.id)).scalars())


def spent_of(
    session: Session, merchant_id: str, campaign_ids: Sequence[str]
) -> dict[str, tuple[int, int, int]]:
    """The campaigns' ``(spent_coupons, spent_points, spent_fen)`` as stored now (one ``SELECT``)."""
    c = Campaign
    statement = select(c.id, c.spent_coupons, c.spent_points, c.spent_fen).where(
        c.merchant_id == merchant_id, c.id.in_(campaign_ids)
    )
    return {row[0]: (row[1], row[2], row[3]) for row in session.execute(statement)}


# ---------------------------------------------------------------- members (the experiment)


def insert_members(session: Session, rows: Sequence[dict[str, Any]]) -> bool:
    """Insert-ignore assignment rows at driver speed (one ``INSERT … ON CONFLICT DO NOTHING``
    of all rows; :mod:`siyu.kit.bulk`); True when every row was new (nothing to read back)."""
    if not rows:
        return True
    table = CampaignMember.__table__
    inserted = execute_many(
        session,
        table,  # type: ignore[arg-type]
        "campaign_members",
        lambda dialect: dialect_insert(dialect, table).on_conflict_do_nothing(),
        list(rows),
    )
    return inserted == len(rows)


def members_of(
    session: Session, merchant_id: str, campaign_id: str, member_ids: Sequence[str]
) -> dict[str, CampaignMember]:
    found: dict[str, CampaignMember] = {}
    for part in chunked(list(member_ids), IN_CHUNK):
        statement = select(CampaignMember).where(
            CampaignMember.merchant_id == merchant_id,
            CampaignMember.campaign_id == campaign_id,
            CampaignMember.member_id.in_(part),
        )
        for row in session.execute(statement.execution_options(populate_existing=True)).scalars():
            found[row.member_id] = row
    return found


def mark_treated(
    session: Session, merchant_id: str, campaign_id: str, member_ids: Sequence[str], now: datetime
) -> None:
    for part in chunked(sorted(set(member_ids)), IN_CHUNK):
        session.execute(
            update(CampaignMember)
            .where(
                CampaignMember.merchant_id == merchant_id,
                CampaignMember.campaign_id == campaign_id,
                CampaignMember.member_id.in_(part),
                CampaignMember.treated_at.is_(None),
            )
            .values(treated_at=now)
            .execution_options(synchronize_session=False)
        )


# ---------------------------------------------------------------- budget


@dataclass(frozen=True, slots=True)
class Cost:
    coupons: int = 0
    points: int = 0
    fen: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.coupons + other.coupons, self.points + other.points, self.fen + other.fen)

    @property
    def zero(self) -> bool:
        return self.coupons == 0 and self.points == 0 and self.fen == 0


_CAMPAIGNS = cast(Table, Campaign.__table__)


def _spent_update(*conditions: Any) -> Any:
    c = _CAMPAIGNS.c
    return (
        update(_CAMPAIGNS)
        .where(c.merchant_id == bindparam("b_merchant_id"), c.id == bindparam("b_campaign_id"), *conditions)
        .values(
            spent_coupons=c.spent_coupons + bindparam("coupons"),
            spent_points=c.spent_points + bindparam("points"),
            spent_fen=c.spent_fen + bindparam("fen"),
        )
        .execution_options(config_neutral=True)  # spent_* only: the configuration cache stands
    )


_RESERVE = _spent_update(
    or_(
        _CAMPAIGNS.c.budget_coupons.is_(None),
        _CAMPAIGNS.c.spent_coupons + bindparam("coupons") <= _CAMPAIGNS.c.budget_coupons,
    ),
    or_(
        _CAMPAIGNS.c.budget_points.is_(None),
        _CAMPAIGNS.c.spent_points + bindparam("points") <= _CAMPAIGNS.c.budget_points,
    ),
    or_(
        _CAMPAIGNS.c.budget_fen.is_(None),
        _CAMPAIGNS.c.spent_fen + bindparam("fen") <= _CAMPAIGNS.c.budget_fen,
    ),
)
_RELEASE = _spent_update()
"""Built once (the decision's hot path): constructing the ``UPDATE`` per call cost more Python
time than running it. Core statements on the table, so no ORM session synchronisation."""


def _cost_params(merchant_id: str, campaign_id: str, cost: Cost, sign: int) -> dict[str, Any]:
    return {
        "b_merchant_id": merchant_id,
        "b_campaign_id": campaign_id,
        "coupons": sign * cost.coupons,
        "points": sign * cost.points,
        "fen": sign * cost.fen,
    }


def reserve(session: Session, merchant_id: str, campaign_id: str, cost: Cost) -> bool:
    """Add ``cost`` to what the campaign spent, in one conditional ``UPDATE`` that only matches
    while every capped dimension stays within its budget; False (nothing changed) otherwise."""
    if cost.zero:
        return True
    result = session.execute(_RESERVE, _cost_params(merchant_id, campaign_id, cost, 1))
    return int(getattr(result, "rowcount", 0)) == 1


def release(session: Session, merchant_id: str, campaign_id: str, cost: Cost) -> None:
    """Give back a reservation whose treatment was refused (one ``UPDATE``)."""
    if cost.zero:
        return
    session.execute(_RELEASE, _cost_params(merchant_id, campaign_id, cost, -1))


def reserve_each(session: Session, merchant_id: str, campaign_id: str, costs: Sequence[Cost]) -> list[bool]:
    """Reserve many members' costs at once: which of them fit (greedily, in order), with one
    conditional ``UPDATE`` for their total — so a slice of 2,000 members costs one statement,
    and the budget is never exceeded whatever runs at the same time. The room left is read
    first; if a concurrent writer took some of it in between, the ``UPDATE`` matches nothing and
    the choice is made again from a fresh read."""
    if all(cost.zero for cost in costs):
        return [True] * len(costs)
    c = Campaign
    for _attempt in range(20):
        row = session.execute(
            select(
                c.spent_coupons, c.spent_points, c.spent_fen, c.budget_coupons, c.budget_points, c.budget_fen
            ).where(c.merchant_id == merchant_id, c.id == campaign_id)
        ).one()
        room = [
            None if cap is None else int(cap) - int(spent)
            for spent, cap in zip(row[:3], row[3:], strict=True)
        ]
        fits: list[bool] = []
        total = Cost()
        for cost in costs:
            after = total + cost
            ok = all(
                left is None or used <= left
                for left, used in zip(room, (after.coupons, after.points, after.fen), strict=True)
            )
            fits.append(ok)
            if ok:
                total = after
        if reserve(session, merchant_id, campaign_id, total):
            return fits
    return [cost.zero for cost in costs]  # lost every race: treat none that costs anything


# ---------------------------------------------------------------- treatments


def existing_keys(session: Session, merchant_id: str, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunked(list(keys), IN_CHUNK):
        statement: Select[Any] = select(CampaignTreatment.key).where(
            CampaignTreatment.merchant_id == merchant_id, CampaignTreatment.key.in_(part)
        )
        found.update(session.execute(statement).scalars())
    return found


def treatments_by_keys(
    session: Session, merchant_id: str, keys: Sequence[str], *, lock: bool = False
) -> list[CampaignTreatment]:
    rows: list[CampaignTreatment] = []
    for part in chunked(list(keys), IN_CHUNK):
        statement = select(CampaignTreatment).where(
            CampaignTreatment.merchant_id == merchant_id, CampaignTreatment.key.in_(part)
        )
        if lock:
            statement = statement.with_for_update()
        rows.extend(session.execute(statement.execution_options(populate_existing=True)).scalars())
    return rows


def treatments_of_member(
    session: Session, merchant_id: str, campaign_id: str, member_id: str
) -> list[CampaignTreatment]:
    statement = select(CampaignTreatment).where(
        CampaignTreatment.merchant_id == merchant_id,
        CampaignTreatment.campaign_id == campaign_id,
        CampaignTreatment.member_id == member_id,
    )
    return list(session.execute(statement.order_by(CampaignTreatment.key)).scalars())


def treatment_by_key(
    session: Session, merchant_id: str, key: str, *, lock: bool = False
) -> CampaignTreatment | None:
    statement = select(CampaignTreatment).where(
        CampaignTreatment.merchant_id == merchant_id, CampaignTreatment.key == key
    )
    if lock:
        statement = statement.with_for_update()
    return session.execute(statement.execution_options(populate_existing=True)).scalar_one_or_none()


# ---------------------------------------------------------------- runs and trigger entries


def add_run(session: Session, row: dict[str, Any]) -> bool:
    """Insert-ignore a run; True when it is new."""
    inserted = insert_ignore(
        session,
        CampaignRun.__table__,  # type: ignore[arg-type]
        [row],
        returning=[CampaignRun.__table__.c.occurrence],
    )
    return bool(inserted)


def lock_run(session: Session, merchant_id: str, campaign_id: str, occurrence: str) -> CampaignRun | None:
    """The run, locked; ``None`` when absent or (PostgreSQL) being worked on by another worker."""
    statement = (
        select(CampaignRun)
        .where(
            CampaignRun.merchant_id == merchant_id,
            CampaignRun.campaign_id == campaign_id,
            CampaignRun.occurrence == occurrence,
        )
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.execute(statement).scalar_one_or_none()


def open_runs(session: Session, merchant_id: str, campaign_id: str | None = None) -> list[CampaignRun]:
    statement = select(CampaignRun).where(
        CampaignRun.merchant_id == merchant_id,
        CampaignRun.status.in_((RunStatus.PENDING, RunStatus.ACTIVE)),
    )
    if campaign_id is not None:
        statement = statement.where(CampaignRun.campaign_id == campaign_id)
    return list(session.execute(statement.order_by(CampaignRun.due_at)).scalars())


def runs_of(session: Session, merchant_id: str, campaign_id: str) -> list[CampaignRun]:
    statement = select(CampaignRun).where(
        CampaignRun.merchant_id == merchant_id, CampaignRun.campaign_id == campaign_id
    )
    return list(session.execute(statement.order_by(CampaignRun.due_at.desc())).scalars())


def add_entries(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    inserted = insert_ignore(
        session,
        CampaignTriggerEntry.__table__,  # type: ignore[arg-type]
        rows,
        returning=[CampaignTriggerEntry.__table__.c.member_id],
    )
    return len(inserted)


def last_entries(
    session: Session, merchant_id: str, campaign_id: str, member_ids: Sequence[str]
) -> dict[str, datetime]:
    """When each member last entered the campaign (for ``repeat_after_days``)."""
    e = CampaignTriggerEntry
    found: dict[str, datetime] = {}
    for part in chunked(sorted(set(member_ids)), IN_CHUNK):
        statement = (
            select(e.member_id, func.max(e.created_at))
            .where(e.merchant_id == merchant_id, e.campaign_id == campaign_id, e.member_id.in_(part))
            .group_by(e.member_id)
        )
        for member_id, at in session.execute(statement).all():
            found[member_id] = at
    return found


def due_entries(session: Session, merchant_id: str, now: datetime, limit: int) -> list[CampaignTriggerEntry]:
    """Pending entries due by ``now``, oldest first, locked (PostgreSQL: skipping those another
    worker holds)."""
    e = CampaignTriggerEntry
    statement = (
        select(e)
        .where(e.merchant_id == merchant_id, e.status == EntryStatus.PENDING, e.due_at <= now)
        .order_by(e.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(session.execute(statement).scalars())


def campaigns_of_member(session: Session, merchant_id: str, member_id: str, limit: int) -> list[Any]:
    """The member's places in campaigns with the campaign's name, newest assignment first."""
    statement = (
        select(
            CampaignMember.campaign_id,
            Campaign.name,
            Campaign.status,
            CampaignMember.group,
            CampaignMember.variant,
            CampaignMember.assigned_at,
            CampaignMember.treated_at,
        )
        .join(
            Campaign,
            and_(
                Campaign.merchant_id == CampaignMember.merchant_id, Campaign.id == CampaignMember.campaign_id
            ),
        )
        .where(CampaignMember.merchant_id == merchant_id, CampaignMember.member_id == member_id)
        .order_by(CampaignMember.assigned_at.desc())
        .limit(limit)
    )
    return list(session.execute(statement))
