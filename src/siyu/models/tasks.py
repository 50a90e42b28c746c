"""The refit job: fit a merchant's member models and write every member's scores back.

``request_refit`` records a queued fit and enqueues an outbox item (``models.refit``) in the
caller's transaction; the outbox worker (inside ``siyu serve``, or ``siyu worker``) runs
:func:`run_refit`, which ``siyu models refit`` also calls directly. A run:

1. marks the fit running (a fit already finished is left alone: redelivery is harmless);
2. reads the features in a read-only session — purchase history as of the local day the fit was
   requested on, engagement on that day, and engagement at the training cutoff with its labels
   (three statements);
3. fits the models outside any transaction (:mod:`siyu.models.scoring`);
4. in one transaction, writes the scores (:func:`siyu.segments.facade.record_scores`), clears the
   same models' older scores of members no longer scored, and records the outcome.

A part that cannot be fitted (too few repeat buyers, no conversions to learn from) is recorded
with its :class:`~siyu.models.ModelError` message and leaves that model's previous scores alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.models import repository as repo
from siyu.models.features import engagement, purchase_history
from siyu.models.models import FitStatus, ModelFit
from siyu.models.scoring import PROSPECT_HORIZON_DAYS, Outcome, score_buyers, score_prospects
from siyu.outbox import facade as outbox
from siyu.segments import facade as segments
from siyu.tenancy import facade as tenancy

log = logging.getLogger("siyu.models")

REFIT_KIND = "models.refit"
Progress = Callable[[str], None]


def request_refit(session: Session, merchant_id: str, *, now: datetime) -> ModelFit:
    """A queued fit, and its job in the outbox (same transaction)."""
    fit = repo.create_fit(session, merchant_id, now=now)
    outbox.enqueue(
        session, merchant_id, REFIT_KIND, {"fit_id": fit.id}, key=f"models-refit:{fit.id}", now=now
    )
    return fit


def _zone(session: Session, merchant_id: str) -> ZoneInfo:
    merchant = tenancy.get_merchant(session, merchant_id)
    if merchant is None:
        raise LookupError(f"no merchant {merchant_id}")
    return ZoneInfo(merchant.timezone)


def _status(outcome: Outcome) -> FitStatus:
    if not outcome.errors:
        return FitStatus.SUCCEEDED
    return FitStatus.PARTIAL if outcome.scores else FitStatus.FAILED


def run_refit(
    db: Database,
    merchant_id: str,
    fit_id: str,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> FitStatus | None:
    """Run one queued fit to its end; its final status (``None``: unknown or already finished)."""
    say = progress or (lambda _step: None)
    started = now or utcnow()
    with db.unit_of_work() as session:
        if not repo.start_fit(session, merchant_id, fit_id, now=started):
            return None
        zone = _zone(session, merchant_id)
        requested = repo.get_fit(session, merchant_id, fit_id)
        assert requested is not None
        as_of = requested.requested_at.astimezone(zone).date()
    cutoff = as_of - timedelta(days=PROSPECT_HORIZON_DAYS)
    outcome = Outcome()
    try:
        say("reading purchase histories")
        with db.reading() as session:
            history = purchase_history(session, merchant_id, zone, as_of)
        say(f"fitting BG/NBD and Gamma-Gamma on {len(history):,} buyers")
        score_buyers(history, outcome)
        say("reading engagement")
        with db.reading() as session:
            training = engagement(session, merchant_id, zone, cutoff, label_days=PROSPECT_HORIZON_DAYS)
            current = engagement(session, merchant_id, zone, as_of)
        say(f"training the high-potential model on {len(training):,} members")
        score_prospects(training, current, outcome)
    except Exception as error:  # recorded, not retried: a refit is requested again, not replayed
        log.exception("model refit %s of %s failed", fit_id, merchant_id)
        outcome.scores.clear()
        outcome.errors.append(f"internal error: {type(error).__name__}: {error}")
    say(f"writing scores of {outcome.members_scored:,} members")
    finished = now or utcnow()
    status = _status(outcome)
    with db.unit_of_work() as session:
        for model, scores in outcome.scores.items():
            segments.record_scores(session, merchant_id, model, scores, now=finished)
            segments.clear_scores(session, merchant_id, model, before=finished)
        repo.finish_fit(
            session,
            merchant_id,
            fit_id,
            status=status,
            finished_at=finished,
            as_of=as_of,
            n_customers=outcome.n_customers,
            n_repeat=outcome.n_repeat,
            n_prospects=outcome.n_prospects,
            log_likelihood=outcome.log_likelihood,
            auc=outcome.auc,
            params=outcome.params,
            members_scored=outcome.members_scored,
            error="; ".join(outcome.errors) or None,
        )
    return status


@outbox.handles(REFIT_KIND)
def _refit_job(db: Database, item: outbox.OutboxItemView) -> None:
    fit_id = item.payload.get("fit_id")
    if not isinstance(fit_id, str):
        raise outbox.Permanent("a models.refit item needs a fit_id")
    run_refit(db, item.merchant_id, fit_id)
