"""A chunk's people as ingestion events, with the answers to campaigns; NDJSON files.

Event ids are ``sim{seed}-{person}-{tag}`` (tags: ``a`` arrival, ``j`` joined, ``o{k}`` / ``v{k}``
the k-th order and its visit, ``p2`` / ``l`` the second platform and the link that merges it,
``s`` / ``f`` / ``fl`` the subscription, favourite and life-account follow that make a person
reachable, ``c{c}`` / ``u{c}`` the extra order and the opt-out answering campaign c), so the same
person's events keep their ids whatever else changes, and a re-run is idempotent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from siyu.sim.population import Chunk, draw_chunk
from siyu.sim.world import CHANNELS, PLATFORMS, TYPES, World

HOLDOUT, TREATED = 1, 2
"""Values of :attr:`Exposure.group` (0: not in the campaign)."""
OPTOUT_TEMPLATE = "tpl_marketing"
"""The subscription template id of the long-term marketing subscription (``subscribe``) and of
the opt-outs (``unsubscribe``) that end it."""


def chance(seed: int, person: int, what: str) -> float:
    """A uniform draw in [0, 1) fixed by (seed, person, what), from no generator's stream: the
    reachability choices were added after the population's draws, and taking them from a hash
    leaves every earlier draw — and so every earlier byte of history — as it was."""
    digest = hashlib.blake2b(f"{seed}-{person}-{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Exposure:
    """One campaign as the simulator sees it, indexed by global person (length ``world.members``):
    each person's group (0 out, 1 holdout, 2 treated) and assignment time (days since start; the
    start of its attribution window, NaN when out), and the window's length."""

    at: NDArray[np.float64]
    window_days: int
    group: NDArray[np.int8]

    @classmethod
    def empty(cls, members: int, window_days: int) -> Exposure:
        return cls(np.full(members, np.nan), window_days, np.zeros(members, dtype=np.int8))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the campaign changed for one chunk's assigned people."""

    index: NDArray[np.int64]
    at: NDArray[np.float64]
    group: NDArray[np.int8]
    kind: NDArray[np.int64]
    true_effect: NDArray[np.float64]
    """Each person's true effect on converting (≥ 1 order) within the window: P(convert | treated)
    − P(convert | holdout), from its hidden type and its state when the campaign started."""
    extra_at: NDArray[np.float64]
    """Time of the extra order (NaN: none)."""
    extra_fen: NDArray[np.int64]
    stays_away: NDArray[np.bool_]
    opts_out: NDArray[np.bool_]


def answer(world: World, chunk: Chunk, number: int, exposure: Exposure, touches: NDArray[np.int64]) -> Answer:
    """Draw the chunk's answers to campaign ``number`` (its own random stream, so the people's
    history does not depend on which campaigns ran). ``touches`` counts each local person's
    campaign touches so far; it is increased for the treated."""
    rs = world.responses
    rng = np.random.default_rng([world.seed, chunk.index[0] // world.chunk_size, 1_000 + number])
    n = chunk.size
    u_response, u_optout, u_time = rng.random(n), rng.random(n), rng.random(n)
    spend = rng.gamma(np.where(chunk.member, world.member_parameters.p, world.non_members.p), 1.0 / chunk.nu)
    group = exposure.group[chunk.index]
    treated, assigned = group == TREATED, group > 0
    t0, width = exposure.at[chunk.index], float(exposure.window_days)
    alive = chunk.buyer & (chunk.arrival + 0.002 < t0) & (chunk.death > t0)
    quiet = np.where(alive, np.exp(-chunk.rate * width), 1.0)
    """P(no order of one's own in the window)."""
    kind = chunk.kind
    persuadable, sure, dnd = kind == 0, kind == 1, kind == 3
    effect = np.where(persuadable, rs.persuadable * quiet, 0.0) - np.where(
        dnd, rs.do_not_disturb * (1.0 - quiet), 0.0
    )
    extra = (treated & persuadable & (u_response < rs.persuadable)) | (
        assigned & sure & (u_response < rs.sure_thing)
    )
    stays_away = treated & dnd & (u_response < rs.do_not_disturb)
    touches[treated] += 1
    fatigue = 1.0 - (1.0 - rs.optout_base) * np.exp(-rs.optout_rate * (touches - 1))
    fatigue = np.minimum(1.0, np.where(dnd, rs.optout_dnd * fatigue, fatigue))
    opts_out = treated & (u_optout < fatigue)
    extra_at = np.where(extra, t0 + 0.01 + u_time * (width - 0.02), np.nan)
    at = t0
    return Answer(
        index=chunk.index[assigned],
        at=at[assigned],
        group=group[assigned],
        kind=kind[assigned],
        true_effect=effect[assigned],
        extra_at=extra_at[assigned],
        extra_fen=np.maximum(100, np.round(spend * 100.0)).astype(np.int64)[assigned],
        stays_away=stays_away[assigned],
        opts_out=opts_out[assigned],
    )


class Identities:
    """Deterministic identifiers of a world's people (unique per person and seed)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def platform(self, platform: int, person: int) -> tuple[str, str]:
        kind = PLATFORMS[platform]
        if kind == "alipay_user_id":
            return kind, f"2088{self.seed % 10_000:04d}{person:010d}"
        if kind == "wechat_openid":
            return kind, f"oSIM{self.seed}w{person:09d}"
        return kind, f"dySIM{self.seed}d{person:09d}"

    def phone(self, person: int) -> str:
        return f"13{(self.seed * 7_919 + person) % 1_000_000_000:09d}"

    def member_no(self, person: int) -> str:
        return f"M{self.seed}-{person:08d}"


def chunk_events(
    world: World,
    chunk: Chunk,
    *,
    since: float = 0.0,
    until: float | None = None,
    answers: Sequence[tuple[Exposure, Answer]] = (),
) -> list[dict[str, Any]]:
    """The chunk's events with ``since ≤ time < until`` (days), sorted by time then id."""
    until = float(world.days) if until is None else until
    ids = Identities(world.seed)
    start = world.start.astimezone(UTC)
    out: list[tuple[float, str, dict[str, Any]]] = []
    stores = world.store_ids
    away_local: dict[int, list[tuple[float, float]]] = {}
    for exposure, ans in answers:
        for person, at in zip(ans.index[ans.stays_away], ans.at[ans.stays_away], strict=True):
            local = int(person - chunk.index[0])
            away_local.setdefault(local, []).append((float(at), float(at) + exposure.window_days))

    def add(at: float, person: int, tag: str, type_: str, identities: dict[str, str], **extra: Any) -> None:
        if since <= at < until:
            event: dict[str, Any] = {
                "event_id": f"sim{world.seed}-{person}-{tag}",
                "type": type_,
                "occurred_at": (start + timedelta(seconds=int(at * 86_400))).isoformat(),
                "identities": identities,
            }
            event.update(extra)
            out.append((at, event["event_id"], event))

    def identities_at(local: int, at: float) -> dict[str, str]:
        person = int(chunk.index[local])
        kind, value = ids.platform(int(chunk.platform[local]), person)
        found = {kind: value}
        if chunk.member[local] and at >= chunk.join_at[local]:
            found["member_no"] = ids.member_no(person)
        return found

    for local in range(chunk.size):
        person = int(chunk.index[local])
        arrival = float(chunk.arrival[local])
        channel = CHANNELS[int(chunk.channel[local])]
        store = stores[int(chunk.store[local])]
        first = identities_at(local, arrival)
        if channel == "search_direct":
            add(arrival, person, "a", "search_direct", first, channel=channel)
        elif channel == "payment_page":
            add(arrival + 0.003, person, "a", "payment_page_view", first, channel=channel, store_id=store)
            if chance(world.seed, person, "follow") < world.follow_share:
                add(arrival + 0.004, person, "fl", "follow", first, channel="life_account")
        elif channel in ("store_qr", "guide"):
            code = f"{'qr' if channel == 'store_qr' else 'guide'}-{store}"
            add(
                arrival,
                person,
                "a",
                "scan",
                first,
                channel=channel,
                store_id=store,
                properties={"code_id": code},
            )
        elif channel == "referral":
            referrer = ids.member_no(int(chunk.referrer[local]))
            add(arrival, person, "a", "visit", first, channel=channel, properties={"referrer": referrer})
        else:
            add(arrival, person, "a", "visit", first, channel=channel, properties={"campaign": "group_buy"})
        if chunk.member[local]:
            joined = identities_at(local, float(chunk.join_at[local]))
            joined["phone"] = ids.phone(person)
            add(
                float(chunk.join_at[local]),
                person,
                "j",
                "member_joined",
                joined,
                properties={"source": channel},
            )
            joined_at = float(chunk.join_at[local])
            if chance(world.seed, person, "subscribe") < world.subscribe_share:
                props = {"channel": "mini_program", "template_id": OPTOUT_TEMPLATE, "one_time": False}
                add(joined_at + 0.0005, person, "s", "subscribe", joined, properties=props)
            if chance(world.seed, person, "favorite") < world.favorite_share:
                add(joined_at + 0.0006, person, "f", "favorite", joined, channel="mini_program")
        second = int(chunk.second_platform[local])
        if second >= 0:
            kind, value = ids.platform(second, person)
            add(float(chunk.second_at[local]), person, "p2", "visit", {kind: value}, channel="mini_program")
            linked = identities_at(local, float(chunk.link_at[local]))
            linked[kind] = value
            add(float(chunk.link_at[local]), person, "l", "visit", linked, channel="mini_program")
    away = away_local
    for j in range(len(chunk.order_of)):
        local = int(chunk.order_of[j])
        at = float(chunk.order_at[j])
        spans = away.get(local)
        if spans is not None and any(lo <= at < hi for lo, hi in spans):
            continue
        person, rank = int(chunk.index[local]), int(chunk.order_rank[j])
        store = stores[int(chunk.order_store[j])]
        channel = "mini_program" if chunk.order_online[j] else "store"
        who = identities_at(local, at)
        if chunk.order_visit[j] and rank > 0:
            add(at - 0.01, person, f"v{rank}", "visit", who, channel=channel, store_id=store)
        props = {"order_id": f"sim{world.seed}-{person}-{rank}", "amount_fen": int(chunk.order_fen[j])}
        add(at, person, f"o{rank}", "order_paid", who, channel=channel, store_id=store, properties=props)
    for number, (_exposure, ans) in enumerate(answers):
        for k in range(len(ans.index)):
            person = int(ans.index[k])
            local = person - int(chunk.index[0])
            at = float(ans.extra_at[k])
            if not np.isnan(at):
                who = identities_at(local, at)
                store = stores[int(chunk.store[local])]
                props = {
                    "order_id": f"sim{world.seed}-{person}-c{number}",
                    "amount_fen": int(ans.extra_fen[k]),
                }
                add(
                    at,
                    person,
                    f"c{number}",
                    "order_paid",
                    who,
                    channel="mini_program",
                    store_id=store,
                    properties=props,
                )
            if ans.opts_out[k]:
                at = float(ans.at[k]) + 0.02
                props = {"channel": "mini_program", "template_id": OPTOUT_TEMPLATE}
                add(at, person, f"u{number}", "unsubscribe", identities_at(local, at), properties=props)
    out.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in out]


def answer_all(world: World, chunk: Chunk, exposures: Sequence[Exposure]) -> list[tuple[Exposure, Answer]]:
    """The chunk's answers to ``exposures`` in order (fatigue counts the earlier touches)."""
    touches = np.zeros(chunk.size, dtype=np.int64)
    return [(e, answer(world, chunk, number, e, touches)) for number, e in enumerate(exposures)]


def stream(
    world: World, *, since: float = 0.0, until: float | None = None, exposures: Sequence[Exposure] = ()
) -> Iterator[tuple[Chunk, list[dict[str, Any]]]]:
    """Every chunk in order with its events in ``[since, until)``: one chunk in memory at a time."""
    for number in range(world.chunks):
        chunk = draw_chunk(world, number)
        answers = answer_all(world, chunk, exposures)
        yield chunk, chunk_events(world, chunk, since=since, until=until, answers=answers)


def dumps(event: dict[str, Any]) -> str:
    """One NDJSON line: sorted keys, no spaces, UTF-8 kept (the byte-identical file form)."""
    return json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_events(world: World, out: IO[str], *, exposures: Sequence[Exposure] = ()) -> int:
    """Write every event as NDJSON (chunk by chunk); returns the number of events."""
    count = 0
    for _chunk, events in stream(world, exposures=exposures):
        out.write("".join(dumps(e) + "\n" for e in events))
        count += len(events)
    return count


def write_truth(world: World, directory: Path, *, exposures: Sequence[Exposure] = ()) -> tuple[Path, Path]:
    """The ground truth: ``truth.json`` (the world's true parameters, and per campaign the
    average true effect over its assigned people) and ``truth_members.csv`` (each person's hidden
    type, rates, whether still a customer at the end, and true effect per campaign)."""
    directory.mkdir(parents=True, exist_ok=True)
    members_path, truth_path = directory / "truth_members.csv", directory / "truth.json"
    sums = [[0.0, 0] for _ in exposures]
    with members_path.open("w", encoding="utf-8", newline="\n") as out:
        header = ["person", "type", "buyer", "member", "rate_per_day", "dropout_p", "nu", "alive_at_end"]
        out.write(",".join(header + [f"effect_c{c}" for c in range(len(exposures))]) + "\n")
        for number in range(world.chunks):
            chunk = draw_chunk(world, number)
            effects = np.full((chunk.size, len(exposures)), np.nan)
            for c, (_exposure, ans) in enumerate(answer_all(world, chunk, exposures)):
                effects[ans.index - chunk.index[0], c] = ans.true_effect
                sums[c][0] += float(ans.true_effect.sum())
                sums[c][1] += len(ans.index)
            for local in range(chunk.size):
                row = [
                    str(int(chunk.index[local])),
                    TYPES[int(chunk.kind[local])],
                    str(int(chunk.buyer[local])),
                    str(int(chunk.member[local])),
                    f"{chunk.rate[local]:.6g}",
                    f"{chunk.dropout[local]:.6g}",
                    f"{chunk.nu[local]:.6g}",
                    str(int(chunk.buyer[local] and np.isinf(chunk.death[local]))),
                ]
                row += ["" if np.isnan(v) else f"{v:.6g}" for v in effects[local]]
                out.write(",".join(row) + "\n")
    truth = world.truth()
    truth["campaigns"] = [
        {
            "first_at_day": float(np.nanmin(e.at)) if s[1] else None,
            "window_days": e.window_days,
            "assigned": s[1],
            "average_true_effect": s[0] / s[1] if s[1] else None,
        }
        for e, s in zip(exposures, sums, strict=True)
    ]
    truth_path.write_text(
        json.dumps(truth, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return truth_path, members_path
