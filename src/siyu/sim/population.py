"""People of one chunk, drawn with NumPy: arrival, channel, identities, hidden rates and purchases.

A chunk is ``world.chunk_size`` consecutive people (global indices ``chunk·size …``) drawn from its
own generator ``default_rng([seed, chunk])``, so chunks are independent, can be drawn in any
order, and memory holds one chunk at a time whatever ``world.members`` is.

Buying follows BG/NBD exactly as :mod:`siyu.models.bgnbd` assumes: the first purchase at arrival
(time 0 of the customer), then a Poisson process of rate λ ~ Gamma(r, rate α) per day; after each
repeat purchase the customer drops out with probability p ~ Beta(a, b) (K ~ Geometric(p) repeat
purchases at most). Order values follow Gamma-Gamma: ν ~ Gamma(q, rate γ), each order
~ Gamma(p, rate ν) yuan, stored in whole fen (at least 1 yuan). Members buy with their own
parameters (:func:`siyu.sim.world.members_of`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from siyu.sim.world import CHANNEL_SHARES, CHANNELS, PLATFORM_SHARES, STORE_NAMES, BuyingParameters, World

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk's people (arrays of length n) and their purchases (arrays of length m).

    Times are in days since ``world.start``; ``death`` is the moment of the repeat purchase after
    which the person stops buying (``inf``: still a customer at the end)."""

    index: Ints
    arrival: Floats
    buyer: Bools
    member: Bools
    join_at: Floats
    channel: Ints
    store: Ints
    platform: Ints
    second_platform: Ints
    """-1: one platform only."""
    second_at: Floats
    link_at: Floats
    referrer: Ints
    rate: Floats
    dropout: Floats
    nu: Floats
    kind: Ints
    """Hidden type: index into :data:`siyu.sim.world.TYPES`."""
    death: Floats
    order_of: Ints
    """Local person index of each purchase (sorted by person, then time)."""
    order_rank: Ints
    """0 for the first purchase, 1… for repeats."""
    order_at: Floats
    order_fen: Ints
    order_store: Ints
    order_online: Bools
    order_visit: Bools
    """The order is preceded by a separate visit event."""

    @property
    def size(self) -> int:
        return len(self.index)


def _buying(world: World, member: Bools) -> tuple[BuyingParameters, BuyingParameters]:
    return world.non_members, world.member_parameters


def draw_chunk(world: World, chunk: int) -> Chunk:
    """The people of ``chunk`` (0 ≤ chunk < world.chunks); same world and chunk → same arrays."""
    if not 0 <= chunk < world.chunks:
        raise ValueError(f"chunk {chunk} outside 0…{world.chunks - 1}")
    rng = np.random.default_rng([world.seed, chunk])
    first = chunk * world.chunk_size
    n = min(world.chunk_size, world.members - first)
    index = np.arange(first, first + n, dtype=np.int64)
    days = float(world.days)

    arrival = rng.random(n) * days
    buyer = rng.random(n) < world.buyer_share
    member = buyer & (rng.random(n) < world.member_share)
    join_at = arrival + rng.random(n) * 0.01  # within ~15 minutes of the first purchase
    channel = rng.choice(len(CHANNELS), size=n, p=np.asarray(CHANNEL_SHARES))
    popularity = np.linspace(2.0, 1.0, len(STORE_NAMES))
    store = rng.choice(len(world.store_ids), size=n, p=_shares(popularity, len(world.store_ids)))
    platform = rng.choice(len(PLATFORM_SHARES), size=n, p=np.asarray(PLATFORM_SHARES))
    multi = rng.random(n) < world.multi_platform_share
    other = (platform + 1 + rng.integers(0, len(PLATFORM_SHARES) - 1, n)) % len(PLATFORM_SHARES)
    second_platform = np.where(multi, other, -1)
    second_at = arrival + rng.random(n) * (days - arrival)
    link_at = np.minimum(second_at + rng.random(n) * 3.0, days - 1e-6)
    link_at = np.maximum(link_at, second_at)
    referrer = np.where(index > 0, (rng.random(n) * np.maximum(index, 1)).astype(np.int64), -1)

    non, mem = _buying(world, member)
    r = np.where(member, mem.r, non.r)
    alpha = np.where(member, mem.alpha, non.alpha)
    a = np.where(member, mem.a, non.a)
    b = np.where(member, mem.b, non.b)
    q = np.where(member, mem.q, non.q)
    gamma = np.where(member, mem.gamma, non.gamma)
    p_shape = np.where(member, mem.p, non.p)
    rate = rng.gamma(r, 1.0 / alpha)
    dropout = rng.beta(a, b)
    nu = rng.gamma(q, 1.0 / gamma)
    kind = rng.choice(4, size=n, p=np.asarray(world.responses.type_shares))

    # Repeat purchases: N ~ Poisson(λT) candidate times, the first min(N, K) of them happen.
    age = np.where(buyer, days - arrival, 0.0)
    candidates = rng.poisson(rate * age)
    lifetime = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    repeats = np.minimum(candidates, lifetime)
    owner = np.repeat(np.arange(n, dtype=np.int64), candidates)
    when = rng.random(len(owner)) * age[owner]
    order = np.lexsort((when, owner))
    owner, when = owner[order], when[order]
    starts = np.concatenate(([0], np.cumsum(candidates)[:-1])).astype(np.int64)
    rank = np.arange(len(owner), dtype=np.int64) - starts[owner]
    death = np.full(n, np.inf)
    dies = rank == lifetime[owner] - 1
    death[owner[dies]] = arrival[owner[dies]] + when[dies]
    keep = rank < repeats[owner]
    repeat_of, repeat_at, repeat_rank = owner[keep], arrival[owner[keep]] + when[keep], rank[keep] + 1

    buyers = np.flatnonzero(buyer)
    order_of = np.concatenate((buyers, repeat_of))
    order_at = np.concatenate((arrival[buyers] + 0.002, repeat_at))  # first order ~3 minutes after arrival
    order_rank = np.concatenate((np.zeros(len(buyers), dtype=np.int64), repeat_rank))
    sort = np.lexsort((order_at, order_of))
    order_of, order_at, order_rank = order_of[sort], order_at[sort], order_rank[sort]
    m = len(order_of)
    spend = rng.gamma(p_shape[order_of], 1.0 / nu[order_of])
    order_fen = np.maximum(100, np.round(spend * 100.0)).astype(np.int64)
    away = rng.random(m) < 0.2
    order_store = np.where(away, rng.integers(0, len(world.store_ids), m), store[order_of])
    order_online = rng.random(m) < 0.5
    order_visit = rng.random(m) < world.visit_share
    return Chunk(
        index=index,
        arrival=arrival,
        buyer=buyer,
        member=member,
        join_at=join_at,
        channel=channel,
        store=store,
        platform=platform,
        second_platform=second_platform,
        second_at=second_at,
        link_at=link_at,
        referrer=referrer,
        rate=rate,
        dropout=dropout,
        nu=nu,
        kind=kind,
        death=death,
        order_of=order_of,
        order_rank=order_rank,
        order_at=order_at,
        order_fen=order_fen,
        order_store=order_store,
        order_online=order_online,
        order_visit=order_visit,
    )


def _shares(weights: Floats, n: int) -> Floats:
    w = np.resize(weights, n)
    return np.asarray(w / w.sum(), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class History:
    """Per person, the BG/NBD summary of purchases before ``until`` (days): frequency x (repeat
    purchases), recency t_x and age T (days since the first purchase), average repeat order value
    (yuan; 0 when x = 0). Only people who bought before ``until`` are included."""

    index: Ints
    member: Bools
    frequency: Floats
    recency: Floats
    T: Floats
    monetary: Floats


def history(chunk: Chunk, until: float) -> History:
    """The summary a model would be fitted on, computed from the true purchases (no rounding of
    times: the simulator knows them exactly)."""
    seen = chunk.buyer & (chunk.arrival + 0.002 < until)
    before = chunk.order_at < until
    repeat = before & (chunk.order_rank > 0)
    n = chunk.size
    x = np.bincount(chunk.order_of[repeat], minlength=n).astype(np.float64)
    last = np.full(n, -np.inf)
    np.maximum.at(last, chunk.order_of[before], chunk.order_at[before])
    first = chunk.arrival + 0.002
    total = np.bincount(chunk.order_of[repeat], weights=chunk.order_fen[repeat] / 100.0, minlength=n)
    monetary = np.divide(total, x, out=np.zeros(n), where=x > 0)
    recency = np.where(x > 0, last - first, 0.0)
    return History(
        index=chunk.index[seen],
        member=chunk.member[seen],
        frequency=x[seen],
        recency=recency[seen],
        T=(until - first)[seen],
        monetary=monetary[seen],
    )
