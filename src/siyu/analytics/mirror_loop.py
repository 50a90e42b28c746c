"""The mirror sync inside ``siyu serve``: a child process that syncs every
``SIYU_ANALYTICS_SYNC_INTERVAL`` seconds.

A process, not a thread: a sync parses and writes Parquet for seconds at a time, and in a thread
it held the server's GIL while requests waited (the payment-success decision's p99 at 100
requests/s went from 32 ms to 780 ms with the thread syncing every 5 s; bench/campaigns.py
decision). The child opens its own engine from the same URL; SQLite in WAL mode lets it read
while the server writes. The child waits on a pipe whose other end only the server holds: the
server closes it to stop the child, and a server that dies closes it too, so the child never
outlives it. (A ``multiprocessing.Event`` was tried first: a child killed by the SIGTERM that
``timeout``/systemd send the whole process group left the event's lock held, and the server hung
in ``Event.set()`` at shutdown.)
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from pathlib import Path

from siyu.config import Settings
from siyu.db import Database

log = logging.getLogger("siyu.analytics")

SNAPSHOT_EVERY_SECONDS = 60.0
"""The loop rewrites a day's member snapshot at most this often when no event, merge or erasure
arrived (stage, tier and points changes reach it within this long)."""

_CONTEXT = multiprocessing.get_context("spawn")  # no fork of a server holding threads and sockets


def _sync_forever(url: str, root: str, interval: float, stop: Connection) -> None:
    """The child's loop (top level, so the spawn start method can import it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us
    # Imported here: pyarrow costs a second of start-up that the server need not wait for.
    from siyu.analytics import mirror
    from siyu.kit.clock import utcnow

    db = Database(url)
    try:
        # The first round waits an interval too: the server finishes starting first.
        while not stop.poll(interval):  # readable when the server closed its end (or died)
            try:
                mirror.sync(db, Path(root), now=utcnow(), snapshot_every=SNAPSHOT_EVERY_SECONDS, wait=False)
            except Exception:  # the next round tries again; the state file is untouched by a failure
                log.exception("analytics mirror sync failed")
    finally:
        db.dispose()


class BackgroundSync:
    """Sync the mirror under ``root`` every ``interval`` seconds, in a child process, until stopped."""

    def __init__(self, db: Database, root: Path, interval: float) -> None:
        self.url = db.engine.url.render_as_string(hide_password=False)
        self.root, self.interval = root, interval
        self._child_end, self._server_end = _CONTEXT.Pipe(duplex=False)
        self.process = _CONTEXT.Process(
            target=_sync_forever,
            args=(self.url, str(root), interval, self._child_end),
            name="siyu-analytics-sync",
            daemon=True,
        )

    def start(self) -> None:
        self.process.start()
        self._child_end.close()  # only the child holds the reading end now

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the child to stop after the round in hand; kill it if it has not within ``timeout``."""
        self._server_end.close()  # never blocks, whatever state the child is in
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("analytics mirror sync did not stop within %.0f s: terminating it", timeout)
            self.process.terminate()
            self.process.join(5)


def embedded_sync(settings: Settings, db: Database) -> BackgroundSync | None:
    """The sync loop of ``siyu serve`` (``None`` when ``SIYU_ANALYTICS_SYNC_INTERVAL`` is 0)."""
    if settings.analytics_sync_interval <= 0:
        return None
    sync = BackgroundSync(db, settings.resolved_analytics_dir, settings.analytics_sync_interval)
    sync.start()
    return sync
