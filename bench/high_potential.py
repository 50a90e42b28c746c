"""High-potential model on generated members whose engagement drives first orders.

Ground truth (documented in docs/models.md): each member has a latent interest u ~ N(0, 1) that
drives their engagement before the cutoff day — visits, favourite, direct searches, a subscription,
page views — on random days between the day they were first seen and the cutoff. Whether they place
a first order in the ``horizon`` days after the cutoff is then a Bernoulli draw with

    logit P(first order) = TRUTH_INTERCEPT + Σ TRUTH[feature] · log(1 + feature)

over the engagement features exactly as :func:`siyu.models.features.engagement` computes them
from those events (the generator computes them itself, from the events it writes). The model never
sees u or the weights; it sees the events in the state store. Its held-out AUC is reported next to
the AUC of the true probabilities on the same held-out members — the ceiling any model can reach.

    python bench/high_potential.py --members 20000          # SQLite in a temporary directory
    python bench/high_potential.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sklearn.metrics import roc_auc_score
from sqlalchemy import insert
from sqlalchemy.orm import Session

from siyu.events.models import Event
from siyu.kit.ids import IdKind, new_id
from siyu.members.models import Member, MemberStatus
from siyu.models import high_potential as hp
from siyu.models.features import ENGAGEMENT_FEATURES, engagement

ZONE = ZoneInfo("Asia/Shanghai")
CUTOFF = date(2026, 3, 1)
HORIZON_DAYS = 30
TRUTH_INTERCEPT = -4.0
TRUTH = {
    "visits": 0.9,
    "favourites": 1.2,
    "search_direct": 0.8,
    "subscriptions": 0.9,
    "page_views": 0.5,
    "days_since_last_seen": -0.5,
}
"""True weights on log(1 + feature); every other engagement feature has weight 0."""


@dataclass(frozen=True)
class GeneratedMember:
    member_id: str
    first_seen: date
    events: tuple[tuple[str, date], ...]
    """(event type, local day) before or on the cutoff."""
    features: tuple[float, ...]
    """``ENGAGEMENT_FEATURES`` as the state store will compute them."""
    probability: float
    first_order: date | None


def _features(first_seen: date, events: list[tuple[str, date]], cutoff: date) -> list[float]:
    from siyu.models.features import ENGAGEMENT_COUNTS

    counts = {name: sum(1 for t, _ in events if t in types) for name, types in ENGAGEMENT_COUNTS.items()}
    days = {d for _, d in events} | {first_seen}
    extra = {
        "active_days": len(days),
        "days_since_first_seen": (cutoff - min(days)).days,
        "days_since_last_seen": (cutoff - max(days)).days,
    }
    return [float({**counts, **extra}[name]) for name in ENGAGEMENT_FEATURES]


def truth_logit(features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The true log-odds for rows of ``ENGAGEMENT_FEATURES``."""
    x = hp.design(features)
    weights = np.array([TRUTH.get(name, 0.0) for name in ENGAGEMENT_FEATURES])
    return np.asarray(TRUTH_INTERCEPT + x @ weights)


def generate(
    members: int, *, seed: int = 7, cutoff: date = CUTOFF, horizon_days: int = HORIZON_DAYS
) -> list[GeneratedMember]:
    """``members`` prospects, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(members):
        u = rng.normal()
        first_seen = cutoff - timedelta(days=int(rng.integers(0, 60)))
        span = (cutoff - first_seen).days
        draws = {
            "visit": rng.poisson(np.exp(0.2 + 0.7 * u)),
            "favorite": int(rng.random() < 1 / (1 + np.exp(1.2 - u))),
            "search_direct": rng.poisson(np.exp(-0.8 + 0.5 * u)),
            "subscribe": int(rng.random() < 1 / (1 + np.exp(1.5 - 0.8 * u))),
            "payment_page_view": rng.poisson(np.exp(-0.6 + 0.6 * u)),
            "share": rng.poisson(0.3),
        }
        events = [("member_joined", first_seen)]
        for kind, n in draws.items():
            events += [(kind, first_seen + timedelta(days=int(rng.integers(0, span + 1)))) for _ in range(n)]
        features = _features(first_seen, events, cutoff)
        p = float(1 / (1 + np.exp(-truth_logit(np.array([features]))[0])))
        first_order = None
        if rng.random() < p:
            first_order = cutoff + timedelta(days=int(rng.integers(1, horizon_days + 1)))
        out.append(
            GeneratedMember(new_id(IdKind.MEMBER), first_seen, tuple(events), tuple(features), p, first_order)
        )
    return out


def _at(day: date, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, 9, minute % 60, tzinfo=ZONE).astimezone(UTC)


def _rows(merchant_id: str, world: list[GeneratedMember]) -> Iterator[dict[str, Any]]:
    received = datetime(2026, 6, 1, tzinfo=UTC)
    for m in world:
        happenings = list(m.events)
        if m.first_order is not None:
            happenings.append(("order_paid", m.first_order))
        for i, (kind, day) in enumerate(happenings):
            props: dict[str, Any] = {}
            amount = None
            if kind == "order_paid":
                amount = 3000
                props = {"order_id": f"{m.member_id}-o", "amount_fen": amount}
            elif kind == "subscribe":
                props = {"channel": "mini_program", "template_id": "tpl"}
            yield {
                "merchant_id": merchant_id,
                "event_id": f"{m.member_id}-{i}",
                "member_id": m.member_id,
                "type": kind,
                "occurred_at": _at(day, i),
                "received_at": received,
                "channel": None,
                "store_id": None,
                "amount_fen": amount,
                "properties": props,
            }


def seed(session: Session, merchant_id: str, world: list[GeneratedMember], *, chunk: int = 5000) -> int:
    """Write the generated members and their events (bulk inserts); the number of events."""
    created = datetime(2025, 12, 1, tzinfo=UTC)
    members = [
        {
            "merchant_id": merchant_id,
            "id": m.member_id,
            "status": MemberStatus.ACTIVE,
            "created_at": created,
            "updated_at": created,
        }
        for m in world
    ]
    for start in range(0, len(members), chunk):
        session.execute(insert(Member), members[start : start + chunk])
    batch: list[dict[str, Any]] = []
    written = 0
    for row in _rows(merchant_id, world):
        batch.append(row)
        if len(batch) == chunk:
            session.execute(insert(Event), batch)
            written, batch = written + len(batch), []
    if batch:
        session.execute(insert(Event), batch)
        written += len(batch)
    return written


@dataclass(frozen=True)
class Evaluation:
    fit: hp.HighPotentialFit
    truth_auc: float
    """AUC of the true probabilities on the same held-out members."""
    members: int
    converted: int


def evaluate(
    session: Session,
    merchant_id: str,
    world: list[GeneratedMember],
    *,
    cutoff: date = CUTOFF,
    horizon_days: int = HORIZON_DAYS,
    seed: int = 0,
) -> Evaluation:
    """Features and labels from the state store, the model trained, and both AUCs on the held-out rows."""
    found = engagement(session, merchant_id, ZONE, cutoff, label_days=horizon_days)
    assert found.converted is not None
    fit = hp.train(found.values, found.converted, seed=seed)
    truth = {m.member_id: m.probability for m in world}
    p_true = np.array([truth[m] for m in found.member_ids])
    _, validation = hp.split(found.converted, seed=seed)
    truth_auc = float(roc_auc_score(found.converted[validation], p_true[validation]))
    return Evaluation(fit, truth_auc, len(found), int(found.converted.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args()

    from siyu.db import Database
    from siyu.migrate import upgrade
    from siyu.tenancy import facade as tenancy

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'hp.db'}"
        db = Database(url)
        upgrade(db.engine)
        world = generate(args.members, seed=args.seed)
        with db.unit_of_work() as session:
            merchant_id = tenancy.create_merchant(session, name="high-potential bench").id
            events = seed(session, merchant_id, world)
        started = time.perf_counter()
        with db.reading() as session:
            result = evaluate(session, merchant_id, world)
        elapsed = time.perf_counter() - started
        db.dispose()
    fit = result.fit
    print(
        f"engine: {url.split(':')[0]}; {args.members:,} generated prospects, "
        f"{events:,} events, seed {args.seed}"
    )
    print(f"converted within {HORIZON_DAYS} days of the cutoff: {result.converted:,} of {result.members:,}")
    print(f"held-out members: {fit.n_validation:,} (trained on {fit.n_train:,})")
    print(f"AUC model        : {fit.auc:.4f}")
    print(f"AUC ground truth : {result.truth_auc:.4f}   (ratio {fit.auc / result.truth_auc:.3f})")
    print(f"Brier score      : {fit.brier:.4f}")
    print(f"calibration error: {fit.calibration_error:.4f}  (expected |predicted − observed|, 10 bins)")
    print("reliability (held out):  predicted range   members   mean predicted   observed")
    for b in fit.reliability:
        print(
            f"    {b.low:.1f}–{b.high:.1f}   {b.members:8,}   "
            f"{b.mean_predicted:14.3f}   {b.observed_rate:8.3f}"
        )
    print(f"features + training took {elapsed:.2f} s")


if __name__ == "__main__":
    main()
