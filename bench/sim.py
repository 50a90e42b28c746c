"""Simulator throughput: generation (people/s, events/s) against a plain NumPy pass over the same
arrays, and ingestion through the real path (events/s).

    python bench/sim.py --members 200000 --ingest 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

import siyu.wiring  # noqa: F401
from siyu.db import Database
from siyu.kit.pii import IdentifierVault
from siyu.migrate import upgrade
from siyu.sim.demo import ingest_phase
from siyu.sim.events import stream
from siyu.sim.ingest import IngestTally
from siyu.sim.population import draw_chunk
from siyu.sim.world import World
from siyu.tenancy import facade as tenancy


class _Quiet:
    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--ingest", type=int, default=20_000, help="people to ingest (0: skip)")
    args = parser.parse_args()
    world = World(start=datetime(2026, 1, 1, tzinfo=UTC), members=args.members, days=180, seed=1)

    began = time.perf_counter()
    drawn = [draw_chunk(world, c) for c in range(world.chunks)]
    draw_s = time.perf_counter() - began
    began = time.perf_counter()
    anchor = 0.0
    for chunk in drawn:  # anchor: one vectorised pass over the same purchase arrays
        anchor += float(np.sum(chunk.order_fen * (chunk.order_at > 10.0)))
    anchor_s = time.perf_counter() - began
    del drawn
    began, events = time.perf_counter(), 0
    for _chunk, part in stream(world):
        events += len(part)
    gen_s = time.perf_counter() - began
    print(f"draw: {args.members / draw_s:,.0f} people/s ({draw_s:.2f} s)")
    print(
        f"events: {events:,} in {gen_s:.1f} s = {events / gen_s:,.0f} events/s, "
        f"{args.members / gen_s:,.0f} people/s"
    )
    print(
        f"anchor (NumPy pass over the purchases): {anchor_s * 1e3:.1f} ms; "
        f"generation/anchor = {gen_s / anchor_s:,.0f}×"
    )

    if args.ingest:
        small = World(start=datetime.now(UTC) - timedelta(days=180), members=args.ingest, days=180, seed=1)
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'siyu.db'}")
            upgrade(db.engine)
            with db.unit_of_work() as session:
                merchant = tenancy.create_merchant(session, name="bench")
            tally = IngestTally()
            began = time.perf_counter()
            ingest_phase(
                db,
                IdentifierVault("b" * 40),
                merchant.id,
                small,
                since=0.0,
                until=180.0,
                exposures=[],
                now=datetime.now(UTC),
                tally=tally,
                progress=_Quiet(),
                label="",
            )
            took = time.perf_counter() - began
            db.dispose()
        print(
            f"ingest (SQLite, {args.ingest:,} people): {tally.accepted:,} events in {took:.1f} s = "
            f"{tally.accepted / took:,.0f} events/s"
        )


if __name__ == "__main__":
    main()
