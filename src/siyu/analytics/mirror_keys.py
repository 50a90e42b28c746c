"""The mirror's integer member keys: one dense ``INTEGER`` per member id of a merchant.

Every mirrored row that names a member (events, merge map, member snapshots, stage ledger) also
carries its ``member_key``, and every DuckDB statement groups and joins by the key: hashing a
4-byte integer costs a fraction of hashing a 30-character id, and grouping by member is what
the dashboard's statements spend their time on (docs/analytics-layout.md, "member keys").

The dictionary is append-only Parquet, ``member_keys/merchant_id=…/part-….parquet``
(``member_id``, ``member_key``): a key, once given, never changes or goes away (merges resolve
through the merge map, which maps keys too; an erased member keeps its key — it is not a
personal identifier). Keys are 0, 1, 2, … in the order the sync first met the id; a rebuild
numbers them afresh (the answers do not depend on the numbering).

Looking ids up is done by DuckDB: the distinct ids of a batch are joined with the dictionary's
files as they are on disk. Nothing is held in Python memory between calls, so the cost of a
merchant with tens of millions of members is a scan of its dictionary per call, not a dict of
that size in the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from siyu.analytics import mirror_store as store

if TYPE_CHECKING:
    from siyu.analytics.mirror_events import Writer

MAX_KEY = 2**31 - 1
"""Keys are ``INTEGER``: a merchant may have up to this many member ids."""


class MemberKeys:
    """The key dictionary of the merchant a :class:`Writer` writes; new ids get new keys,
    written at once as a new dictionary part (visible to readers with the sync's state file)."""

    def __init__(self, w: Writer) -> None:
        self.w = w
        self._db: duckdb.DuckDBPyConnection | None = None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def of(self, ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The key of each id (``int32``, in order; ``None`` stays ``None``), giving new ids
        the next free keys."""
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks() if ids.num_chunks else pa.array([], pa.string())
        distinct = pc.drop_null(pc.unique(ids))
        if len(distinct) == 0:
            return pa.nulls(len(ids), pa.int32())
        keys = self._known(distinct)
        missing = pc.is_null(keys)
        if pc.any(missing).as_py():
            keys = self._assign(distinct, keys, missing)
        return pc.take(keys, pc.index_in(ids, value_set=distinct))

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._db is None:
            self._db = duckdb.connect()
        return self._db

    def _known(self, distinct: pa.Array) -> pa.Array:
        """Each of ``distinct``'s keys from the dictionary on disk (``None``: none yet)."""
        files = sorted(self.w.merchant.files["member_keys"])
        if not files:
            return pa.nulls(len(distinct), pa.int32())
        db = self._connection()
        wanted = pa.table({"i": pa.array(range(len(distinct)), pa.int64()), "member_id": distinct})
        db.register("wanted", wanted)
        try:
            paths = ", ".join("'" + str(self.w.root / p).replace("'", "''") + "'" for p in files)
            found = db.sql(
                f"SELECT k.member_key FROM wanted w LEFT JOIN read_parquet([{paths}]) k"
                " ON k.member_id = w.member_id ORDER BY w.i"
            ).to_arrow_table()
        finally:
            db.unregister("wanted")
        return found.column("member_key").combine_chunks().cast(pa.int32())

    def _assign(self, distinct: pa.Array, keys: pa.Array, missing: pa.Array) -> pa.Array:
        new_ids = distinct.filter(missing)
        first = self.w.merchant.next_member_key
        last = first + len(new_ids) - 1
        if last > MAX_KEY:
            raise OverflowError(f"merchant {self.w.merchant_id}: more than {MAX_KEY + 1} member ids")
        new_keys = pa.array(range(first, last + 1), pa.int32())
        self.w.write(
            "member_keys",
            self.w.directory("member_keys"),
            pa.Table.from_arrays([new_ids, new_keys], schema=store.KEYS_SCHEMA),
        )
        self.w.merchant.next_member_key = last + 1
        # fill the gaps in order: the i-th missing position gets the i-th new key
        filled = pc.cumulative_sum(pc.cast(missing, pa.int32()))
        return pc.if_else(missing, pc.add(pc.subtract(filled, 1), first).cast(pa.int32()), keys)


def with_key(
    table: pa.Table, keys: MemberKeys, column: str = "member_id", name: str = "member_key"
) -> pa.Table:
    """``table`` with the key of ``column`` appended as ``name``."""
    return table.append_column(pa.field(name, pa.int32()), keys.of(table.column(column)))


def member_ids(root: Path, merchant_id: str) -> dict[int, str]:
    """Key → member id of a merchant's mirrored members (to show a mirror relation's
    ``member_id`` keys as ids; reads the whole dictionary)."""
    ms = store.load_state(root).merchants.get(merchant_id)
    if ms is None:
        return {}
    table = store.read_parquet(root, list(ms.files["member_keys"]), store.KEYS_SCHEMA)
    keys, ids = table.column("member_key").to_pylist(), table.column("member_id").to_pylist()
    return dict(zip(keys, ids, strict=True))
