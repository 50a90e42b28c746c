"""A killed import loses nothing it committed, and running it again finishes the job exactly.

``siyu import orders BIG.csv`` runs as a real process on the suite's database (a SQLite file, or
the run's PostgreSQL schema), is killed with SIGKILL once a few chunks have committed — while a
chunk is in flight — and is then run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from siyu.config import Settings
from siyu.db import Database
from siyu.events.models import MemberRollup
from siyu.imports.models import ImportRun
from tests.conftest import DatabaseUnderTest
from tests.imports.conftest import Shop, write_csv

ROWS, CHUNK, INVALID_EVERY = 1200, 50, 40
PAID_AT = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)

SLOW_CHUNKS = """
import sys, time
import siyu.imports.service as service
record = service.record_chunk
def slow(*args, **kwargs):
    record(*args, **kwargs)
    time.sleep(0.05)  # inside the chunk's transaction: the kill is likely to land mid-chunk
service.record_chunk = slow
from siyu.cli.main import run
sys.argv = ["siyu", *sys.argv[1:]]
run()
"""


def big_file(path: Path, shop: Shop) -> tuple[Path, dict[str, tuple[int, str, datetime, str | None]]]:
    """Orders K00000…; every 40th has a bad amount. Returns order id → (fen, phone, paid at, store)."""
    rows: list[list[object]] = [["订单号", "手机号", "实付金额", "支付时间", "门店编码"]]
    valid: dict[str, tuple[int, str, datetime, str | None]] = {}
    for n in range(ROWS):
        order_id, phone = f"K{n:05d}", f"1390000{n % 300:04d}"
        paid_at = PAID_AT + timedelta(minutes=n)
        code = ("XH01", "JA02", "")[n % 3]
        if n % INVALID_EVERY == 7:
            rows.append([order_id, phone, "12.345", paid_at.isoformat(), code])
            continue
        fen = 100 + n * 7
        rows.append([order_id, phone, f"{fen // 100}.{fen % 100:02d}", paid_at.isoformat(), code])
        valid[order_id] = (fen, phone, paid_at, shop.stores.get(code))
    return write_csv(path, rows), valid


def committed_rows(db: Database, merchant_id: str) -> int:
    with db.reading() as session:
        value = session.execute(
            select(ImportRun.rows_read).where(ImportRun.merchant_id == merchant_id)
        ).scalar()
        return int(value or 0)


class TestKilledImport:
    def test_nothing_committed_is_lost_and_a_rerun_completes(
        self, tmp_path: Path, shop: Shop, db: Database, test_database: DatabaseUnderTest, settings: Settings
    ) -> None:
        # given
        path, valid = big_file(tmp_path / "BIG.csv", shop)
        env = {
            **os.environ,
            "SIYU_DATABASE_URL": test_database.url,
            "SIYU_DATA_DIR": str(tmp_path / "data"),
            "SIYU_SECRET_KEY": settings.resolved_secret_key(),
        }
        command = ["import", "orders", str(path), "-m", shop.merchant_id, "--chunk-size", str(CHUNK)]
        process = subprocess.Popen(
            [sys.executable, "-c", SLOW_CHUNKS, *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # when: killed once three chunks have committed
        deadline = time.monotonic() + 120
        try:
            while process.poll() is None and time.monotonic() < deadline:
                if committed_rows(db, shop.merchant_id) >= 3 * CHUNK:
                    break
                time.sleep(0.01)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            output = process.communicate(timeout=60)[0].decode(errors="replace")
        # then: it was killed part-way …
        assert process.returncode == -signal.SIGKILL, output
        done = committed_rows(db, shop.merchant_id)
        assert 3 * CHUNK <= done < ROWS
        assert done % CHUNK == 0, "chunks commit whole: the one in flight left nothing behind"
        with db.reading() as session:
            (run,) = session.execute(
                select(ImportRun).where(ImportRun.merchant_id == shop.merchant_id)
            ).scalars()
            assert run.status == "running"
        # … and every row of the committed chunks is there, intact, and nothing else is
        expected = {f"K{n:05d}" for n in range(done)} & valid.keys()
        events = shop.events()
        assert {e.event_id.removeprefix("order:") for e in events} == expected
        assert run.accepted == len(expected)
        assert run.rejected == done - len(expected)
        for event in events:
            fen, phone, paid_at, store_id = valid[event.event_id.removeprefix("order:")]
            assert (event.type, event.amount_fen, event.occurred_at, event.store_id) == (
                "order_paid",
                fen,
                paid_at,
                store_id,
            )
            assert event.member_id == shop.member_of("phone", phone)

        # when: the same command again
        rerun = subprocess.run(
            [sys.executable, "-m", "siyu.cli", *command, "--json"], env=env, capture_output=True, timeout=600
        )
        # then: the committed rows are duplicates, the rest is imported, and the total is exact
        assert rerun.returncode == 0, rerun.stderr.decode()
        summary = json.loads(rerun.stdout)
        invalid = ROWS - len(valid)
        assert (summary["rows_read"], summary["duplicates"], summary["accepted"], summary["rejected"]) == (
            ROWS,
            len(expected),
            len(valid) - len(expected),
            invalid,
        )
        assert sorted(e.event_id for e in shop.events()) == sorted(f"order:{k}" for k in valid)
        with db.reading() as session:
            spend, orders = session.execute(
                select(func.sum(MemberRollup.total_spend_fen), func.sum(MemberRollup.order_count)).where(
                    MemberRollup.merchant_id == shop.merchant_id
                )
            ).one()
        assert (spend, orders) == (sum(v[0] for v in valid.values()), len(valid))
