"""Campaigns on simulated members: the measured lift covers the simulator's true average effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from siyu.campaigns import results
from siyu.db import Database
from siyu.kit.ids import replayable
from siyu.kit.pii import IdentifierVault
from siyu.sim.demo import ingest_phase, run_broadcast
from siyu.sim.events import answer_all
from siyu.sim.ingest import IngestTally
from siyu.sim.population import draw_chunk
from siyu.sim.world import World

VAULT = IdentifierVault("s" * 40)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CAMPAIGN_DAY, WINDOW = 50.0, 7


def true_average(world: World, exposure_list: list) -> float:  # type: ignore[type-arg]
    total, count = 0.0, 0
    for number in range(world.chunks):
        (_e, answer), *_ = answer_all(world, draw_chunk(world, number), exposure_list)
        total += float(answer.true_effect.sum())
        count += len(answer.index)
    return total / count


class TestLiftCoverage:
    def test_interval_covers_the_true_average_effect_for_most_seeds(self, db: Database, make_tenant) -> None:  # type: ignore[no-untyped-def]
        covered, seeds = 0, range(10)
        for seed in seeds:
            # ids from a seeded source: campaign groups hash the campaign's and members' ids, so
            # with system randomness each run would split the members anew and the count of
            # covered seeds would be a coin toss (it fell to 7 in about 1 run in 90)
            with replayable(seed):
                # given: 500 people with 50 days of history, a points-free coupon-less message-free
                # broadcast (a points treatment) to every active member, 30 % held out
                tenant = make_tenant(f"模拟{seed}")
                world = World(start=NOW - timedelta(days=60), members=500, days=60, seed=seed, chunk_size=500)
                tally = IngestTally()
                ingest_phase(
                    db,
                    VAULT,
                    tenant.merchant_id,
                    world,
                    since=0.0,
                    until=CAMPAIGN_DAY,
                    exposures=[],
                    now=NOW,
                    tally=tally,
                    progress=_Quiet(),
                    label="history",
                )
                spec = {
                    "name": f"召回{seed}",
                    "goal": "active",
                    "holdout_bp": 3_000,
                    "variants": [
                        {
                            "key": "main",
                            "weight_bp": 10_000,
                            "treatments": [{"action": "points", "points": 50}],
                        }
                    ],
                    "attribution_days": WINDOW,
                }
                campaign_id, exposure = run_broadcast(
                    db, tenant.merchant_id, world, spec, at_day=CAMPAIGN_DAY, tally=tally
                )
                # when: the simulated people answer, and the campaign's results are computed
                ingest_phase(
                    db,
                    VAULT,
                    tenant.merchant_id,
                    world,
                    since=CAMPAIGN_DAY,
                    until=60.0,
                    exposures=[exposure],
                    now=NOW,
                    tally=tally,
                    progress=_Quiet(),
                    label="after",
                )
                with db.reading() as session:
                    measured = results.campaign_results(session, tenant.merchant_id, campaign_id, now=NOW)
                # then
                assert measured is not None
                lift = measured.increments[0].conversion
                assert lift.interval is not None
                # a person seen on a second platform not yet linked is a second member: a few more members
                people = int((exposure.group > 0).sum())
                assert people <= lift.treatment_n + lift.holdout_n <= 1.02 * people
                truth = true_average(world, [exposure])
                covered += lift.interval.low <= truth <= lift.interval.high
        assert covered >= 8


class _Quiet:
    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass
