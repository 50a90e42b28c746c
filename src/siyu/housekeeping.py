"""Periodic upkeep that ``siyu serve`` runs in the background (the embedded default has no cron).

Today: delete ``Idempotency-Key`` records and the rejected rows of import uploads past their
retention; run each merchant's lifecycle sweep (the daily job: time-based stage changes, in the
merchant's time zone — a round each hour means they land within the hour after local midnight),
and each merchant's tier jobs (re-assessments after a period end, monthly privilege coupons,
birthday gifts: :func:`siyu.tiers.facade.run_due`), and expire payment-page offers left open
(:func:`siyu.decisions.facade.expire_offers`: their campaign budget comes back).
Later issues add their jobs to :func:`run_once` (the outbox worker and the analytics sync get loops
of their own). A faster loop expires coupons and points lots past their end
(:func:`run_expiry`, every :data:`EXPIRY_INTERVAL_SECONDS`; spending also expires a member's
due points first, so the loop only keeps statuses and reports current), and another keeps
PostgreSQL's planner statistics fresh (:func:`siyu.db.refresh_statistics`), for servers where
autovacuum is off or behind. A short loop moves journey members along
(:func:`siyu.campaigns.journeys.advance_due`, every :data:`JOURNEY_INTERVAL_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.concurrency import run_in_threadpool

from siyu.campaigns import journeys
from siyu.campaigns import tasks as campaign_tasks
from siyu.coupons import facade as coupons
from siyu.db import Database, autovacuum_enabled, is_postgres, refresh_statistics
from siyu.decisions import facade as decisions
from siyu.imports import facade as imports
from siyu.kit import idempotency
from siyu.kit.clock import utcnow
from siyu.lifecycle import facade as lifecycle
from siyu.points import facade as points
from siyu.tenancy import facade as tenancy
from siyu.tiers import facade as tiers

log = logging.getLogger("siyu.housekeeping")

INTERVAL_SECONDS = 3600.0
EXPIRY_INTERVAL_SECONDS = 300.0
EXPIRY_SLICE = 5000
TIER_SLICE = 2000
JOURNEY_INTERVAL_SECONDS = 10.0
"""How often due journey members are moved along (a wait ends at most this late)."""
STATISTICS_INTERVAL_SECONDS = 15.0
"""How often the statistics loop looks for grown tables (one catalog query when nothing changed)."""


def run_once(db: Database) -> dict[str, int]:
    """One round of upkeep; returns what it did, for logs and tests."""
    with db.unit_of_work() as session:
        now = utcnow()
        purged = idempotency.purge_expired(session, now)
        rejections = imports.purge_expired_rejections(session, now)
    transitions = tier_changes = offers_expired = 0
    for merchant_id in _merchant_ids(db):
        transitions += _sweep(db, merchant_id)
        tier_changes += _tiers(db, merchant_id)
        offers_expired += _expire_offers(db, merchant_id)
    if purged:
        log.info("purged %d expired idempotency records", purged)
    if rejections:
        log.info("purged %d expired rejected import rows", rejections)
    return {
        "idempotency_records_purged": purged,
        "import_rejections_purged": rejections,
        "stage_transitions": transitions,
        "tier_changes": tier_changes,
        "offers_expired": offers_expired,
    }


def run_expiry(db: Database) -> dict[str, int]:
    """Expire coupons and points lots past their end, a slice per transaction; what expired."""
    done = {"coupons_expired": 0, "points_lots_expired": 0}
    for name, job in (("coupons_expired", coupons.expire_due), ("points_lots_expired", points.expire_due)):
        while True:
            with db.unit_of_work() as session:
                count = job(session, now=utcnow(), limit=EXPIRY_SLICE)
            done[name] += count
            if count < EXPIRY_SLICE:
                break
    if any(done.values()):
        log.info("expired %(coupons_expired)d coupons and %(points_lots_expired)d points lots", done)
    return done


def _sweep(db: Database, merchant_id: str) -> int:
    """One merchant's daily lifecycle job, a slice of members per transaction; its changes."""
    members = changes = 0
    while True:
        with db.unit_of_work() as session:
            swept = lifecycle.sweep(session, merchant_id, now=utcnow(), max_members=lifecycle.SWEEP_SLICE)
        members += swept.members
        changes += swept.transitions
        if swept.members < lifecycle.SWEEP_SLICE:
            break
    if members:
        log.info(
            "lifecycle sweep of %s for %s: %d members, %d changes", merchant_id, swept.day, members, changes
        )
    return changes


def _tiers(db: Database, merchant_id: str) -> int:
    """One merchant's tier jobs (re-assessments, monthly privileges, birthdays), a slice of
    members per transaction; the tier changes."""
    changed = 0
    while True:
        with db.unit_of_work() as session:
            report = tiers.run_due(session, merchant_id, now=utcnow(), max_members=TIER_SLICE)
        changed += report.changed
        if report.refused:
            log.warning("tier benefits of %s refused: %s", merchant_id, report.refused)
        if report.done:
            return changed


def _expire_offers(db: Database, merchant_id: str) -> int:
    """Payment-page offers left open past their lifetime: expired, their budget given back."""
    expired = 0
    while True:
        with db.unit_of_work() as session:
            count = decisions.expire_offers(session, merchant_id, now=utcnow(), limit=EXPIRY_SLICE)
        expired += count
        if count < EXPIRY_SLICE:
            return expired


def _merchant_ids(db: Database) -> list[str]:
    with db.unit_of_work() as session:
        return tenancy.merchant_ids(session)


async def _loop(db: Database, interval: float) -> None:
    while True:
        try:
            await run_in_threadpool(run_once, db)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("housekeeping round failed")
        await asyncio.sleep(interval)


async def _expiry_loop(db: Database, interval: float) -> None:
    while True:
        try:
            await run_in_threadpool(run_expiry, db)
        except Exception:
            log.exception("expiring coupons and points failed")
        await asyncio.sleep(interval)


def run_journeys(db: Database) -> journeys.AdvanceReport:
    """Every due journey step of every merchant (see :func:`siyu.campaigns.journeys.advance_due`)."""
    report = journeys.advance_due(db, now=utcnow())
    if report.steps or report.postponed:
        log.info("journeys: %d steps, %d postponed", report.steps, report.postponed)
    return report


async def _journey_loop(db: Database, interval: float) -> None:
    while True:
        try:
            await run_in_threadpool(run_journeys, db)
        except Exception:
            log.exception("advancing journeys failed")
        await asyncio.sleep(interval)


async def _campaign_loop(db: Database, interval: float) -> None:
    """Campaigns: starts and ends on schedule, broadcast runs, trigger entries that fell due."""
    while True:
        try:
            report = await run_in_threadpool(campaign_tasks.run_all, db)
            if any(report.as_dict().values()):
                log.info("campaigns: %s", report.as_dict())
        except Exception:
            log.exception("campaign round failed")
        await asyncio.sleep(interval)


async def _statistics_loop(db: Database, interval: float) -> None:
    if await run_in_threadpool(autovacuum_enabled, db.engine) is False:
        log.warning(
            "PostgreSQL autovacuum is off: Siyu refreshes planner statistics itself, but dead rows "
            "are not vacuumed; turn autovacuum on (docs/operations.md)"
        )
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(refresh_statistics, db.engine)
        except Exception:
            log.exception("refreshing planner statistics failed")


@asynccontextmanager
async def background_upkeep(
    db: Database,
    interval: float = INTERVAL_SECONDS,
    statistics_interval: float = STATISTICS_INTERVAL_SECONDS,
    expiry_interval: float = EXPIRY_INTERVAL_SECONDS,
    campaign_interval: float = campaign_tasks.INTERVAL_SECONDS,
    journey_interval: float = JOURNEY_INTERVAL_SECONDS,
) -> AsyncIterator[None]:
    """Run :func:`run_once` now and every ``interval`` seconds while the app lives,
    :func:`run_expiry` every ``expiry_interval`` seconds, the campaign round
    (:func:`siyu.campaigns.tasks.run_all`) every ``campaign_interval`` seconds, journey steps
    (:func:`run_journeys`) every ``journey_interval`` seconds, and
    :func:`siyu.db.refresh_statistics` every ``statistics_interval`` seconds (PostgreSQL)."""
    tasks = [
        asyncio.create_task(_loop(db, interval)),
        asyncio.create_task(_expiry_loop(db, expiry_interval)),
        asyncio.create_task(_campaign_loop(db, campaign_interval)),
        asyncio.create_task(_journey_loop(db, journey_interval)),
    ]
    if is_postgres(db.engine):
        tasks.append(asyncio.create_task(_statistics_loop(db, statistics_interval)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
