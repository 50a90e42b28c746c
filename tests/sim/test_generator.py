"""The simulator's generator: determinism, recovery of its true parameters, bounded memory."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from siyu.models.bgnbd import fit_bgnbd
from siyu.models.gammagamma import fit_gamma_gamma
from siyu.sim.events import OPTOUT_TEMPLATE, TREATED, Exposure, stream, write_events, write_truth
from siyu.sim.population import draw_chunk, history
from siyu.sim.world import World

START = datetime(2026, 1, 1, 16, tzinfo=UTC)


def digest(world: World, exposures: list[Exposure] | None = None) -> str:
    out = io.StringIO()
    write_events(world, out, exposures=exposures or [])
    return hashlib.sha256(out.getvalue().encode()).hexdigest()


class TestDeterminism:
    def test_same_seed_same_bytes_other_seed_other_bytes(self) -> None:
        # given
        world = World(start=START, members=1_500, days=90, seed=11, chunk_size=500)
        # when
        first, second = digest(world), digest(world)
        other = digest(World(start=START, members=1_500, days=90, seed=12, chunk_size=500))
        # then
        assert first == second
        assert first != other

    def test_campaign_answers_are_deterministic_and_leave_history_alone(self, tmp_path: Path) -> None:
        # given: everyone treated at day 60
        world = World(start=START, members=800, days=90, seed=5, chunk_size=400)
        exposure = Exposure(np.full(800, 60.0), 7, np.full(800, TREATED, dtype=np.int8))
        # when
        with_campaign = [e for _, events in stream(world, exposures=[exposure]) for e in events]
        without = [e for _, events in stream(world) for e in events]
        # then: identical before the campaign; answers appear only inside its window
        before = [e for e in with_campaign if e["occurred_at"] < "2026-03-02T16"]
        assert before == [e for e in without if e["occurred_at"] < "2026-03-02T16"]
        answers = [e for e in with_campaign if e["event_id"].rsplit("-", 1)[1] in ("c0", "u0")]
        assert answers
        assert all("2026-03-02T16" <= e["occurred_at"] < "2026-03-09T16" for e in answers)
        assert digest(world, [exposure]) == digest(world, [exposure])
        truth, members = write_truth(world, tmp_path, exposures=[exposure])
        assert json.loads(truth.read_text())["campaigns"][0]["assigned"] == 800
        assert len(members.read_text().splitlines()) == 801

    def test_merges_are_generated(self) -> None:
        # given
        world = World(start=START, members=1_000, days=90, seed=2, chunk_size=1_000)
        # when
        events = next(stream(world))[1]
        # then: a link event carries two platform identities
        links = [e for e in events if e["event_id"].endswith("-l")]
        assert links
        assert all(len(set(e["identities"]) - {"member_no"}) == 2 for e in links)

    def test_reachability_follows_joining_and_the_payment_page(self) -> None:
        # given
        world = World(start=START, members=4_000, days=90, seed=6, chunk_size=4_000)
        # when
        events = next(stream(world))[1]
        by_tag: dict[str, list[dict[str, object]]] = {}
        for event in events:
            person, tag = str(event["event_id"]).rsplit("-", 1)
            by_tag.setdefault(tag, []).append(event)
        person_of = {
            tag: {str(e["event_id"]).rsplit("-", 1)[0] for e in found} for tag, found in by_tag.items()
        }
        joined_at = {str(e["event_id"]).rsplit("-", 1)[0]: e["occurred_at"] for e in by_tag["j"]}
        # then: subscriptions and favourites only from members, just after joining, with their ids
        for tag, share in (("s", world.subscribe_share), ("f", world.favorite_share)):
            assert person_of[tag] <= set(joined_at)
            assert abs(len(person_of[tag]) / len(joined_at) - share) < 0.05
            for event in by_tag[tag]:
                person = str(event["event_id"]).rsplit("-", 1)[0]
                assert str(event["occurred_at"]) >= str(joined_at[person])
                assert "member_no" in event["identities"]  # type: ignore[operator]
        assert {e["type"] for e in by_tag["s"]} == {"subscribe"}
        assert all(
            e["properties"] == {"channel": "mini_program", "template_id": OPTOUT_TEMPLATE, "one_time": False}
            for e in by_tag["s"]
        )
        # and follows only from people who arrived by the payment-success page
        page = {str(e["event_id"]).rsplit("-", 1)[0] for e in by_tag["a"] if e["type"] == "payment_page_view"}
        assert person_of["fl"] <= page
        assert abs(len(person_of["fl"]) / len(page) - world.follow_share) < 0.06


class TestRecovery:
    """Fitting the analytics models on simulated purchases recovers the simulator's parameters.

    Tolerances (40,000 people over 365 days, members and non-members fitted apart): BG/NBD r, α
    within 12 %, a, b within 25 % (the dropout mixture is the hardest to identify); Gamma-Gamma
    p, q within 15 %, γ within 20 %; mean spend p·γ/(q−1) within 5 %."""

    @pytest.mark.parametrize("seed", [3, 4])
    def test_bgnbd_and_gamma_gamma(self, seed: int) -> None:
        # given
        world = World(start=START, members=40_000, days=365, seed=seed, chunk_size=10_000)
        parts = [history(draw_chunk(world, c), float(world.days)) for c in range(world.chunks)]

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(h, name) for h in parts])

        member = cat("member")
        for chosen, truth in ((member, world.member_parameters), (~member, world.non_members)):
            # when
            bg = fit_bgnbd(cat("frequency")[chosen], cat("recency")[chosen], cat("T")[chosen])
            gg = fit_gamma_gamma(cat("frequency")[chosen], cat("monetary")[chosen])
            # then
            assert bg.r == pytest.approx(truth.r, rel=0.12)
            assert bg.alpha == pytest.approx(truth.alpha, rel=0.12)
            assert bg.a == pytest.approx(truth.a, rel=0.25)
            assert bg.b == pytest.approx(truth.b, rel=0.25)
            assert gg.p == pytest.approx(truth.p, rel=0.15)
            assert gg.q == pytest.approx(truth.q, rel=0.15)
            assert gg.v == pytest.approx(truth.gamma, rel=0.2)
            assert gg.p * gg.v / (gg.q - 1) == pytest.approx(truth.mean_spend_yuan(), rel=0.05)


class TestMemory:
    def test_peak_memory_does_not_grow_with_members(self) -> None:
        # given: the same chunk size, 4× the people
        def peak(members: int) -> int:
            world = World(start=START, members=members, days=120, seed=1, chunk_size=1_000)
            tracemalloc.start()
            try:
                write_events(world, _Discard())  # type: ignore[arg-type]
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

        # when
        small, large = peak(2_000), peak(8_000)
        # then
        assert large < 1.5 * small


class _Discard:
    """A text sink that keeps nothing (so the file's size does not count as memory)."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, text: str) -> int:
        self.written += len(text)
        return len(text)
