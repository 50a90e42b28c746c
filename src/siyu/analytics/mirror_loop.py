"""The mirror sync inside ``siyu serve``: a daemon thread that syncs every
``SIYU_ANALYTICS_SYNC_INTERVAL`` seconds (like the embedded outbox worker)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from siyu.config import Settings
from siyu.db import Database
from siyu.kit.clock import utcnow

log = logging.getLogger("siyu.analytics")

SNAPSHOT_EVERY_SECONDS = 60.0
"""The loop rewrites a day's member snapshot at most this often when no event, merge or erasure
arrived (stage, tier and points changes reach it within this long)."""


class BackgroundSync:
    """Sync the mirror under ``root`` every ``interval`` seconds until stopped."""

    def __init__(self, db: Database, root: Path, interval: float) -> None:
        self.db, self.root, self.interval = db, root, interval
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="siyu-analytics-sync", daemon=True)

    def _run(self) -> None:
        # Imported here: pyarrow costs a second of start-up that the server need not wait for.
        from siyu.analytics import mirror

        # The first round waits an interval too: the server finishes starting first.
        while not self.stop_event.wait(self.interval):
            try:
                mirror.sync(
                    self.db, self.root, now=utcnow(), snapshot_every=SNAPSHOT_EVERY_SECONDS, wait=False
                )
            except Exception:  # the next round tries again; the state file is untouched by a failure
                log.exception("analytics mirror sync failed")

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)


def embedded_sync(settings: Settings, db: Database) -> BackgroundSync | None:
    """The sync loop of ``siyu serve`` (``None`` when ``SIYU_ANALYTICS_SYNC_INTERVAL`` is 0)."""
    if settings.analytics_sync_interval <= 0:
        return None
    sync = BackgroundSync(db, settings.resolved_analytics_dir, settings.analytics_sync_interval)
    sync.start()
    return sync
