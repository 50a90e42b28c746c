"""References the database does not enforce, checked on demand.

The tables written on every ingested event declare their references to members and merchants
with :func:`siyu.db.unenforced` instead of foreign keys (see its docstring for the measured
cost). :func:`orphans` counts, for each declared reference, the rows whose parent row is missing:
``siyu db check`` runs it, and the ingestion, merge and erasure tests assert it finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Table, and_, exists, func, select

from siyu.db import Base, Reference


@dataclass(frozen=True, slots=True)
class Orphans:
    table: str
    columns: tuple[str, ...]
    parent: str
    rows: int
    example: tuple[str, ...]
    """The referencing columns' values of one such row."""

    def describe(self) -> str:
        cols = ", ".join(self.columns)
        shown = ", ".join(self.example)
        return f"{self.table}({cols}) → {self.parent}: {self.rows:,} rows without a parent, e.g. ({shown})"


def references() -> Iterator[tuple[Table, Reference]]:
    """Every declared reference, table by table in name order."""
    import siyu.all_models  # noqa: F401  (every table registered)

    for name in sorted(Base.metadata.tables):
        table = Base.metadata.tables[name]
        for reference in table.info.get("references", ()):
            yield table, reference


def orphans(connection: Connection, *, progress: Callable[[str], None] | None = None) -> list[Orphans]:
    """The declared references with rows whose parent is missing (empty: all hold)."""
    found: list[Orphans] = []
    for table, (columns, parent_name, parent_columns) in references():
        if progress:
            progress(table.name)
        parent = Base.metadata.tables[parent_name]
        matches = and_(*(parent.c[p] == table.c[c] for c, p in zip(columns, parent_columns, strict=True)))
        present = and_(*(table.c[c].is_not(None) for c in columns))  # no reference is no orphan
        missing = and_(present, ~exists().where(matches))
        count = connection.execute(select(func.count()).select_from(table).where(missing)).scalar_one()
        if count:
            row = connection.execute(select(*(table.c[c] for c in columns)).where(missing).limit(1)).one()
            found.append(Orphans(table.name, columns, parent_name, int(count), tuple(str(v) for v in row)))
    return found
