"""``member_months``: per member and local month, the days it was active, as bit masks — a
pre-aggregate of the mirror's own event files that the period figures read instead of the events.

The period's member figures (:mod:`siyu.analytics.metrics.period`) group the period and its
29-day lookback by member: at 1 M members / 30 M events that is 7.8 M events hashed into 0.8 M
groups, the dashboard's largest cost. Here each (member, month) with events is one row of six
32-bit masks, bit ``d - 1`` standing for day ``d`` of the month:

* ``active`` — any event that day; ``visit``, ``opened``, ``clicked`` — a ``visit``,
  ``message_opened``, ``message_clicked`` that day;
* ``order_days`` — at least one ``order_paid`` that day; ``multi_order`` — at least two.

Masks answer every per-member question the period figures ask for any range of days: active on
a day or in a window (a bit set), a visitor / opener / clicker (a flag bit in the range), a buyer
(``order_days`` in the range), a repeat buyer (two ``order_days`` bits in the range, or one
``multi_order`` bit). Rows of one member are **additive**: the union of several rows' events is
answered by ``bit_or`` of their masks, except "two paid orders", which is the sum of the rows'
``order_days`` bits in the range ≥ 2 or any ``multi_order`` bit — exact however the events were
split across rows. That lets two rows meet at read time: the merge map's survivor and its
merged members (keys resolved at read time, as for events), and the facts with the events they
do not cover yet.

**Coverage.** A build aggregates the events with ``received_at`` ≤ ``facts_through`` (the
merchant's events watermark minus :data:`~siyu.analytics.mirror_events.OVERLAP`: by the mirror's
own assumption no event received before that can still arrive), and readers add the events
received after it from the event files (``max_received_at`` > ``facts_through``) — the *delta*.
A sync rebuilds the months the delta's files touch once the events mirrored since the last
build exceed :data:`STALE_SHARE` of those the mirror held then (``facts_events``); a merchant
with fewer than :data:`MIN_EVENTS` events has no facts (its events are read directly).
Erasure changes no count (event files are rewritten with the same rows), compaction neither; a
rebuild of the mirror builds the facts afresh.

The store and channel filters are attributes of events, not of a member's day: a scope with
either reads the events (:func:`siyu.analytics.metrics.period.member_activity`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

import duckdb
import pyarrow as pa

from siyu.analytics import mirror_store as store
from siyu.analytics.mirror_events import OVERLAP, Writer

TABLE = "member_months"
MASKS = ("active", "visit", "opened", "clicked", "order_days", "multi_order")
"""The day-mask columns, in file order (see the module's docstring)."""
SCHEMA = pa.schema(
    [
        pa.field("member_key", pa.int32(), nullable=False),
        pa.field("month", pa.date32(), nullable=False),
        *(pa.field(mask, pa.int32(), nullable=False) for mask in MASKS),
    ]
)
MIN_EVENTS = 200_000
"""A merchant with fewer mirrored events gets no facts: its figures read the events directly
(at that size a whole period is a few tens of milliseconds)."""
STALE_SHARE = 0.05
"""Rebuild the touched months once the events mirrored since the last build exceed this share of
the events the mirror held then."""


def through(ms: store.MerchantState) -> datetime | None:
    mark = ms.facts_through
    return datetime.fromisoformat(mark) if mark else None


def delta_files(ms: store.MerchantState) -> list[str]:
    """Event files that may hold events the facts do not cover (all of them without facts)."""
    mark = through(ms)
    return sorted(
        p
        for p, meta in ms.files["events"].items()
        if mark is None or datetime.fromisoformat(meta["max_received_at"]) > mark
    )


def _month_of(path: str) -> date:
    day = date.fromisoformat(path.split("local_date=")[1][:10])
    return day.replace(day=1)


def due(ms: store.MerchantState) -> bool:
    """Whether a sync should (re)build facts now (:data:`MIN_EVENTS`, :data:`STALE_SHARE`)."""
    total = ms.rows("events")
    if total < MIN_EVENTS or ms.events_watermark is None:
        return False
    if ms.facts_through is None:
        return True
    return total - ms.facts_events > STALE_SHARE * max(1, ms.facts_events)


_AGGREGATE = """
WITH days AS (
    SELECT member_key, local_date,
           CAST(1 AS INTEGER) << (dayofmonth(local_date) - 1) AS bit,
           bool_or(type = 'visit') AS v,
           bool_or(type = 'message_opened') AS o,
           bool_or(type = 'message_clicked') AS c,
           sum(CAST(type = 'order_paid' AS INTEGER)) AS paid
    FROM read_parquet({files})
    WHERE received_at <= $through
    GROUP BY member_key, local_date
)
SELECT member_key,
       CAST(date_trunc('month', local_date) AS DATE) AS month,
       bit_or(bit) AS active,
       bit_or(CASE WHEN v THEN bit ELSE 0 END) AS visit,
       bit_or(CASE WHEN o THEN bit ELSE 0 END) AS opened,
       bit_or(CASE WHEN c THEN bit ELSE 0 END) AS clicked,
       bit_or(CASE WHEN paid >= 1 THEN bit ELSE 0 END) AS order_days,
       bit_or(CASE WHEN paid >= 2 THEN bit ELSE 0 END) AS multi_order
FROM days
GROUP BY ALL
ORDER BY month, member_key
"""


def build(w: Writer, *, months: set[date] | None = None) -> int:
    """(Re)build the facts of ``months`` (all months: ``None``) from the merchant's event files,
    covering events received up to the events watermark minus the overlap; returns rows written.

    One month at a time, so memory stays that of one month's member-days (at 1 M members /
    30 M events over a year, ~5 M events a month). Only the months that hold events received
    after the previous coverage need rebuilding: the others have no event the new coverage adds
    (:func:`build_due`)."""
    ms = w.merchant
    if ms.events_watermark is None:
        return 0
    mark = datetime.fromisoformat(ms.events_watermark) - OVERLAP
    by_month: dict[date, list[str]] = defaultdict(list)
    for path in sorted(ms.files["events"]):
        if months is None or _month_of(path) in months:
            by_month[_month_of(path)].append(path)
    old = [p for p in ms.files[TABLE] if months is None or _facts_month(p) in months]
    written = 0
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for month, files in sorted(by_month.items()):
            listed = ", ".join("'" + str((w.root / p).resolve()).replace("'", "''") + "'" for p in files)
            sql = _AGGREGATE.format(files=f"[{listed}]")
            table = con.sql(sql, params={"through": mark}).to_arrow_table().cast(SCHEMA)
            if table.num_rows:
                w.write(TABLE, w.directory(TABLE, f"month={month.isoformat()}"), table)
                written += table.num_rows
    finally:
        con.close()
    w.retire(TABLE, old)
    ms.facts_through = mark.isoformat()
    ms.facts_events = ms.rows("events")
    return written


def _facts_month(path: str) -> date:
    return date.fromisoformat(path.split("month=")[1][:10])


def build_due(w: Writer) -> int:
    """What a sync does: nothing, the touched months, or everything (first build)."""
    ms = w.merchant
    if not due(ms):
        return 0
    if ms.facts_through is None:
        return build(w)
    touched: dict[date, int] = defaultdict(int)
    for path in delta_files(ms):
        touched[_month_of(path)] += 1
    return build(w, months=set(touched))
