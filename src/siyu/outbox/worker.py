"""The worker loop: ``siyu worker`` runs it in the foreground, ``siyu serve`` in a background thread.

Each round claims a batch (:func:`siyu.outbox.service.run_round`); a round that found work is
followed at once by the next, an empty one by a short sleep (``poll``), so new work is picked up
within about half a second without hammering an idle database. A failing round (the database
unreachable) is logged and retried after a growing pause, so the loop outlives outages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from siyu.config import Settings
from siyu.db import Database
from siyu.outbox.service import RetryPolicy, RoundReport, run_round, worker_name

log = logging.getLogger("siyu.outbox.worker")

MAX_ERROR_PAUSE = 30.0


def policy_of(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.outbox_max_attempts, lease=timedelta(seconds=settings.outbox_lease)
    )


class Worker:
    """Drains the outbox until stopped."""

    def __init__(
        self,
        db: Database,
        *,
        batch: int = 50,
        poll: float = 0.5,
        policy: RetryPolicy | None = None,
        name: str | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
    ) -> None:
        self.db = db
        self.batch = batch
        self.poll = poll
        self.policy = policy or RetryPolicy()
        self.name = name
        self.on_round = on_round
        self.total = RoundReport()

    def run(self, stop: threading.Event, *, once: bool = False) -> RoundReport:
        """Process rounds until ``stop`` is set (or, with ``once``, until nothing is due)."""
        name = self.name or worker_name()
        pause = self.poll
        while not stop.is_set():
            try:
                report = run_round(self.db, limit=self.batch, policy=self.policy, worker=name)
            except Exception:
                if once:
                    raise
                log.exception("outbox round failed; retrying in %.1f s", pause)
                stop.wait(pause)
                pause = min(pause * 2, MAX_ERROR_PAUSE)
                continue
            pause = self.poll
            self._add(report)
            if report.claimed:
                if self.on_round is not None:
                    self.on_round(report)
                continue
            if once:
                break
            stop.wait(self.poll)
        return self.total

    def _add(self, report: RoundReport) -> None:
        t = self.total
        t.claimed += report.claimed
        t.done += report.done
        t.retried += report.retried
        t.dead += report.dead
        t.lost += report.lost


class BackgroundWorker:
    """A :class:`Worker` in a daemon thread (the worker inside ``siyu serve``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="siyu-outbox-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(self.stop_event)
        except Exception:  # pragma: no cover - run() already survives round failures
            log.exception("the embedded outbox worker stopped")

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the loop to stop after the item in hand, and wait for it (a daemon thread: an item
        still running after ``timeout`` is reclaimed after its lease, like a crashed worker's)."""
        self.stop_event.set()
        self.thread.join(timeout)
