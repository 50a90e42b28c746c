"""`siyu demo` end to end, against an anchor of the same size measured in the same run.

    python bench/demo.py [--members 50000] [--days 180] [--repeat 1]

* **demo**: the command as a user runs it (``python -m siyu.cli demo --no-serve --data-dir <new
  directory>``) in a subprocess: wall clock from start to exit, and each step's time as its
  progress bar printed it.
* **anchor**: the same world's events (every person, the whole history, no campaign answers)
  drawn by the simulator in this process and written into a plain SQLite table with one driver
  ``executemany`` and one commit per 2,000 rows: generation plus the cheapest durable write of
  the same data, i.e. what the demo would cost with no product in between. The VM's speed drifts
  ~2× over a day (docs/development.md); the ratio demo ÷ anchor does not.

Runs alternate (anchor, demo, anchor, demo …); the best of each is reported. Prints its figures;
bench/RESULTS.md keeps the latest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from siyu.sim.demo import Generator
from siyu.sim.world import World

console = Console()
STEP = re.compile(r"^\s*(\S.*?)\s+━+\s+\S+\s+(\d+):(\d\d):(\d\d)\s*$")


def anchor(members: int, days: int, seed: int, folder: Path) -> tuple[float, int]:
    """Seconds to draw the world's events and write them plainly; the number of events."""
    started = time.perf_counter()
    world = World(start=datetime.now(UTC) - timedelta(days=days), members=members, days=days, seed=seed)
    connection = sqlite3.connect(folder / "anchor.db")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, type TEXT, occurred_at TEXT, identities TEXT,"
        " properties TEXT)"
    )
    generator = Generator(ahead=0)
    written = 0
    for _size, events in generator.chunks(world, since=0.0, until=float(days), exposures=[]):
        for start in range(0, len(events), 2_000):
            rows = [
                (
                    e["event_id"],
                    e["type"],
                    e["occurred_at"],
                    json.dumps(e["identities"]),
                    json.dumps(e.get("properties") or {}, ensure_ascii=False),
                )
                for e in events[start : start + 2_000]
            ]
            connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
            connection.commit()
            written += len(rows)
    connection.close()
    return time.perf_counter() - started, written


def demo(members: int, days: int, seed: int, folder: Path) -> tuple[float, dict[str, float], str]:
    """Wall seconds of ``siyu demo --no-serve``, its steps' seconds, and its summary line."""
    data_dir = folder / "demo"
    command = [sys.executable, "-m", "siyu.cli", "demo", "--no-serve", "--data-dir", str(data_dir)]
    command += ["--members", str(members), "--days", str(days), "--seed", str(seed)]
    environment = {**os.environ, "COLUMNS": "160"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"siyu demo failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    steps: dict[str, float] = {}
    for line in done.stdout.splitlines():
        found = STEP.match(line)
        if found and found.group(1) != "done":
            h, m, s = (int(found.group(n)) for n in (2, 3, 4))
            steps[found.group(1)] = h * 3600 + m * 60 + s
    summary = next((line.strip() for line in done.stdout.splitlines() if line.startswith("Built in")), "")
    return elapsed, steps, summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    anchors: list[float] = []
    demos: list[tuple[float, dict[str, float], str]] = []
    events = 0
    for n in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="siyu-bench-demo-") as folder:
            seconds, events = anchor(args.members, args.days, args.seed, Path(folder))
            anchors.append(seconds)
            console.print(
                f"[{n + 1}] anchor {seconds:.1f} s ({events:,} events), load {os.getloadavg()[0]:.1f}"
            )
        with tempfile.TemporaryDirectory(prefix="siyu-bench-demo-") as folder:
            demos.append(demo(args.members, args.days, args.seed, Path(folder)))
            console.print(f"[{n + 1}] demo {demos[-1][0]:.1f} s, load {os.getloadavg()[0]:.1f}")
    best_anchor = min(anchors)
    best = min(demos, key=lambda d: d[0])
    table = Table(title=f"siyu demo --members {args.members:,} --days {args.days} (best of {args.repeat})")
    table.add_column("")
    table.add_column("s", justify="right")
    for step, seconds in best[1].items():
        table.add_row(step, f"{seconds:.0f}")
    table.add_row("[b]demo, wall clock[/b]", f"{best[0]:.1f}")
    table.add_row(f"anchor: {events:,} events drawn and written plainly", f"{best_anchor:.1f}")
    table.add_row("[b]ratio demo ÷ anchor[/b]", f"{best[0] / best_anchor:.2f}")
    console.print(table)
    console.print(best[2])


if __name__ == "__main__":
    main()
