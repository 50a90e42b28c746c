"""The C-CARE dashboard from two mirrors of the same data set: a candidate layout vs an anchor.

    python bench/mirror_layout.py --db /tmp/an-100k.db --mirror /tmp/mirror-new --anchor /tmp/mirror-old

Both mirrors must hold the same state store's data (e.g. the anchor rebuilt by the previous
commit's code, the candidate by this one's). The dashboard (all sections, the 30 days ending on
the data set's "now") and cohort retention run on each, alternately, ``--repeat`` times; the
best of each is printed with the ratio anchor ÷ candidate, which is what a loaded, shared
machine does not distort much. The answers of both must be equal. Also prints each mirror's
event files, row groups and rows per group.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analytics import comparable, dashboard, retention
from segment_data import MERCHANT_NAME, NOW
from siyu.analytics import mirror_store as store
from siyu.analytics import service
from siyu.analytics.scope import Scope
from siyu.analytics.service import Source
from siyu.db import Database
from siyu.tenancy.models import Merchant


def layout(root: Path) -> str:
    files = groups = rows = 0
    for ms in store.load_state(root).merchants.values():
        for path in ms.files["events"]:
            meta = pq.ParquetFile(root / path).metadata
            files += 1
            groups += meta.num_row_groups
            rows += meta.num_rows
    return f"{files} event files, {groups} row groups, {rows / max(groups, 1):,.0f} rows/group"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True, help="SQLite file of bench/segment_data.py")
    parser.add_argument("--mirror", required=True, type=Path, help="the candidate mirror")
    parser.add_argument("--anchor", required=True, type=Path, help="the anchor mirror")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    database = Database(f"sqlite:///{args.db}")
    with database.reading() as session:
        merchant_id = session.execute(select(Merchant.id).where(Merchant.name == MERCHANT_NAME)).scalar_one()
    end = (NOW + timedelta(hours=8)).date()
    period = Scope(end - timedelta(days=29), end)
    half_year = Scope(end - timedelta(days=180), end)
    roots = {"candidate": args.mirror, "anchor": args.anchor}
    for name, root in roots.items():
        print(f"{name}: {root}: {layout(root)}")
    print(f"load before: {os.getloadavg()}")
    best: dict[str, dict[str, float]] = {
        n: {"dashboard": float("inf"), "cohorts": float("inf")} for n in roots
    }
    answers: dict[str, Any] = {}
    with database.reading() as session:
        for _ in range(args.repeat):
            for name, root in roots.items():
                with service.open_context(session, root, merchant_id, source=Source.MIRROR, now=NOW) as ctx:
                    started = time.perf_counter()
                    board = dashboard(ctx, period, {})
                    middle = time.perf_counter()
                    triangle = retention(ctx, half_year)
                    done = time.perf_counter()
                best[name]["dashboard"] = min(best[name]["dashboard"], middle - started)
                best[name]["cohorts"] = min(best[name]["cohorts"], done - middle)
                answers[name] = (comparable(board), triangle)
    print(f"load after: {os.getloadavg()}")
    for query in ("dashboard", "cohorts"):
        c, a = best["candidate"][query], best["anchor"][query]
        print(f"{query}: candidate {c:.3f} s, anchor {a:.3f} s, anchor ÷ candidate {a / c:.2f}×")
    same = answers["candidate"] == answers["anchor"]
    print(f"answers equal: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
