"""A small in-process cache of per-merchant configuration that changes rarely (time zone, stage
rules, running campaigns of a placement, their page conditions, which event types a trigger,
journey or earn rule listens to), read on hot paths such as the payment-success decision.

Correctness bounds (see docs/decisions.md, "Configuration cache"):

- **This process** sees its own changes at once: a session that writes a watched table (an ORM
  flush of one of its rows, or an ``INSERT``/``UPDATE``/``DELETE`` on it through
  ``session.execute``) bumps the cache's generation when it commits, and every entry cached under
  an older generation is stale. Until then that session reads around the cache.
- **Other processes** (another worker, the CLI) are seen within :data:`TTL_SECONDS`: no entry is
  served older than that.
- A value is stored under the generation current when its session's transaction *began*, so a
  read from a snapshot older than a change committed meanwhile is never served after it.

Statements that change a watched table without changing configuration (the budget reservation's
``UPDATE campaigns SET spent_…``) pass ``execution_options(config_neutral=True)``. Values cached
must be immutable views or plain data, never ORM rows (they outlive their session). Counters that
move with every request (a campaign's ``spent_*``, a template's stock) must not be read from here.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session

T = TypeVar("T")

TTL_SECONDS = 2.0
"""How long another process's change can go unseen (a paused campaign still offered, …)."""

WATCHED_TABLES = frozenset(
    {
        "merchants",
        "campaigns",
        "decision_settings",
        "lifecycle_rules",
        "points_rules",
    }
)

_clock = time.monotonic
"""The clock the TTL is measured with (tests move it)."""

_DIRTY = "siyu.config_dirty"
_BEGAN = "siyu.config_generation"

_lock = threading.Lock()
_generation = 0
_entries: weakref.WeakKeyDictionary[Engine, dict[Hashable, tuple[int, float, Any]]] = (
    weakref.WeakKeyDictionary()
)


def generation() -> int:
    return _generation


def invalidate() -> None:
    """Make every cached value stale (changes made outside a session, tests)."""
    global _generation
    with _lock:
        _generation += 1
        _entries.clear()


def cached(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """The value cached under ``key`` for the session's database, or ``load()`` (then cached)."""
    if session.info.get(_DIRTY):
        return load()  # this transaction changed configuration: read what it sees
    engine = session.get_bind()
    if not isinstance(engine, Engine):
        engine = engine.engine
    now = _clock()
    found = _entries.get(engine, {}).get(key)
    if found is not None and found[0] == _generation and now - found[1] < TTL_SECONDS:
        return found[2]  # type: ignore[no-any-return]
    began = session.info.get(_BEGAN, _generation) if session.in_transaction() else _generation
    value = load()
    if began == _generation:
        with _lock:
            _entries.setdefault(engine, {})[key] = (began, now, value)
    return value


def _touches(session: Session) -> bool:
    for instance in (*session.new, *session.dirty, *session.deleted):
        table = getattr(type(instance), "__tablename__", None)
        if table in WATCHED_TABLES:
            return True
    return False


@event.listens_for(Session, "after_begin")
def _on_begin(session: Session, transaction: Any, _connection: Any) -> None:
    if transaction.parent is None:
        session.info[_BEGAN] = _generation


@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, _context: Any, _instances: Any) -> None:
    if not session.info.get(_DIRTY) and _touches(session):
        session.info[_DIRTY] = True


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete) or state.session.info.get(_DIRTY):
        return
    if state.execution_options.get("config_neutral"):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in WATCHED_TABLES:
        state.session.info[_DIRTY] = True


@event.listens_for(Session, "after_transaction_end")
def _on_end(session: Session, transaction: Any) -> None:
    """The outermost transaction ended: its changes (if any) make the cache stale. A rolled-back
    change invalidates too (harmless; a savepoint's end never clears the flag)."""
    if transaction.parent is not None:
        return
    session.info.pop(_BEGAN, None)
    if session.info.pop(_DIRTY, False):
        invalidate()
