"""The demo merchant (``siyu demo``): a coffee chain with stores, staff, loyalty, simulated
members with history, and two finished campaigns with holdouts whose results are measurements.

Time line (days since the world's start, ``D`` = ``world.days``, the end being "now"):

* ``[0, D − 21)`` history is ingested;
* ``D − 21``: the recall campaign (members without an order for 30 days) is started and run as
  a broadcast at that moment (assignment, coupons through the outbox);
* ``[D − 21, D − 10)`` ingested, the treated answering by their hidden types;
* ``[D − 10, D − 9)``: the payment-success-page campaign runs; every simulated payment of that
  day asks the real decision (``decisions.service.decide``), offered coupons are accepted;
* ``[D − 10, D)`` ingested with both campaigns' answers; both campaigns are completed.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from siyu.campaigns import facade as campaigns
from siyu.campaigns import tasks as campaign_tasks
from siyu.coupons import facade as coupons
from siyu.coupons.schemas import TemplateIn
from siyu.db import Database
from siyu.decisions import service as decisions
from siyu.kit.pii import IdentifierVault
from siyu.outbox import facade as outbox
from siyu.points import facade as points
from siyu.sim.events import HOLDOUT, TREATED, Exposure, answer_all, chunk_events, write_truth
from siyu.sim.ingest import IngestTally, ingest_events
from siyu.sim.population import draw_chunk
from siyu.sim.world import CITY, CITY_CENTRE, STORE_NAMES, World
from siyu.tenancy import facade as tenancy
from siyu.tenancy.models import StaffRole, StoreKind
from siyu.tiers import facade as tiers

MERCHANT_NAME = "拾光咖啡"
RECALL_DAYS_BEFORE_END = 21
PAYMENT_DAYS_BEFORE_END = 10
WINDOW_DAYS = 7


class Progress(Protocol):
    def start(self, label: str, total: int | None) -> None: ...
    def advance(self, amount: int) -> None: ...


class _Silent:
    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


@dataclass
class DemoResult:
    merchant_id: str
    owner_login: str
    owner_password: str
    store_ids: list[str]
    campaign_ids: list[str]
    tally: IngestTally
    truth_path: Path | None = None
    decisions: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _day(world: World, days: float) -> datetime:
    return world.start + timedelta(seconds=round(days * 86_400))


def setup_merchant(session: Any, *, now: datetime, password: str) -> tuple[str, list[str], str, str]:
    """Merchant, 12 stores around the city, the owner, an operator, a guide per store, coupon
    templates, a points rule and a tier ladder. Returns (merchant, stores, recall coupon, page coupon)."""
    merchant = tenancy.create_merchant(session, name=MERCHANT_NAME)
    mid = merchant.id
    tenancy.create_staff(
        session,
        mid,
        login="owner",
        display_name="店主",
        role=StaffRole.OWNER,
        password=password,
        actor="demo",
    )
    tenancy.create_staff(
        session,
        mid,
        login="operator",
        display_name="运营小李",
        role=StaffRole.OPERATOR,
        password=password,
        actor="demo",
    )
    rng = np.random.default_rng(7)
    store_ids: list[str] = []
    for i, name in enumerate(STORE_NAMES):
        angle, radius = 2 * math.pi * i / len(STORE_NAMES), 0.02 + 0.08 * rng.random()
        kind = StoreKind.FRANCHISE if i % 3 == 2 else StoreKind.DIRECT
        store = tenancy.create_store(
            session,
            mid,
            name=f"{MERCHANT_NAME}·{name}",
            code=f"S{i + 1:02d}",
            kind=kind,
            city=CITY,
            latitude=round(CITY_CENTRE[0] + radius * math.sin(angle), 6),
            longitude=round(CITY_CENTRE[1] + radius * math.cos(angle), 6),
        )
        store_ids.append(store.id)
        tenancy.create_staff(
            session,
            mid,
            login=f"guide{i + 1:02d}",
            display_name=f"导购{name.removesuffix('店')}",
            role=StaffRole.GUIDE,
            password=password,
            store_ids=[store.id],
            actor="demo",
        )
    recall = coupons.create_template(
        session,
        mid,
        TemplateIn.model_validate(
            {
                "name": "回归礼·满30减10",
                "kind": "threshold",
                "value_fen": 1000,
                "threshold_fen": 3000,
                "total_stock": 1_000_000,
                "valid_days": WINDOW_DAYS,
                "per_member_limit": 1,
            }
        ),
        now=now,
    )
    page = coupons.create_template(
        session,
        mid,
        TemplateIn.model_validate(
            {
                "name": "支付后加购·第二杯半价",
                "kind": "discount",
                "discount_bp": 5000,
                "cap_fen": 2000,
                "total_stock": 1_000_000,
                "valid_days": WINDOW_DAYS,
            }
        ),
        now=now,
    )
    coupons.create_template(
        session,
        mid,
        TemplateIn.model_validate(
            {"name": "新人券·5元", "kind": "cash", "value_fen": 500, "total_stock": 100_000, "valid_days": 14}
        ),
        now=now,
    )
    for template in (recall, page):
        coupons.change_template_status(session, mid, template.id, "activate", now=now)
    points.create_rule(session, mid, {"event_type": "checkin", "points": 5, "daily_cap": 1}, now=now)
    for rank, (name, threshold) in enumerate((("银卡", 0), ("金卡", 50_000), ("黑金卡", 200_000))):
        tiers.create_tier(
            session,
            mid,
            {
                "name": name,
                "rank": rank,
                "threshold": threshold,
                "points_multiplier_bp": 10_000 + 2_500 * rank,
            },
            now=now,
        )
    return mid, store_ids, recall.id, page.id


def generate(
    world: World, number: int, since: float, until: float, exposures: Sequence[Exposure]
) -> tuple[int, list[dict[str, Any]]]:
    """Chunk ``number``'s size and its events in ``[since, until)`` answering ``exposures`` (a
    pure function of its arguments: the same in a child process as here)."""
    chunk = draw_chunk(world, number)
    return chunk.size, chunk_events(
        world, chunk, since=since, until=until, answers=answer_all(world, chunk, exposures)
    )


class Generator:
    """Chunks' events drawn ahead, in a child process, while the caller ingests the one before
    (generation is pure NumPy and Python, ingestion holds the GIL: on 2 cores they overlap);
    ``ahead=0`` draws in this process. At most ``ahead + 1`` chunks are held at once."""

    def __init__(self, ahead: int = 2) -> None:
        self.ahead = ahead
        self.pool: ProcessPoolExecutor | None = None
        if ahead > 0:  # spawn: no fork of a process holding database connections and threads
            self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def chunks(
        self, world: World, *, since: float, until: float, exposures: Sequence[Exposure]
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        if self.pool is None:
            for number in range(world.chunks):
                yield generate(world, number, since, until, exposures)
            return
        pending: deque[Future[tuple[int, list[dict[str, Any]]]]] = deque()
        exposures = list(exposures)
        for number in range(world.chunks):
            pending.append(self.pool.submit(generate, world, number, since, until, exposures))
            if len(pending) > self.ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def ingest_phase(
    database: Database,
    vault: IdentifierVault,
    merchant_id: str,
    world: World,
    *,
    since: float,
    until: float,
    exposures: list[Exposure],
    now: datetime,
    tally: IngestTally,
    progress: Progress,
    label: str,
    generator: Generator | None = None,
) -> None:
    progress.start(label, world.members)
    source = generator or Generator(ahead=0)

    def batches() -> Any:
        for size, events in source.chunks(world, since=since, until=until, exposures=exposures):
            yield events
            progress.advance(size)

    ingest_events(database, vault, merchant_id, batches(), now=now, tally=tally)


def _exposure_of(
    database: Database,
    merchant_id: str,
    campaign_id: str,
    tally: IngestTally,
    members: int,
    at: Callable[[int], float],
    window_days: int = WINDOW_DAYS,
) -> Exposure:
    exposure = Exposure.empty(members, window_days)
    people = list(tally.member_of.items())
    with database.reading() as session:
        for start in range(0, len(people), 5_000):
            part = people[start : start + 5_000]
            groups = campaigns.assigned_groups(session, merchant_id, campaign_id, [m for _, m in part])
            for person, member_id in part:
                group = groups.get(member_id)
                if group is not None:
                    exposure.group[person] = TREATED if group == "treatment" else HOLDOUT
                    exposure.at[person] = at(person)
    return exposure


def run_broadcast(
    database: Database,
    merchant_id: str,
    world: World,
    spec: dict[str, Any],
    *,
    at_day: float,
    tally: IngestTally,
) -> tuple[str, Exposure]:
    """Create, start and run a one-off broadcast campaign at ``at_day`` (the real campaign round
    and outbox, with the clock set to that moment); the campaign id and who it assigned, as the
    simulator's :class:`Exposure` (people known through ``tally``)."""
    at = _day(world, at_day)
    with database.unit_of_work() as session:
        campaign = campaigns.create_campaign(session, merchant_id, spec, now=at)
        campaigns.move(session, merchant_id, campaign.id, "start", now=at)
    campaign_tasks.run_merchant(database, merchant_id, now=at, campaign_id=campaign.id)
    _drain_outbox(database, at + timedelta(minutes=1))
    exposure = _exposure_of(
        database, merchant_id, campaign.id, tally, world.members, lambda _p: at_day, spec["attribution_days"]
    )
    return campaign.id, exposure


def _drain_outbox(database: Database, now: datetime) -> None:
    while outbox.run_once(database, limit=500, now=now) > 0:
        pass


def build_demo(
    database: Database,
    vault: IdentifierVault,
    world: World,
    *,
    now: datetime,
    password: str,
    truth_dir: Path | None = None,
    progress: Progress | None = None,
    ahead: int = 2,
) -> DemoResult:
    """Build the demo merchant in ``database`` (which must hold no merchant yet); see the module
    docstring. ``world.store_ids`` is replaced by the created stores' ids. ``ahead`` chunks are
    drawn ahead in a child process (0: all in this one)."""
    progress = progress or _Silent()
    generator = Generator(ahead)
    try:
        return _build(database, vault, world, now=now, password=password, truth_dir=truth_dir,
                      progress=progress, generator=generator)  # fmt: skip
    finally:
        generator.close()


def _build(
    database: Database,
    vault: IdentifierVault,
    world: World,
    *,
    now: datetime,
    password: str,
    truth_dir: Path | None,
    progress: Progress,
    generator: Generator,
) -> DemoResult:
    with database.unit_of_work() as session:
        mid, store_ids, recall_coupon, page_coupon = setup_merchant(
            session, now=world.start, password=password
        )
    world = World(**{**_fields(world), "store_ids": tuple(store_ids)})
    tally = IngestTally()
    recall_day = float(world.days - RECALL_DAYS_BEFORE_END)
    page_day = float(world.days - PAYMENT_DAYS_BEFORE_END)
    phase = functools.partial(
        ingest_phase,
        database,
        vault,
        mid,
        world,
        now=now,
        tally=tally,
        progress=progress,
        generator=generator,
    )
    phase(since=0.0, until=recall_day, exposures=[], label="历史 history")

    # The recall of the dormant: a broadcast at recall_day.
    recall_spec = {
        "name": "沉睡会员唤醒·满30减10",
        "goal": "active",
        "audience_rule": {"rfm": {"measure": "recency_days", "op": "gte", "value": 30}},
        "holdout_bp": 2_000,
        "variants": [
            {
                "key": "main",
                "weight_bp": 10_000,
                "treatments": [{"action": "coupon", "template_id": recall_coupon}],
            }
        ],
        "attribution_days": WINDOW_DAYS,
        "recall": True,
    }
    progress.start("召回活动 recall campaign", None)
    recall_id, recall_exposure = run_broadcast(
        database, mid, world, recall_spec, at_day=recall_day, tally=tally
    )
    exposures = [recall_exposure]
    phase(since=recall_day, until=page_day, exposures=exposures, label="召回之后 after recall")

    # The payment-success-page offer: one day of payments decided by the real decision service.
    t2 = _day(world, page_day)
    with database.unit_of_work() as session:
        page = campaigns.create_campaign(
            session,
            mid,
            {
                "name": "支付成功页·第二杯半价",
                "goal": "worth",
                "kind": "payment_success",
                "placement": "payment_success",
                "holdout_bp": 2_000,
                "variants": [
                    {
                        "key": "main",
                        "weight_bp": 10_000,
                        "treatments": [{"action": "coupon", "template_id": page_coupon}],
                    }
                ],
                "schedule": {"start_at": t2.isoformat(), "end_at": _day(world, page_day + 1).isoformat()},
                "attribution_days": WINDOW_DAYS,
            },
            now=t2,
        )
        campaigns.move(session, mid, page.id, "start", now=t2)
    decided_at: dict[int, float] = {}
    progress.start("支付成功页 payment page", world.members)
    for size, day_events in generator.chunks(world, since=page_day, until=page_day + 1, exposures=exposures):
        for event in day_events:
            if event["type"] != "order_paid":
                continue
            person = int(event["event_id"].split("-", 2)[1])
            if person in decided_at:
                continue
            at = datetime.fromisoformat(event["occurred_at"]) + timedelta(seconds=30)
            payment = decisions.Payment(
                identities=event["identities"],
                amount_fen=event["properties"]["amount_fen"],
                store_id=event.get("store_id"),
                order_id=event["properties"]["order_id"],
                channel=event.get("channel"),
            )
            with database.unit_of_work() as session:
                decision = decisions.decide(session, vault, mid, payment, now=at)
                if decision.status == "offered":
                    decisions.accept(session, mid, decision.id, now=at + timedelta(seconds=5))
            tally.member_of.setdefault(person, decision.member_id)
            decided_at[person] = (at - world.start).total_seconds() / 86_400
        progress.advance(size)
    exposures.append(
        _exposure_of(database, mid, page.id, tally, world.members, lambda p: decided_at.get(p, float("nan")))
    )
    phase(since=page_day, until=float(world.days), exposures=exposures, label="最近 recent days")
    with database.unit_of_work() as session:
        for campaign_id in (recall_id, page.id):
            campaigns.move(session, mid, campaign_id, "complete", now=now)
    truth_path = None
    if truth_dir is not None:
        truth_path, _ = write_truth(world, truth_dir, exposures=exposures)
    return DemoResult(
        merchant_id=mid,
        owner_login="owner",
        owner_password=password,
        store_ids=store_ids,
        campaign_ids=[recall_id, page.id],
        tally=tally,
        truth_path=truth_path,
        decisions=len(decided_at),
    )


def _fields(world: World) -> dict[str, Any]:
    return {name: getattr(world, name) for name in World.__dataclass_fields__}
