"""The rejected-rows CSV: the reason first, then the row exactly as it was in the file.

Columns: ``line``, ``reason``, ``column`` (the header of the cell at fault, if one is), then the
file's own columns. Because the importer maps columns by header and ignores unknown ones, a
merchant can fix the values in this file and import it as it is. Written as UTF-8 with a BOM so
that Excel shows Chinese text correctly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from .rows import Rejection

REJECTED_COLUMNS = ("line", "reason", "column")
ENCODING = "utf-8-sig"


def rejected_header(columns: Sequence[str]) -> list[str]:
    return [*REJECTED_COLUMNS, *columns]


def rejected_record(rejection: Rejection) -> list[str]:
    return [str(rejection.line), rejection.reason, rejection.column or "", *rejection.values]


def default_path(source: Path) -> Path:
    """``orders.csv`` → ``orders.rejected.csv`` next to it (``orders.xlsx`` likewise)."""
    return source.with_name(f"{source.stem}.rejected.csv")


class RejectedFile:
    """Written as rejections arrive (flushed per chunk); only created if a row is rejected.

    A file left by an earlier run at the same path is replaced — or removed when this run
    rejects nothing, so a stale list of errors is never mistaken for this run's.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: Sequence[str] = ()
        self.count = 0
        self.started = False
        self._handle: IO[str] | None = None

    def begin(self, columns: Sequence[str]) -> None:
        """The import has read the header and will write rows: this run owns the path now."""
        self.columns = columns
        self.started = True

    def write(self, _session: Session, _import_id: str, rejections: list[Rejection]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding=ENCODING, newline="")
            csv.writer(self._handle).writerow(rejected_header(self.columns))
        writer = csv.writer(self._handle)
        writer.writerows(rejected_record(r) for r in rejections)
        self._handle.flush()
        self.count += len(rejections)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        elif self.started and self.count == 0 and self.path.exists():
            self.path.unlink()


def csv_chunks(columns: Sequence[str], rejections: Iterable[Rejection], *, batch: int = 500) -> Iterator[str]:
    """The rejected-rows CSV as text pieces (for a streamed download); the first starts with a BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(rejected_header(columns))
    for n, rejection in enumerate(rejections, start=1):
        writer.writerow(rejected_record(rejection))
        if n % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
