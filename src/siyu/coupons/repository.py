"""Every query of the coupons module; all filtered by ``merchant_id``.

Counters change in one conditional statement each (ARCHITECTURE rule 4): stock buckets
(``remaining - 1 WHERE remaining > 0``), claim counts (``INSERT … ON CONFLICT DO UPDATE … WHERE
claimed < cap RETURNING``), coupon status (``WHERE status = 'available'``), the template's
budget (``WHERE budget_used_fen + d <= budget_fen``). Callers check the rows affected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
from sqlalchemy import (
    CursorResult,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from siyu.coupons.models import (
    STOCK_BUCKETS,
    Coupon,
    CouponClaimCount,
    CouponCode,
    CouponRedemption,
    CouponRedemptionFailure,
    CouponStatus,
    CouponStockBucket,
    CouponTemplate,
    RedemptionStatus,
)
from siyu.db import AsyncStatements
from siyu.kit.merge import REASSIGN_CHUNK, MergeGroup, reassign, survivor_case, survivors_of
from siyu.kit.pagination import PageRequest, paginate
from siyu.kit.sql import chunked, dialect_insert, insert_ignore

TEMPLATES = cast(Table, CouponTemplate.__table__)
BUCKETS = cast(Table, CouponStockBucket.__table__)
COUPONS = cast(Table, Coupon.__table__)
COUNTS = cast(Table, CouponClaimCount.__table__)
COUNT_KEY = [COUNTS.c.merchant_id, COUNTS.c.template_id, COUNTS.c.member_id, COUNTS.c.period_key]
"""The claim counter's primary key: the conflict target of its upserts."""
CODES = cast(Table, CouponCode.__table__)
REDEMPTIONS = cast(Table, CouponRedemption.__table__)
FAILURES = cast(Table, CouponRedemptionFailure.__table__)
LIFETIME = "*"


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- templates and stock --------------------------------------------------------------------


def get_template(session: Session, merchant_id: str, template_id: str) -> CouponTemplate | None:
    return session.get(CouponTemplate, (merchant_id, template_id))


@dataclass(frozen=True, slots=True)
class IssueTerms:
    """What issuing needs of a template (read with Core: the claim path is hot)."""

    merchant_id: str
    id: str
    status: str
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    budget_fen: int | None
    budget_used_fen: int
    per_member_limit: int | None
    period: str | None
    period_limit: int | None


_ISSUE_TERMS = select(*(TEMPLATES.c[f.name] for f in fields(IssueTerms))).where(
    TEMPLATES.c.merchant_id == bindparam("merchant_id"), TEMPLATES.c.id == bindparam("template_id")
)


def issue_terms(session: Session, merchant_id: str, template_id: str) -> IssueTerms | None:
    found = session.execute(_ISSUE_TERMS, {"merchant_id": merchant_id, "template_id": template_id}).first()
    return IssueTerms(*found) if found is not None else None


def lock_template(session: Session, merchant_id: str, template_id: str) -> CouponTemplate | None:
    """The template, locked until the transaction ends (status changes, edits)."""
    statement = (
        select(CouponTemplate)
        .where(CouponTemplate.merchant_id == merchant_id, CouponTemplate.id == template_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.execute(statement).scalar_one_or_none()


def _remaining(merchant_id: Any, template_id: Any) -> Any:
    return (
        select(func.coalesce(func.sum(BUCKETS.c.remaining), 0))
        .where(BUCKETS.c.merchant_id == merchant_id, BUCKETS.c.template_id == template_id)
        .scalar_subquery()
    )


_TEMPLATE_WITH_REMAINING = select(
    *(getattr(CouponTemplate, column.key) for column in TEMPLATES.columns),
    _remaining(bindparam("merchant_id"), CouponTemplate.id),
).where(CouponTemplate.merchant_id == bindparam("merchant_id"), CouponTemplate.id == bindparam("template_id"))
"""Built once: a hot-path read (the payment-success decision's offer). Its columns as a plain row,
not an ORM object to load (the ORM's autoflush still runs first: the columns are mapped)."""


def template_with_remaining(session: Session, merchant_id: str, template_id: str) -> tuple[Any, int] | None:
    """The template's columns (a row with the attribute names of :class:`CouponTemplate`) and its
    remaining stock, read in one statement (one snapshot)."""
    row = session.execute(
        _TEMPLATE_WITH_REMAINING, {"merchant_id": merchant_id, "template_id": template_id}
    ).first()
    return None if row is None else (row, int(row[-1]))


def list_templates(
    session: Session, merchant_id: str, page: PageRequest, *, status: str | None = None
) -> list[tuple[CouponTemplate, int]]:
    statement: Select[Any] = select(CouponTemplate, _remaining(merchant_id, CouponTemplate.id)).where(
        CouponTemplate.merchant_id == merchant_id
    )
    if status is not None:
        statement = statement.where(CouponTemplate.status == status)
    return [(row[0], int(row[1])) for row in session.execute(paginate(statement, CouponTemplate.id, page))]


def templates_by_ids(session: Session, merchant_id: str, ids: Iterable[str]) -> dict[str, CouponTemplate]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    statement = select(CouponTemplate).where(
        CouponTemplate.merchant_id == merchant_id, CouponTemplate.id.in_(wanted)
    )
    return {t.id: t for t in session.execute(statement).scalars()}


def template_by_shared_code(session: Session, merchant_id: str, code: str) -> CouponTemplate | None:
    statement = select(CouponTemplate).where(
        CouponTemplate.merchant_id == merchant_id, CouponTemplate.shared_code == code
    )
    return session.execute(statement).scalar_one_or_none()


def create_buckets(session: Session, merchant_id: str, template_id: str, stock: int) -> None:
    """Split ``stock`` over the buckets (the first ``stock % n`` get one more)."""
    share, extra = divmod(stock, STOCK_BUCKETS)
    rows = [
        {
            "merchant_id": merchant_id,
            "template_id": template_id,
            "bucket": bucket,
            "remaining": share + (1 if bucket < extra else 0),
        }
        for bucket in range(STOCK_BUCKETS)
    ]
    session.execute(insert(BUCKETS), rows)


def add_stock(session: Session, merchant_id: str, template_id: str, count: int, now: datetime) -> None:
    """``count`` more coupons: the total and the buckets grow in the same transaction, each in
    one relative UPDATE (concurrent claims and additions never lose an increment)."""
    session.execute(
        update(TEMPLATES)
        .where(TEMPLATES.c.merchant_id == merchant_id, TEMPLATES.c.id == template_id)
        .values(total_stock=TEMPLATES.c.total_stock + count, updated_at=now)
    )
    share, extra = divmod(count, STOCK_BUCKETS)
    session.execute(
        update(BUCKETS)
        .where(BUCKETS.c.merchant_id == merchant_id, BUCKETS.c.template_id == template_id)
        .values(remaining=BUCKETS.c.remaining + share + case((BUCKETS.c.bucket < extra, 1), else_=0))
    )


def _take_statement(session: Session, merchant_id: str, template_id: str, *, skip_locked: bool) -> Any:
    """``UPDATE … SET remaining = remaining - 1 WHERE bucket = (SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED)``."""
    pick = (
        select(BUCKETS.c.bucket)
        .where(
            BUCKETS.c.merchant_id == merchant_id,
            BUCKETS.c.template_id == template_id,
            BUCKETS.c.remaining > 0,
        )
        .order_by(BUCKETS.c.remaining.desc(), BUCKETS.c.bucket)
        .limit(1)
    )
    if is_postgres(session):
        pick = pick.with_for_update(skip_locked=skip_locked)
    return (
        update(BUCKETS)
        .where(
            BUCKETS.c.merchant_id == merchant_id,
            BUCKETS.c.template_id == template_id,
            BUCKETS.c.bucket == pick.scalar_subquery(),
            BUCKETS.c.remaining > 0,
        )
        .values(remaining=BUCKETS.c.remaining - 1)
        .returning(BUCKETS.c.bucket)
    )


def take_stock(session: Session, merchant_id: str, template_id: str) -> bool:
    """Take one coupon from a bucket with stock left that no other claim holds; ``False`` if none.

    PostgreSQL: a bucket another claim holds is skipped (``FOR UPDATE SKIP LOCKED``), so claims
    spread over the buckets instead of queueing on one row. SQLite: writers are serialised by
    ``BEGIN IMMEDIATE``; any bucket will do. ``False`` does not mean sold out: see
    :func:`has_stock`.
    """
    statement = _take_statement(session, merchant_id, template_id, skip_locked=True)
    return session.execute(statement).first() is not None


def take_stock_many(session: Session, merchant_id: str, template_id: str, wanted: int) -> int:
    """Take up to ``wanted`` coupons from the buckets for a batch (campaign fan-out); how many
    were taken (fewer only when the stock ran out).

    The buckets are read, then each one drawn from is decremented by a conditional relative
    ``UPDATE … SET remaining = remaining - k WHERE remaining >= k``, so stock never goes below
    zero whatever runs at the same time. PostgreSQL locks the buckets (``FOR UPDATE``, in bucket
    order) for the read: a batch runs in the background and may wait for the single claims in
    flight (which never wait for a bucket: :func:`take_stock` skips locked ones). SQLite
    serialises writers. A bucket changed between the read and its ``UPDATE`` is read again.
    """
    left = max(wanted, 0)
    for _ in range(8):
        if left == 0:
            break
        read = (
            select(BUCKETS.c.bucket, BUCKETS.c.remaining)
            .where(
                BUCKETS.c.merchant_id == merchant_id,
                BUCKETS.c.template_id == template_id,
                BUCKETS.c.remaining > 0,
            )
            .order_by(BUCKETS.c.bucket)
        )
        if is_postgres(session):
            read = read.with_for_update()
        buckets = sorted(session.execute(read).all(), key=lambda r: (-int(r[1]), int(r[0])))
        if not buckets:
            break
        for bucket, remaining in buckets:
            take = min(left, int(remaining))
            if take == 0:
                break
            result = session.execute(
                update(BUCKETS)
                .where(
                    BUCKETS.c.merchant_id == merchant_id,
                    BUCKETS.c.template_id == template_id,
                    BUCKETS.c.bucket == bucket,
                    BUCKETS.c.remaining >= take,
                )
                .values(remaining=BUCKETS.c.remaining - take)
            )
            if _rowcount(result) == 1:
                left -= take
    return max(wanted, 0) - left


def has_stock(session: Session, merchant_id: str, template_id: str) -> bool:
    """Some bucket has committed stock left (possibly held by claims still in flight)."""
    statement = (
        select(BUCKETS.c.bucket)
        .where(
            BUCKETS.c.merchant_id == merchant_id,
            BUCKETS.c.template_id == template_id,
            BUCKETS.c.remaining > 0,
        )
        .limit(1)
    )
    return session.execute(statement).first() is not None


def _claim_sql(caps: int) -> Any:
    values = ", ".join(f"(:m, :t, :member, :k{i}, 1, :c{i})" for i in range(caps))
    counted = (
        "counted AS (INSERT INTO coupon_claim_counts"
        " (merchant_id, template_id, member_id, period_key, claimed, cap)"
        f" VALUES {values}"
        " ON CONFLICT (merchant_id, template_id, member_id, period_key)"
        " DO UPDATE SET claimed = coupon_claim_counts.claimed + 1, cap = excluded.cap"
        " WHERE coupon_claim_counts.claimed < excluded.cap RETURNING period_key), "
        if caps
        else ""
    )
    gate = f" AND (SELECT count(*) FROM counted) = {caps}" if caps else ""
    keys = "ARRAY(SELECT period_key::text FROM counted)" if caps else "ARRAY[]::text[]"
    return text(
        f"WITH {counted}"
        "taken AS (UPDATE coupon_stock_buckets SET remaining = remaining - 1"
        f" WHERE merchant_id = :m AND template_id = :t AND remaining > 0{gate}"
        " AND bucket = (SELECT bucket FROM coupon_stock_buckets"
        " WHERE merchant_id = :m AND template_id = :t AND remaining > 0"
        " ORDER BY remaining DESC, bucket LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING bucket), "
        "inserted AS (INSERT INTO coupons (merchant_id, id, template_id, member_id, issued_to, code,"
        " status, source, source_ref, valid_from, valid_until, issued_at, updated_at)"
        " SELECT :m, :id, :t, :member, :member, :code, :status, :source, NULL, :valid_from,"
        " :valid_until, :now, :now WHERE EXISTS (SELECT 1 FROM taken) RETURNING id) "
        f"SELECT {keys}, (SELECT count(*) FROM inserted)"
    )


_CLAIM_SQL = {caps: _claim_sql(caps) for caps in range(3)}


_FAST_CLAIM = text(
    "WITH tpl AS (SELECT per_member_limit, valid_days, valid_from, valid_until FROM coupon_templates"
    " WHERE merchant_id = :m AND id = :t AND status = 'active' AND period IS NULL"
    " AND (valid_until IS NULL OR valid_until > :now)"
    " AND (budget_fen IS NULL OR budget_used_fen < budget_fen)), "
    "counted AS (INSERT INTO coupon_claim_counts"
    " (merchant_id, template_id, member_id, period_key, claimed, cap)"
    " SELECT :m, :t, :member, '*', 1, per_member_limit FROM tpl WHERE per_member_limit IS NOT NULL"
    " ON CONFLICT (merchant_id, template_id, member_id, period_key)"
    " DO UPDATE SET claimed = coupon_claim_counts.claimed + 1, cap = excluded.cap"
    " WHERE coupon_claim_counts.claimed < excluded.cap RETURNING period_key), "
    "taken AS (UPDATE coupon_stock_buckets SET remaining = remaining - 1"
    " WHERE merchant_id = :m AND template_id = :t AND remaining > 0"
    " AND EXISTS (SELECT 1 FROM tpl WHERE per_member_limit IS NULL OR EXISTS (SELECT 1 FROM counted))"
    " AND bucket = (SELECT bucket FROM coupon_stock_buckets"
    " WHERE merchant_id = :m AND template_id = :t AND remaining > 0"
    " ORDER BY remaining DESC, bucket LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING bucket), "
    "inserted AS (INSERT INTO coupons (merchant_id, id, template_id, member_id, issued_to, code,"
    " status, source, source_ref, valid_from, valid_until, issued_at, updated_at)"
    " SELECT :m, :id, :t, :member, :member, :code, :status, :source, NULL,"
    " CASE WHEN valid_days IS NULL THEN COALESCE(valid_from, :now) ELSE :now END,"
    " CASE WHEN valid_days IS NULL THEN valid_until"
    " ELSE LEAST(:now + make_interval(hours => valid_days * 24),"
    " COALESCE(valid_until, 'infinity'::timestamptz)) END, :now, :now"
    " FROM tpl WHERE EXISTS (SELECT 1 FROM taken) RETURNING valid_from, valid_until) "
    "SELECT (SELECT count(*) FROM tpl), (SELECT per_member_limit FROM tpl), (SELECT count(*) FROM counted),"
    " (SELECT valid_from FROM inserted), (SELECT valid_until FROM inserted)"
).columns()


@dataclass(frozen=True, slots=True)
class FastClaim:
    found: bool
    """The template is active, in its window, within budget and without a period limit."""
    limit: int | None
    counted: bool
    valid_from: datetime | None
    valid_until: datetime | None
    """Set when the coupon was inserted."""


def claim_fast(session: Session, row: dict[str, Any]) -> FastClaim:
    """PostgreSQL, the hot path: the template's terms, the lifetime claim count, one coupon from a
    bucket (``SKIP LOCKED``) and the coupon row, in ONE statement (data-modifying CTEs, each gated
    on the one before). When nothing was inserted the caller undoes the count and takes the
    stepwise path, which gives the precise refusal."""
    params = {k: row[k] for k in ("id", "code", "status", "source")}
    params.update(m=row["merchant_id"], t=row["template_id"], member=row["member_id"], now=row["issued_at"])
    found, limit, counted, valid_from, valid_until = session.execute(_FAST_CLAIM, params).one()
    return FastClaim(
        bool(found),
        limit,
        bool(counted),
        as_aware(valid_from),
        as_aware(valid_until),
    )


def as_aware(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def claim_in_one_statement(
    session: Session, row: dict[str, Any], caps: Sequence[tuple[str, int]]
) -> tuple[set[str], bool]:
    """PostgreSQL: count the claim, take one from a bucket (``SKIP LOCKED``) and insert the coupon
    in ONE statement (data-modifying CTEs, each gated on the one before through ``RETURNING``).

    Answers (the period keys counted, whether the coupon was inserted). When it was not, the
    caller undoes the counts and either refuses (a limit) or takes the stepwise path (no free
    bucket: sold out, or every bucket with stock held by claims in flight).
    """
    params: dict[str, Any] = {
        "m": row["merchant_id"],
        "t": row["template_id"],
        "member": row["member_id"],
        "id": row["id"],
        "code": row["code"],
        "status": row["status"],
        "source": row["source"],
        "valid_from": row["valid_from"],
        "valid_until": row["valid_until"],
        "now": row["issued_at"],
    }
    for index, (key, cap) in enumerate(caps):
        params[f"k{index}"], params[f"c{index}"] = key, cap
    keys, inserted = session.execute(_CLAIM_SQL[len(caps)], params).one()
    return {str(k) for k in keys}, bool(inserted)


_CLAIM_ALONE = """\
WITH mem AS MATERIALIZED (
  SELECT COALESCE(s.id, m.id) AS id, COALESCE(s.status, m.status) AS status
  FROM members AS m LEFT JOIN members AS s ON s.merchant_id = m.merchant_id AND s.id = m.merged_into_id
  WHERE m.merchant_id = %(m)s AND m.id = %(member)s AND (m.merged_into_id IS NULL OR s.id IS NOT NULL)),
tpl AS MATERIALIZED (
  SELECT per_member_limit, valid_days, valid_from, valid_until FROM coupon_templates
  WHERE merchant_id = %(m)s AND id = %(t)s AND status = 'active' AND period IS NULL
  AND (valid_until IS NULL OR valid_until > %(now)s) AND (budget_fen IS NULL OR budget_used_fen < budget_fen)
  AND EXISTS (SELECT 1 FROM mem WHERE status <> 'erased')),
pick AS MATERIALIZED (
  SELECT bucket FROM coupon_stock_buckets
  WHERE merchant_id = %(m)s AND template_id = %(t)s AND remaining > 0 AND EXISTS (SELECT 1 FROM tpl)
  ORDER BY remaining DESC, bucket LIMIT 1 FOR UPDATE SKIP LOCKED),
counted AS (
  INSERT INTO coupon_claim_counts (merchant_id, template_id, member_id, period_key, claimed, cap)
  SELECT %(m)s, %(t)s, mem.id, '*', 1, tpl.per_member_limit FROM tpl, mem
  WHERE tpl.per_member_limit IS NOT NULL AND EXISTS (SELECT 1 FROM pick)
  ON CONFLICT (merchant_id, template_id, member_id, period_key)
  DO UPDATE SET claimed = coupon_claim_counts.claimed + 1, cap = excluded.cap
  WHERE coupon_claim_counts.claimed < excluded.cap RETURNING 1),
taken AS (
  UPDATE coupon_stock_buckets SET remaining = remaining - 1
  WHERE merchant_id = %(m)s AND template_id = %(t)s AND bucket = (SELECT bucket FROM pick) AND remaining > 0
  AND EXISTS (SELECT 1 FROM tpl WHERE per_member_limit IS NULL OR EXISTS (SELECT 1 FROM counted))
  RETURNING bucket),
inserted AS (
  INSERT INTO coupons (merchant_id, id, template_id, member_id, issued_to, code, status, source,
    source_ref, valid_from, valid_until, issued_at, updated_at)
  SELECT %(m)s, %(id)s, %(t)s, mem.id, mem.id, %(code)s, 'available', %(source)s, NULL,
    CASE WHEN valid_days IS NULL THEN COALESCE(valid_from, %(now)s) ELSE %(now)s END,
    CASE WHEN valid_days IS NULL THEN valid_until
    ELSE LEAST(%(now)s + make_interval(hours => valid_days * 24),
      COALESCE(valid_until, 'infinity'::timestamptz)) END,
    %(now)s, %(now)s
  FROM tpl, mem WHERE EXISTS (SELECT 1 FROM taken) RETURNING member_id, valid_from, valid_until)
SELECT (SELECT count(*) FROM pick), (SELECT per_member_limit FROM tpl), (SELECT id FROM mem),
  i.member_id, i.valid_from, i.valid_until,
  CAST(CASE WHEN (SELECT count(*) FROM counted) > (SELECT count(*) FROM inserted)
  THEN 'siyu: a claim counted without a coupon' END AS integer)
FROM (SELECT 1) AS one LEFT JOIN inserted AS i ON true"""


PREPARE_EXPLICITLY_ONLY = 1 << 30
"""A psycopg ``prepare_threshold`` no query reaches: only ``prepare=True`` prepares."""


@dataclass(frozen=True, slots=True)
class LoneClaim:
    """What :func:`claim_alone` did: a coupon issued (``member_id``, validity) or nothing."""

    picked: bool
    """A stock bucket was free (so nothing issued with ``picked`` means the limit stopped it)."""
    limit: int | None
    owner: str | None
    """The member claiming (a merged member's survivor)."""
    member_id: str | None
    valid_from: datetime | None
    valid_until: datetime | None


def claim_alone(engine: Engine, params: dict[str, Any]) -> LoneClaim | None:
    """PostgreSQL, the API's hot path: a whole claim as ONE statement in its own transaction
    (autocommit) on a pooled connection, outside any ORM session — one round trip, row locks held
    only while the statement runs.

    The statement resolves the member (following a merge, refusing an erased one), re-reads the
    template (active, in its window, within budget, no period limit), picks a stock bucket no one
    holds (``SKIP LOCKED``), counts the claim against the lifetime limit, takes one from the
    bucket and inserts the coupon, each gated on the one before. The bucket is *picked* before
    the count, so a statement that issues nothing wrote nothing (a count without a coupon aborts
    the whole statement). ``params``: ``m``, ``t``, ``member``, ``id``, ``code``, ``source``,
    ``now``. ``None`` if the guard aborted it (the caller takes the transactional path).
    """
    pooled = engine.raw_connection()
    try:
        connection = pooled.driver_connection
        assert connection is not None
        connection.autocommit = True
        # Prepared on each pooled connection (the engine disables psycopg's automatic preparing):
        # planning the statement costs more PostgreSQL time than running it (measured 0.9 ms
        # unprepared, 0.36 ms prepared, one client); every step is a primary-key look-up.
        connection.prepare_threshold = PREPARE_EXPLICITLY_ONLY
        try:
            row = connection.execute(_CLAIM_ALONE, params, prepare=True).fetchone()
        except psycopg.Error as exc:
            if connection.broken:
                pooled.invalidate(exc)
            _driver_error(exc, params)
            return None
        finally:
            connection.prepare_threshold = None
            if not connection.closed:
                connection.autocommit = False
    finally:
        pooled.close()
    return _lone_claim(row)


async def claim_alone_async(statements: AsyncStatements, params: dict[str, Any]) -> LoneClaim | None:
    """:func:`claim_alone` from the event loop, on one of ``statements``' connections."""
    try:
        row = await statements.fetchone(_CLAIM_ALONE, params)
    except psycopg.Error as exc:
        _driver_error(exc, params)
        return None
    return _lone_claim(row)


def _driver_error(exc: psycopg.Error, params: dict[str, Any]) -> None:
    """Raise a driver error of the claim statement as the rest of the app sees errors; return
    when it was the statement's guard (the caller answers ``None``: the transactional path); a code collision
    as SQLAlchemy's ``IntegrityError`` (the API's 409); a lost or busy connection as its
    ``OperationalError`` (503 or 500); anything else as it came."""
    if isinstance(exc, psycopg.errors.InvalidTextRepresentation):
        return None
    if isinstance(exc, psycopg.errors.IntegrityError):
        raise IntegrityError(_CLAIM_ALONE, params, exc) from exc
    if isinstance(exc, psycopg.OperationalError):
        raise OperationalError(_CLAIM_ALONE, params, exc) from exc
    raise exc


def _lone_claim(row: Any) -> LoneClaim:
    assert row is not None
    picked, limit, owner, member_id, valid_from, valid_until, _ = row
    return LoneClaim(bool(picked), limit, owner, member_id, as_aware(valid_from), as_aware(valid_until))


# --- claim counters ---------------------------------------------------------------------------


def bump_counts(
    session: Session, merchant_id: str, template_id: str, member_id: str, caps: Sequence[tuple[str, int]]
) -> set[str]:
    """Count one claim in each ``(period_key, cap)``, each only while below its cap (one statement);
    answers the period keys counted."""
    return bump_counts_many(session, merchant_id, template_id, [member_id], caps).get(member_id, set())


def bump_counts_many(
    session: Session,
    merchant_id: str,
    template_id: str,
    member_ids: Sequence[str],
    caps: Sequence[tuple[str, int]],
) -> dict[str, set[str]]:
    """:func:`bump_counts` for many members (each at most once: one statement may not update a
    row twice), in multi-row statements; answers the period keys counted per member."""
    assert len(set(member_ids)) == len(member_ids), "a member twice in one bump_counts_many"
    counted: dict[str, set[str]] = {}
    if not caps:
        return counted
    for part in chunked(list(member_ids), max(1, 2_000 // len(caps))):
        rows = [
            {
                "merchant_id": merchant_id,
                "template_id": template_id,
                "member_id": member_id,
                "period_key": key,
                "claimed": 1,
                "cap": cap,
            }
            for member_id in part
            for key, cap in caps
        ]
        statement = dialect_insert(session.get_bind().dialect.name, COUNTS).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=COUNT_KEY,
            set_={"claimed": COUNTS.c.claimed + 1, "cap": statement.excluded.cap},
            where=COUNTS.c.claimed < statement.excluded.cap,
        ).returning(COUNTS.c.member_id, COUNTS.c.period_key)
        for member_id, key in session.execute(statement):
            counted.setdefault(str(member_id), set()).add(str(key))
    return counted


def unbump_counts_many(
    session: Session, merchant_id: str, template_id: str, counted: dict[str, set[str]]
) -> None:
    """:func:`unbump_counts` for many members: one ``UPDATE`` per distinct set of keys."""
    by_keys: dict[tuple[str, ...], list[str]] = {}
    for member_id, counted_keys in counted.items():
        if counted_keys:
            by_keys.setdefault(tuple(sorted(counted_keys)), []).append(member_id)
    for keys, member_ids in by_keys.items():
        for part in chunked(sorted(member_ids), 1_000):
            session.execute(
                update(COUNTS)
                .where(
                    COUNTS.c.merchant_id == merchant_id,
                    COUNTS.c.template_id == template_id,
                    COUNTS.c.member_id.in_(part),
                    COUNTS.c.period_key.in_(keys),
                    COUNTS.c.claimed > 0,
                )
                .values(claimed=COUNTS.c.claimed - 1)
            )


def unbump_counts(
    session: Session, merchant_id: str, template_id: str, member_id: str, keys: Iterable[str]
) -> None:
    """Undo :func:`bump_counts` for ``keys`` (a refused claim, in the same transaction)."""
    unbump_counts_many(session, merchant_id, template_id, {member_id: set(keys)})


def counts_of(session: Session, merchant_id: str, member_id: str) -> list[CouponClaimCount]:
    statement = select(CouponClaimCount).where(
        CouponClaimCount.merchant_id == merchant_id, CouponClaimCount.member_id == member_id
    )
    return list(session.execute(statement).scalars())


# --- coupons ----------------------------------------------------------------------------------


def insert_coupon(session: Session, row: dict[str, Any]) -> None:
    session.execute(insert(COUPONS), [row])


def insert_coupon_once(session: Session, row: dict[str, Any]) -> bool:
    """Insert unless the (template, member, source, source_ref) key exists; ``True`` if inserted."""
    return bool(insert_ignore(session, COUPONS, [row], returning=(COUPONS.c.id,)))


def find_issued(
    session: Session, merchant_id: str, template_id: str, member_id: str, source: str, source_ref: str
) -> Coupon | None:
    statement = select(Coupon).where(
        Coupon.merchant_id == merchant_id,
        Coupon.template_id == template_id,
        Coupon.issued_to == member_id,
        Coupon.source == source,
        Coupon.source_ref == source_ref,
    )
    return session.execute(statement).scalar_one_or_none()


def insert_coupons_once(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """:func:`insert_coupon_once` for many rows (one multi-row statement per slice); the ids
    really inserted."""
    inserted: set[str] = set()
    for part in chunked(list(rows), 500):
        inserted.update(str(r[0]) for r in insert_ignore(session, COUPONS, part, returning=(COUPONS.c.id,)))
    return inserted


def find_issued_many(
    session: Session, merchant_id: str, template_id: str, source: str, source_refs: Iterable[str]
) -> dict[tuple[str, str], Coupon]:
    """The coupons of a template already issued under these source refs, by (issued_to, source_ref)."""
    found: dict[tuple[str, str], Coupon] = {}
    for part in chunked(sorted(set(source_refs)), 1_000):
        statement = select(Coupon).where(
            Coupon.merchant_id == merchant_id,
            Coupon.template_id == template_id,
            Coupon.source == source,
            Coupon.source_ref.in_(part),
        )
        for coupon in session.execute(statement).scalars():
            found[(coupon.issued_to, str(coupon.source_ref))] = coupon
    return found


def delete_coupons(session: Session, merchant_id: str, coupon_ids: Iterable[str]) -> None:
    for part in chunked(sorted(set(coupon_ids)), 1_000):
        session.execute(delete(COUPONS).where(COUPONS.c.merchant_id == merchant_id, COUPONS.c.id.in_(part)))


def delete_coupon(session: Session, merchant_id: str, coupon_id: str) -> None:
    session.execute(delete(COUPONS).where(COUPONS.c.merchant_id == merchant_id, COUPONS.c.id == coupon_id))


def get_coupon(session: Session, merchant_id: str, coupon_id: str) -> Coupon | None:
    return session.get(Coupon, (merchant_id, coupon_id), populate_existing=True)


def coupons_by_codes(session: Session, merchant_id: str, codes: Iterable[str]) -> dict[str, Coupon]:
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    statement = (
        select(Coupon)
        .where(Coupon.merchant_id == merchant_id, Coupon.code.in_(wanted))
        .execution_options(populate_existing=True)
    )
    return {c.code: c for c in session.execute(statement).scalars()}


def coupons_by_ids(session: Session, merchant_id: str, ids: Iterable[str]) -> dict[str, Coupon]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    statement = (
        select(Coupon)
        .where(Coupon.merchant_id == merchant_id, Coupon.id.in_(wanted))
        .execution_options(populate_existing=True)
    )
    return {c.id: c for c in session.execute(statement).scalars()}


def list_member_coupons(
    session: Session, merchant_id: str, member_id: str, page: PageRequest, *, status: str | None = None
) -> list[Coupon]:
    statement: Select[Any] = select(Coupon).where(
        Coupon.merchant_id == merchant_id, Coupon.member_id == member_id
    )
    if status is not None:
        statement = statement.where(Coupon.status == status)
    return list(session.execute(paginate(statement, Coupon.id, page)).scalars())


def latest_member_coupons(session: Session, merchant_id: str, member_id: str, limit: int) -> list[Coupon]:
    statement = (
        select(Coupon)
        .where(Coupon.merchant_id == merchant_id, Coupon.member_id == member_id)
        .order_by(Coupon.id.desc())
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def count_coupons(session: Session, merchant_id: str, template_id: str) -> int:
    statement = select(func.count()).where(
        Coupon.merchant_id == merchant_id, Coupon.template_id == template_id
    )
    return int(session.execute(statement).scalar_one())


def mark_redeemed(
    session: Session, merchant_id: str, coupon_id: str, redemption_id: str, at: datetime, now: datetime
) -> bool:
    """``available`` → ``redeemed``; ``False`` if it was not available (someone else redeemed it)."""
    result = session.execute(
        update(COUPONS)
        .where(
            COUPONS.c.merchant_id == merchant_id,
            COUPONS.c.id == coupon_id,
            COUPONS.c.status == CouponStatus.AVAILABLE.value,
        )
        .values(
            status=CouponStatus.REDEEMED.value, redemption_id=redemption_id, redeemed_at=at, updated_at=now
        )
    )
    return _rowcount(result) == 1


def restore_coupon(
    session: Session, merchant_id: str, coupon_id: str, redemption_id: str, now: datetime
) -> None:
    """``redeemed`` (by this redemption) → ``available`` if still valid, else ``expired``."""
    session.execute(
        update(COUPONS)
        .where(
            COUPONS.c.merchant_id == merchant_id,
            COUPONS.c.id == coupon_id,
            COUPONS.c.status == CouponStatus.REDEEMED.value,
            COUPONS.c.redemption_id == redemption_id,
        )
        .values(
            status=case(
                (COUPONS.c.valid_until > now, CouponStatus.AVAILABLE.value), else_=CouponStatus.EXPIRED.value
            ),
            redemption_id=None,
            redeemed_at=None,
            updated_at=now,
        )
    )


def expire(session: Session, merchant_id: str, now: datetime, limit: int) -> int:
    """Up to ``limit`` available coupons whose validity ended → ``expired``; answers how many."""
    due = (
        select(COUPONS.c.id)
        .where(
            COUPONS.c.merchant_id == merchant_id,
            COUPONS.c.status == CouponStatus.AVAILABLE.value,
            COUPONS.c.valid_until <= now,
        )
        .limit(limit)
    )
    ids = [str(r[0]) for r in session.execute(due)]
    if not ids:
        return 0
    result = session.execute(
        update(COUPONS)
        .where(
            COUPONS.c.merchant_id == merchant_id,
            COUPONS.c.id.in_(ids),
            COUPONS.c.status == CouponStatus.AVAILABLE.value,
        )
        .values(status=CouponStatus.EXPIRED.value, updated_at=now)
    )
    return _rowcount(result)


# --- budget -----------------------------------------------------------------------------------


def spend_budget(
    session: Session, merchant_id: str, template_id: str, fen: int, count: int, now: datetime
) -> bool:
    """Add a redemption's discount to the template's used budget, only if it stays within it."""
    result = session.execute(
        update(TEMPLATES)
        .where(
            TEMPLATES.c.merchant_id == merchant_id,
            TEMPLATES.c.id == template_id,
            or_(
                TEMPLATES.c.budget_fen.is_(None), TEMPLATES.c.budget_used_fen + fen <= TEMPLATES.c.budget_fen
            ),
        )
        .values(
            budget_used_fen=TEMPLATES.c.budget_used_fen + fen,
            redeemed_count=TEMPLATES.c.redeemed_count + count,
            updated_at=now,
        )
    )
    return _rowcount(result) == 1


def refund_budget(
    session: Session, merchant_id: str, template_id: str, fen: int, count: int, now: datetime
) -> None:
    session.execute(
        update(TEMPLATES)
        .where(TEMPLATES.c.merchant_id == merchant_id, TEMPLATES.c.id == template_id)
        .values(
            budget_used_fen=TEMPLATES.c.budget_used_fen - fen,
            redeemed_count=TEMPLATES.c.redeemed_count - count,
            updated_at=now,
        )
    )


def set_budget(
    session: Session, merchant_id: str, template_id: str, budget_fen: int | None, now: datetime
) -> bool:
    """A new budget, only if not below what is already used."""
    criteria = [TEMPLATES.c.merchant_id == merchant_id, TEMPLATES.c.id == template_id]
    if budget_fen is not None:
        criteria.append(TEMPLATES.c.budget_used_fen <= budget_fen)
    result = session.execute(update(TEMPLATES).where(*criteria).values(budget_fen=budget_fen, updated_at=now))
    return _rowcount(result) == 1


def set_status(
    session: Session, merchant_id: str, template_id: str, to: str, allowed_from: Sequence[str], now: datetime
) -> bool:
    result = session.execute(
        update(TEMPLATES)
        .where(
            TEMPLATES.c.merchant_id == merchant_id,
            TEMPLATES.c.id == template_id,
            TEMPLATES.c.status.in_(list(allowed_from)),
        )
        .values(status=to, updated_at=now)
    )
    return _rowcount(result) == 1


# --- promo codes ------------------------------------------------------------------------------


def insert_codes(session: Session, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert new codes, skipping any that already exist; answers the codes that went in."""
    return [str(r[0]) for r in insert_ignore(session, CODES, rows, returning=(CODES.c.code,))]


def count_codes(session: Session, merchant_id: str, template_id: str) -> int:
    statement = select(func.count()).where(
        CouponCode.merchant_id == merchant_id, CouponCode.template_id == template_id
    )
    return int(session.execute(statement).scalar_one())


def list_codes(session: Session, merchant_id: str, template_id: str, page: PageRequest) -> list[CouponCode]:
    statement: Select[Any] = select(CouponCode).where(
        CouponCode.merchant_id == merchant_id, CouponCode.template_id == template_id
    )
    return list(session.execute(paginate(statement, CouponCode.code, page)).scalars())


def get_code(session: Session, merchant_id: str, code: str) -> CouponCode | None:
    return session.get(CouponCode, (merchant_id, code))


def use_code(session: Session, merchant_id: str, code: str, coupon_id: str, now: datetime) -> bool:
    """Mark a unique promo code claimed, only if it was not (one conditional UPDATE)."""
    result = session.execute(
        update(CODES)
        .where(CODES.c.merchant_id == merchant_id, CODES.c.code == code, CODES.c.coupon_id.is_(None))
        .values(coupon_id=coupon_id, claimed_at=now)
    )
    return _rowcount(result) == 1


# --- redemptions ------------------------------------------------------------------------------


def redemption_by_order(session: Session, merchant_id: str, order_id: str) -> CouponRedemption | None:
    statement = (
        select(CouponRedemption)
        .where(CouponRedemption.merchant_id == merchant_id, CouponRedemption.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    return session.execute(statement).scalar_one_or_none()


def insert_redemption(session: Session, row: dict[str, Any]) -> bool:
    """Insert unless the order already has a redemption (a concurrent one waits, then skips)."""
    return bool(insert_ignore(session, REDEMPTIONS, [row], returning=(REDEMPTIONS.c.id,)))


def mark_reversed(session: Session, merchant_id: str, redemption_id: str, now: datetime) -> bool:
    result = session.execute(
        update(REDEMPTIONS)
        .where(
            REDEMPTIONS.c.merchant_id == merchant_id,
            REDEMPTIONS.c.id == redemption_id,
            REDEMPTIONS.c.status == RedemptionStatus.REDEEMED.value,
        )
        .values(status=RedemptionStatus.REVERSED.value, reversed_at=now)
    )
    return _rowcount(result) == 1


def record_failures(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    insert_ignore(session, FAILURES, rows)


def redemptions_of(session: Session, merchant_id: str, member_id: str) -> list[CouponRedemption]:
    statement = (
        select(CouponRedemption)
        .where(CouponRedemption.merchant_id == merchant_id, CouponRedemption.member_id == member_id)
        .order_by(CouponRedemption.id)
    )
    return list(session.execute(statement).scalars())


# --- merge and erasure ------------------------------------------------------------------------


def move_member_rows(session: Session, merchant_id: str, groups: Sequence[MergeGroup]) -> None:
    """Coupons, redemptions and failed attempts of the merged members → the survivor; claim counts
    combined by sum (one INSERT … SELECT … ON CONFLICT DO UPDATE), then the merged ones deleted."""
    for table in (COUPONS, REDEMPTIONS, FAILURES):
        reassign(session, table, merchant_id, groups)
    survivor_of = survivors_of(groups)
    for chunk in chunked(sorted(survivor_of), REASSIGN_CHUNK):
        survivor = survivor_case(COUNTS.c.member_id, survivor_of, chunk)
        combined = (
            select(
                COUNTS.c.merchant_id,
                COUNTS.c.template_id,
                survivor.label("member_id"),
                COUNTS.c.period_key,
                func.sum(COUNTS.c.claimed).label("claimed"),
                func.max(COUNTS.c.cap).label("cap"),
            )
            .where(COUNTS.c.merchant_id == merchant_id, COUNTS.c.member_id.in_(chunk))
            .group_by(COUNTS.c.merchant_id, COUNTS.c.template_id, survivor, COUNTS.c.period_key)
        )
        statement = dialect_insert(session.get_bind().dialect.name, COUNTS).from_select(
            ["merchant_id", "template_id", "member_id", "period_key", "claimed", "cap"], combined
        )
        statement = statement.on_conflict_do_update(
            index_elements=COUNT_KEY,
            set_={"claimed": COUNTS.c.claimed + statement.excluded.claimed},
        )
        session.execute(statement)
        session.execute(
            delete(COUNTS).where(COUNTS.c.merchant_id == merchant_id, COUNTS.c.member_id.in_(chunk))
        )


def void_member_coupons(session: Session, merchant_id: str, member_id: str, now: datetime) -> None:
    """Erasure: available coupons become ``void``; every coupon loses its free-text reference."""
    session.execute(
        update(COUPONS)
        .where(
            COUPONS.c.merchant_id == merchant_id,
            COUPONS.c.member_id == member_id,
            COUPONS.c.status == CouponStatus.AVAILABLE.value,
        )
        .values(status=CouponStatus.VOID.value, updated_at=now)
    )
    session.execute(
        update(COUPONS)
        .where(and_(COUPONS.c.merchant_id == merchant_id, COUPONS.c.member_id == member_id))
        .values(source_ref=None)
    )
    session.execute(
        delete(COUNTS).where(COUNTS.c.merchant_id == merchant_id, COUNTS.c.member_id == member_id)
    )
