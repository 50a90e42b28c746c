"""The tier jobs of one merchant: re-assessments that fall due, monthly privilege coupons
(月度特权) and birthday gifts. ``siyu serve`` runs them for every merchant each hour (so they
land within the hour after local midnight); ``siyu tiers run`` and ``POST /tiers/run`` run them
on demand. Every step is idempotent: running twice in a day gives nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from siyu.coupons import facade as coupons
from siyu.coupons.models import CouponSource
from siyu.members import facade as members
from siyu.points import facade as points
from siyu.tiers import service
from siyu.tiers.ladder import month_days_for
from siyu.tiers.models import MemberTier, Tier

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]
"""Called with a step name and how many members it just handled (CLI progress bars)."""

UNLIMITED = 1 << 62


@dataclass(slots=True)
class JobReport:
    assessed: int = 0
    changed: int = 0
    privilege_coupons: int = 0
    birthday_gifts: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    """Coupons the benefits could not issue, by reason (``out_of_stock``, ``member_limit`` …)."""
    handled: int = 0
    """Members handled by any step (what ``max_members`` bounds)."""
    done: bool = True
    """``False`` when ``max_members`` ran out first: call again (in a new transaction) for the rest."""

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


@dataclass(slots=True)
class _Run:
    session: Session
    ctx: service.Context
    report: JobReport
    progress: Progress | None
    budget: int

    @property
    def left(self) -> int:
        return max(self.budget - self.report.handled, 0)

    def handled(self, step: str, n: int) -> None:
        self.report.handled += n
        if self.progress and n:
            self.progress(step, n)


def run_due(
    session: Session,
    merchant_id: str,
    *,
    now: datetime,
    progress: Progress | None = None,
    max_members: int | None = None,
) -> JobReport:
    """Run what is due; with ``max_members``, stop after about that many members (a slice per
    transaction for big merchants: ``report.done`` says whether anything is left)."""
    ctx = service.context(session, merchant_id, now)
    run = _Run(session, ctx, JobReport(), progress, UNLIMITED if max_members is None else max_members)
    if not ctx.ladder:
        return run.report
    while run.left and (due := service.due_members(session, ctx, limit=min(service.CHUNK, run.left))):
        run.report.assessed += len(due)
        run.report.changed += len(service.assess(session, ctx, due))
        run.handled("assess", len(due))
    tiers = service.tiers_of(session, merchant_id)
    entry = ctx.ladder.entry
    if entry and any(t.rank == entry.rank and _has_benefits(t) for t in tiers):
        _enrol_everyone(run)  # the entry tier has benefits: every member is due them
    local = now.astimezone(ctx.zone)
    _privileges(run, [t for t in tiers if t.monthly_coupon_template_id], local.strftime("%Y-%m"))
    _birthdays(run, [t for t in tiers if _has_birthday(t)], local.date())
    run.report.done = run.left > 0
    return run.report


def _has_birthday(tier: Tier) -> bool:
    return bool(tier.birthday_coupon_template_id or tier.birthday_points)


def _has_benefits(tier: Tier) -> bool:
    return bool(tier.monthly_coupon_template_id) or _has_birthday(tier)


def _with_rows(merchant_id: str) -> Select[str]:
    return select(MemberTier.member_id).where(MemberTier.merchant_id == merchant_id)


def _enrol_everyone(run: _Run) -> None:
    """A ``member_tiers`` row at the entry tier for every active member without one."""
    ctx = run.ctx
    while run.left:
        statement = members.active_ids(ctx.merchant_id, excluding=_with_rows(ctx.merchant_id))
        missing = list(run.session.execute(statement.limit(min(service.CHUNK, run.left))).scalars())
        if not missing:
            return
        service.create_rows(run.session, ctx, missing)
        run.handled("enrol", len(missing))


def _privileges(run: _Run, tiers: list[Tier], month: str) -> None:
    """Each member of a tier with a privilege coupon gets ``monthly_coupon_count`` of it once per
    local month (idempotent by ``tier:{month}:{n}``). A member upgraded later in a month gets the
    new tier's privileges from the next month."""
    by_id = {t.id: t for t in tiers}
    ctx = run.ctx
    while by_id and run.left:
        statement = (
            select(MemberTier)
            .where(
                MemberTier.merchant_id == ctx.merchant_id,
                MemberTier.tier_id.in_(by_id),
                (MemberTier.privilege_month != month) | MemberTier.privilege_month.is_(None),
            )
            .order_by(MemberTier.member_id)
            .limit(min(service.CHUNK, run.left))
        )
        rows = list(run.session.execute(statement).scalars())
        if not rows:
            return
        for row in rows:
            tier = by_id[row.tier_id or ""]
            for n in range(tier.monthly_coupon_count):
                ref = f"tier:{month}:{n + 1}"
                if _issue(
                    run, tier.monthly_coupon_template_id, row.member_id, CouponSource.TIER_PRIVILEGE, ref
                ):
                    run.report.privilege_coupons += 1
            row.privilege_month = month
        run.session.flush()
        run.handled("privileges", len(rows))


def _birthdays(run: _Run, tiers: list[Tier], today: date) -> None:
    """Members born on this local day (29 February on 28 February in other years) get their
    tier's birthday coupon and points, once per local year."""
    by_id = {t.id: t for t in tiers}
    ctx = run.ctx
    if not by_id or not run.left:
        return
    born = members.ids_born_on(ctx.merchant_id, month_days_for(today))
    statement = (
        select(MemberTier)
        .where(
            MemberTier.merchant_id == ctx.merchant_id,
            MemberTier.tier_id.in_(by_id),
            MemberTier.member_id.in_(born),
            (MemberTier.birthday_year != today.year) | MemberTier.birthday_year.is_(None),
        )
        .order_by(MemberTier.member_id)
        .limit(run.left)
    )
    rows = list(run.session.execute(statement).scalars())
    for row in rows:
        tier = by_id[row.tier_id or ""]
        gave = False
        if tier.birthday_coupon_template_id:
            ref = f"birthday:{today.year}"
            gave |= _issue(run, tier.birthday_coupon_template_id, row.member_id, CouponSource.BIRTHDAY, ref)
        if tier.birthday_points:
            points.adjust(
                run.session,
                ctx.merchant_id,
                row.member_id,
                points=tier.birthday_points,
                reason=f"生日礼 birthday gift {today.year} ({tier.name})",
                key=f"tier-birthday:{row.member_id}:{today.year}",
                source="tier_birthday",
                now=ctx.now,
            )
            gave = True
        run.report.birthday_gifts += int(gave)
        row.birthday_year = today.year
    run.session.flush()
    run.handled("birthdays", len(rows))


def _issue(run: _Run, template_id: str | None, member_id: str, source: CouponSource, ref: str) -> bool:
    """Issue one benefit coupon; a refusal (stock out, a limit) is counted and logged, not raised."""
    if template_id is None:
        return False
    try:
        issued = coupons.issue_coupon(
            run.session,
            run.ctx.merchant_id,
            template_id,
            member_id,
            source=source,
            source_ref=ref,
            now=run.ctx.now,
        )
    except coupons.CouponRefused as refused:
        run.report.refuse(refused.reason)
        log.warning("tier benefit %s for %s refused: %s", template_id, member_id, refused.reason)
        return False
    return not issued.replayed
