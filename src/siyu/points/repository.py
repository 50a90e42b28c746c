"""Every query of the points module; all filtered by ``merchant_id``.

Balances change only through :func:`add_to_balances` / :func:`take_from_balance` — relative,
conditional statements — and only after :func:`lock_accounts` has locked the member's account
row, which serialises every ledger write of one member (spends, reversals, expiry, merges).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from siyu.kit.bulk import execute_many
from siyu.kit.merge import MergeGroup, reassign, survivors_of
from siyu.kit.pagination import PageRequest, paginate
from siyu.kit.sql import chunked, dialect_insert, in_list, insert_ignore
from siyu.points.models import (
    EntryKind,
    GoodsVoucher,
    MallExchange,
    MallItem,
    MallMemberCount,
    PointsAccount,
    PointsEntry,
    PointsLot,
    PointsRule,
    PointsSettings,
)

CHUNK = 500
ACCOUNTS = cast(Table, PointsAccount.__table__)
ENTRIES = cast(Table, PointsEntry.__table__)
LOTS = cast(Table, PointsLot.__table__)
COUNTS = cast(Table, MallMemberCount.__table__)


# ---------------------------------------------------------------- accounts


def lock_accounts(
    session: Session, merchant_id: str, member_ids: Iterable[str], now: datetime
) -> dict[str, int]:
    """Each member's balance, the account row created if missing and locked until the end.

    Rows are locked in member order, so writers on overlapping members queue rather than
    deadlock. SQLite needs no row locks: a write transaction holds the whole database.
    """
    wanted = sorted(set(member_ids))
    found: dict[str, int] = {}
    for chunk in chunked(wanted, CHUNK):
        insert_ignore(
            session,
            ACCOUNTS,
            [{"merchant_id": merchant_id, "member_id": m, "balance": 0, "updated_at": now} for m in chunk],
        )
        params = {"merchant_id": merchant_id, "member_ids": list(chunk)}
        found.update({m: int(b) for m, b in session.execute(_LOCK_ACCOUNTS, params).all()})
    return found


_LOCK_ACCOUNTS = (
    select(PointsAccount.member_id, PointsAccount.balance)
    .where(
        PointsAccount.merchant_id == bindparam("merchant_id"), in_list(PointsAccount.member_id, "member_ids")
    )
    .order_by(PointsAccount.member_id)
    .with_for_update()
)


def add_to_balances(session: Session, merchant_id: str, deltas: Mapping[str, int], now: datetime) -> None:
    """``balance = balance + delta`` per member, one statement for all.

    On PostgreSQL one ``UPDATE … FROM unnest(members, deltas)``: an ``executemany`` of one
    ``UPDATE`` per member was 19 µs per ingested event of ``bench/ingest.py`` (a paid order in
    40 % of them), the largest statement of the points listener. The accounts are already locked
    (:func:`lock_accounts`), so the order rows are updated in does not matter."""
    changed = sorted((member_id, delta) for member_id, delta in deltas.items() if delta)
    if not changed:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            _ADD_TO_BALANCES_PG,
            (now, [m for m, _ in changed], [d for _, d in changed], merchant_id),
        )
        return
    statement = (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.merchant_id == merchant_id, ACCOUNTS.c.member_id == bindparam("m"))
        .values(balance=ACCOUNTS.c.balance + bindparam("d"), updated_at=now)
    )
    connection.execute(statement, [{"m": m, "d": d} for m, d in changed])


_ADD_TO_BALANCES_PG = (
    f"UPDATE {ACCOUNTS.name} AS a SET balance = a.balance + d.delta, updated_at = %s"
    " FROM unnest(%b::text[], %b::int8[]) AS d(member_id, delta)"  # binary arrays: see kit.bulk
    " WHERE a.merchant_id = %s AND a.member_id = d.member_id"
)


def take_from_balance(
    session: Session, merchant_id: str, member_id: str, points: int, now: datetime, *, covered: bool
) -> int | None:
    """``balance = balance - points`` (only if the balance covers it, when ``covered``): the new balance."""
    statement = (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.merchant_id == merchant_id, ACCOUNTS.c.member_id == member_id)
        .values(balance=ACCOUNTS.c.balance - points, updated_at=now)
        .returning(ACCOUNTS.c.balance)
    )
    if covered:
        statement = statement.where(ACCOUNTS.c.balance >= points)
    value = session.execute(statement).scalar_one_or_none()
    return None if value is None else int(value)


def balance_of(session: Session, merchant_id: str, member_id: str) -> int:
    statement = select(PointsAccount.balance).where(
        PointsAccount.merchant_id == merchant_id, PointsAccount.member_id == member_id
    )
    return int(session.execute(statement).scalar_one_or_none() or 0)


def delete_accounts(session: Session, merchant_id: str, member_ids: Sequence[str]) -> None:
    session.execute(
        delete(PointsAccount).where(
            PointsAccount.merchant_id == merchant_id, PointsAccount.member_id.in_(member_ids)
        )
    )


# ---------------------------------------------------------------- entries and lots


def entries_by_key(session: Session, merchant_id: str, keys: Iterable[str]) -> dict[str, PointsEntry]:
    found: dict[str, PointsEntry] = {}
    for chunk in chunked(sorted(set(keys)), CHUNK):
        params = {"merchant_id": merchant_id, "keys": list(chunk)}
        found.update({e.key: e for e in session.execute(_ENTRIES_BY_KEY, params).scalars()})
    return found


_ENTRIES_BY_KEY = select(PointsEntry).where(
    PointsEntry.merchant_id == bindparam("merchant_id"), in_list(PointsEntry.key, "keys")
)


def order_entries(session: Session, merchant_id: str, order_ids: Iterable[str]) -> list[PointsEntry]:
    """The earn and reverse entries of these orders, oldest first."""
    found: list[PointsEntry] = []
    for chunk in chunked(sorted(set(order_ids)), CHUNK):
        statement = (
            select(PointsEntry)
            .where(
                PointsEntry.merchant_id == merchant_id,
                PointsEntry.order_id.in_(chunk),
                PointsEntry.kind.in_([EntryKind.EARN.value, EntryKind.REVERSE.value]),
            )
            .order_by(PointsEntry.id)
        )
        found.extend(session.execute(statement).scalars())
    return found


def action_times(
    session: Session,
    merchant_id: str,
    member_ids: Sequence[str],
    types: Sequence[str],
    since: datetime,
    until: datetime,
) -> list[tuple[str, str, datetime]]:
    """``(member, action type, at)`` of action earnings in ``[since, until)`` (daily caps)."""
    found: list[tuple[str, str, datetime]] = []
    for chunk in chunked(sorted(set(member_ids)), CHUNK):
        statement = select(PointsEntry.member_id, PointsEntry.action_type, PointsEntry.at).where(
            PointsEntry.merchant_id == merchant_id,
            PointsEntry.member_id.in_(chunk),
            PointsEntry.action_type.in_(types),
            PointsEntry.kind == EntryKind.EARN.value,
            PointsEntry.at >= since,
            PointsEntry.at < until,
        )
        found.extend((m, str(t), a) for m, t, a in session.execute(statement).all())
    return found


def add_entries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    _insert_at_driver_speed(session, ENTRIES, rows)


def add_lots(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    _insert_at_driver_speed(session, LOTS, rows)


def _insert_at_driver_speed(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain inserts through :func:`siyu.kit.bulk.execute_many`, one statement per column set
    (an earning batch writes thousands of entries and lots: SQLAlchemy's executemany spent more
    time building their parameters than the database spent writing them)."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_columns[tuple(row)].append(row)
    for part in by_columns.values():
        execute_many(session, table, f"points.{table.name}.insert", lambda _dialect: insert(table), part)


def open_lots(
    session: Session, merchant_id: str, member_id: str, *, due_by: datetime | None = None
) -> list[tuple[str, int, datetime | None]]:
    """``(lot id, remaining, expires_at)`` of the member's lots with points left, first-expiring-first."""
    statement = (
        select(PointsLot.id, PointsLot.remaining, PointsLot.expires_at)
        .where(
            PointsLot.merchant_id == merchant_id,
            PointsLot.member_id == member_id,
            PointsLot.remaining > 0,
        )
        .order_by(PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.id)
        .with_for_update()
    )
    if due_by is not None:
        statement = statement.where(PointsLot.expires_at <= due_by)
    return [(i, int(r), e) for i, r, e in session.execute(statement).all()]


def take_from_lots(session: Session, merchant_id: str, takes: Sequence[tuple[str, int]]) -> int:
    """``remaining = remaining - n`` per lot, never below zero; the number of lots changed."""
    rows = [{"lot": lot_id, "n": n} for lot_id, n in takes if n > 0]
    if not rows:
        return 0
    statement = (
        update(LOTS)
        .where(
            LOTS.c.merchant_id == merchant_id,
            LOTS.c.id == bindparam("lot"),
            LOTS.c.remaining >= bindparam("n"),
        )
        .values(remaining=LOTS.c.remaining - bindparam("n"))
    )
    result = session.connection().execute(statement, rows)
    return int(result.rowcount)


def due_lot_members(session: Session, merchant_id: str, now: datetime, limit: int) -> list[str]:
    """Members with lots past expiry (at most ``limit`` lots looked at)."""
    statement = (
        select(PointsLot.member_id)
        .where(PointsLot.merchant_id == merchant_id, PointsLot.expires_at <= now, PointsLot.remaining > 0)
        .order_by(PointsLot.expires_at, PointsLot.id)
        .limit(limit)
    )
    return sorted(set(session.execute(statement).scalars()))


def lots_of(session: Session, merchant_id: str, member_id: str) -> list[PointsLot]:
    statement = (
        select(PointsLot)
        .where(
            PointsLot.merchant_id == merchant_id, PointsLot.member_id == member_id, PointsLot.remaining > 0
        )
        .order_by(PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.id)
    )
    return list(session.execute(statement).scalars())


def list_entries(session: Session, merchant_id: str, member_id: str, page: PageRequest) -> list[PointsEntry]:
    """Newest first would break id-cursor paging; entries come oldest first, like every list."""
    statement = select(PointsEntry).where(
        PointsEntry.merchant_id == merchant_id, PointsEntry.member_id == member_id
    )
    return list(session.execute(paginate(statement, PointsEntry.id, page)).scalars())


def recent_entries(session: Session, merchant_id: str, member_id: str, limit: int) -> list[PointsEntry]:
    statement = (
        select(PointsEntry)
        .where(PointsEntry.merchant_id == merchant_id, PointsEntry.member_id == member_id)
        .order_by(PointsEntry.id.desc())
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def all_entries(session: Session, merchant_id: str, member_id: str) -> list[PointsEntry]:
    statement = (
        select(PointsEntry)
        .where(PointsEntry.merchant_id == merchant_id, PointsEntry.member_id == member_id)
        .order_by(PointsEntry.id)
    )
    return list(session.execute(statement).scalars())


# ---------------------------------------------------------------- liability


def outstanding_by_expiry(session: Session, merchant_id: str) -> list[tuple[datetime | None, int]]:
    statement = (
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(PointsLot.merchant_id == merchant_id, PointsLot.remaining > 0)
        .group_by(PointsLot.expires_at)
    )
    return [(e, int(n)) for e, n in session.execute(statement).all()]


def balance_totals(session: Session, merchant_id: str) -> tuple[int, int, int]:
    """``(sum of positive balances, sum of negative balances, members with points)``."""
    positive = func.coalesce(func.sum(PointsAccount.balance).filter(PointsAccount.balance > 0), 0)
    negative = func.coalesce(func.sum(PointsAccount.balance).filter(PointsAccount.balance < 0), 0)
    members = func.count().filter(PointsAccount.balance > 0)
    statement = select(positive, negative, members).where(PointsAccount.merchant_id == merchant_id)
    p, n, m = session.execute(statement).one()
    return int(p), int(n), int(m)


def shortfall_total(session: Session, merchant_id: str) -> int:
    statement = select(func.coalesce(func.sum(PointsEntry.shortfall), 0)).where(
        PointsEntry.merchant_id == merchant_id, PointsEntry.shortfall > 0
    )
    return int(session.execute(statement).scalar_one())


# ---------------------------------------------------------------- settings and rules


def get_settings(session: Session, merchant_id: str) -> PointsSettings | None:
    return session.get(PointsSettings, merchant_id)


def list_rules(session: Session, merchant_id: str) -> list[PointsRule]:
    statement = select(PointsRule).where(PointsRule.merchant_id == merchant_id).order_by(PointsRule.id)
    return list(session.execute(statement).scalars())


def get_rule(session: Session, merchant_id: str, rule_id: str) -> PointsRule | None:
    return session.get(PointsRule, (merchant_id, rule_id))


def rule_by_type(session: Session, merchant_id: str, event_type: str) -> PointsRule | None:
    statement = select(PointsRule).where(
        PointsRule.merchant_id == merchant_id, PointsRule.event_type == event_type
    )
    return session.execute(statement).scalar_one_or_none()


# ---------------------------------------------------------------- mall


def get_item(session: Session, merchant_id: str, item_id: str) -> MallItem | None:
    return session.get(MallItem, (merchant_id, item_id))


def list_items(session: Session, merchant_id: str, page: PageRequest) -> list[MallItem]:
    statement = select(MallItem).where(MallItem.merchant_id == merchant_id)
    return list(session.execute(paginate(statement, MallItem.id, page)).scalars())


def take_stock(session: Session, merchant_id: str, item_id: str, now: datetime) -> bool:
    """``stock = stock - 1`` if any is left (one conditional statement)."""
    statement = (
        update(MallItem)
        .where(MallItem.merchant_id == merchant_id, MallItem.id == item_id, MallItem.stock > 0)
        .values(stock=MallItem.stock - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def count_exchange(
    session: Session, merchant_id: str, item_id: str, member_id: str, limit: int | None
) -> bool:
    """Count one more exchange of the item by the member, only while under ``limit``."""
    if limit is not None and limit < 1:
        return False
    statement = dialect_insert(session.get_bind().dialect.name, COUNTS).values(
        merchant_id=merchant_id, item_id=item_id, member_id=member_id, n=1
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[COUNTS.c.merchant_id, COUNTS.c.item_id, COUNTS.c.member_id],
        set_={"n": COUNTS.c.n + 1},
        where=None if limit is None else COUNTS.c.n < limit,
    )
    return session.execute(upsert.returning(COUNTS.c.n)).scalar_one_or_none() is not None


def exchange_by_key(session: Session, merchant_id: str, key: str) -> MallExchange | None:
    statement = select(MallExchange).where(MallExchange.merchant_id == merchant_id, MallExchange.key == key)
    return session.execute(statement).scalar_one_or_none()


def vouchers_of(session: Session, merchant_id: str, member_id: str, page: PageRequest) -> list[GoodsVoucher]:
    statement = select(GoodsVoucher).where(
        GoodsVoucher.merchant_id == merchant_id, GoodsVoucher.member_id == member_id
    )
    return list(session.execute(paginate(statement, GoodsVoucher.id, page)).scalars())


def voucher_by_code(session: Session, merchant_id: str, code: str) -> GoodsVoucher | None:
    statement = select(GoodsVoucher).where(GoodsVoucher.merchant_id == merchant_id, GoodsVoucher.code == code)
    return session.execute(statement).scalar_one_or_none()


def use_voucher(session: Session, merchant_id: str, code: str, now: datetime, by: str) -> bool:
    """Mark an issued voucher used (one conditional statement: never used twice)."""
    statement = (
        update(GoodsVoucher)
        .where(
            GoodsVoucher.merchant_id == merchant_id,
            GoodsVoucher.code == code,
            GoodsVoucher.status == "issued",
        )
        .values(status="used", used_at=now, used_by=by[:200])
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def exchanges_of(session: Session, merchant_id: str, member_id: str) -> list[MallExchange]:
    statement = (
        select(MallExchange)
        .where(MallExchange.merchant_id == merchant_id, MallExchange.member_id == member_id)
        .order_by(MallExchange.id)
    )
    return list(session.execute(statement).scalars())


def all_vouchers(session: Session, merchant_id: str, member_id: str) -> list[GoodsVoucher]:
    statement = (
        select(GoodsVoucher)
        .where(GoodsVoucher.merchant_id == merchant_id, GoodsVoucher.member_id == member_id)
        .order_by(GoodsVoucher.id)
    )
    return list(session.execute(statement).scalars())


# ---------------------------------------------------------------- merge and erasure


def move_member_rows(session: Session, merchant_id: str, groups: Sequence[MergeGroup]) -> None:
    """Entries, lots, exchanges and vouchers of the merged members now belong to the survivor."""
    for model in (PointsEntry, PointsLot, MallExchange, GoodsVoucher):
        reassign(session, model, merchant_id, groups, synchronize=False)


def move_counts(session: Session, merchant_id: str, groups: Sequence[MergeGroup]) -> None:
    """Per-member exchange counts add up on the survivor."""
    survivor_of = survivors_of(groups)
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for chunk in chunked(sorted(survivor_of), CHUNK):
        mine = and_(MallMemberCount.merchant_id == merchant_id, MallMemberCount.member_id.in_(chunk))
        statement = select(MallMemberCount.member_id, MallMemberCount.item_id, MallMemberCount.n).where(mine)
        for member_id, item, n in session.execute(statement).all():
            sums[(survivor_of[member_id], item)] += int(n)
        session.execute(delete(MallMemberCount).where(mine))
    if not sums:
        return
    insert_ignore(
        session,
        COUNTS,
        [{"merchant_id": merchant_id, "item_id": i, "member_id": m, "n": 0} for m, i in sorted(sums)],
    )
    statement_add = (
        update(COUNTS)
        .where(
            COUNTS.c.merchant_id == merchant_id,
            COUNTS.c.item_id == bindparam("i"),
            COUNTS.c.member_id == bindparam("m"),
        )
        .values(n=COUNTS.c.n + bindparam("d"))
    )
    session.connection().execute(
        statement_add, [{"i": i, "m": m, "d": n} for (m, i), n in sorted(sums.items())]
    )


def open_lot_sums(session: Session, merchant_id: str, member_ids: Sequence[str]) -> dict[str, int]:
    """Points left in each member's open lots (the lots locked, as :func:`open_lots` locks them)."""
    held: dict[str, int] = defaultdict(int)
    for chunk in chunked(sorted(member_ids), CHUNK):
        statement = (
            select(PointsLot.member_id, PointsLot.remaining)
            .where(
                PointsLot.merchant_id == merchant_id,
                PointsLot.member_id.in_(chunk),
                PointsLot.remaining > 0,
            )
            .order_by(PointsLot.member_id, PointsLot.id)
            .with_for_update()
        )
        for member_id, remaining in session.execute(statement).all():
            held[member_id] += int(remaining)
    return dict(held)


def delete_member_rows(session: Session, merchant_id: str, member_id: str) -> None:
    """Erasure: the member's ledger, lots, account and counters go."""
    for model in (PointsLot, PointsEntry, MallMemberCount, PointsAccount):
        session.execute(
            delete(model)
            .where(model.merchant_id == merchant_id, model.member_id == member_id)
            .execution_options(synchronize_session=False)
        )


def add_stock(session: Session, merchant_id: str, item_id: str, n: int, now: datetime) -> bool:
    """``stock = stock + n``, never below zero (one conditional statement)."""
    statement = (
        update(MallItem)
        .where(MallItem.merchant_id == merchant_id, MallItem.id == item_id, MallItem.stock + n >= 0)
        .values(stock=MallItem.stock + n, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]
