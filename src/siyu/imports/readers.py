"""Streaming readers: a table file, one row at a time, in memory that does not grow with the file.

* **CSV** is read line by line as bytes and each physical line is decoded on its own, strictly,
  before the ``csv`` module sees it. Decoding per line (rather than through a buffered text
  stream, which decodes 8 KiB ahead) is what lets an undecodable byte be reported with its exact
  line. Splitting on ``\\n`` before decoding is safe for every encoding accepted here (UTF-8 and
  the GB family never use the byte 0x0A inside a character); UTF-16/32 files are refused with a
  clear message instead. Progress is the number of bytes consumed.
* **XLSX** goes through openpyxl in read-only mode, which parses the sheet's XML as a stream.
  (It does hold the workbook's shared-strings table in memory; Excel caps a sheet at about a
  million rows anyway.) Progress is the number of rows read.

Blank rows are skipped. The header is the first non-blank row. Cells are handed on as text
(:func:`cell_text`), so the mapping parses one representation whatever the format.
"""

from __future__ import annotations

import codecs
import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import IO, Any, Protocol

csv.field_size_limit(min(sys.maxsize, 16 * 1024 * 1024))

DEFAULT_ENCODING = "utf-8"
ENCODING_HINT = "gb18030"
"""What Chinese Excel exports usually are (GBK, of which GB18030 is the superset)."""


class FileFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


class ImportFileError(Exception):
    """The file cannot be read as a table (or its header cannot be used); one line for a person."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class FileEncodingError(ImportFileError):
    """A line that is not valid in the chosen encoding; the message suggests the GB encoding."""

    def __init__(self, line: int, encoding: str, detail: str) -> None:
        self.encoding = encoding
        self.detail = detail
        super().__init__(self.message_for(f"--encoding {ENCODING_HINT}", line=line), line=line)

    def message_for(self, option: str, *, line: int | None = None) -> str:
        """The message, with ``option`` being how this caller chooses the encoding."""
        hint = (
            f"files saved by Excel on Chinese Windows are usually GBK: try {option}"
            if self.encoding.replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig")
            else f"check the file's encoding (UTF-8 is the default; {option} for GBK)"
        )
        return f"line {line or self.line} is not valid {self.encoding} ({self.detail}); {hint}"


@dataclass(slots=True)
class SourceRow:
    """One data row: where it starts in the file (1-based) and its cells as text."""

    line: int
    values: list[str]


class TableReader(Protocol):
    """What the import needs of a file: its header, its rows, and how far it has got."""

    format: FileFormat
    header: list[str]
    progress_total: int | None
    """File size in bytes (CSV) or the sheet's declared row count (XLSX; may be absent)."""
    progress_unit: str
    """``bytes`` or ``rows``."""

    def progress(self) -> int: ...

    def rows(self) -> Iterator[SourceRow]: ...

    def close(self) -> None: ...


def cell_text(value: Any) -> str:
    """A cell as the text a person sees: 12.3 (not 12.300000000000001), 13800138000 (not 1.38e10).

    Floats keep 15 significant digits, as Excel itself does, which removes binary noise such as
    ``26.910000000000004`` from computed cells; dates and times become ISO 8601.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return format(Decimal(format(value, ".15g")), "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def _is_blank(values: list[str]) -> bool:
    return not any(v.strip() for v in values)


def detect_format(head: bytes, name: str) -> FileFormat:
    """CSV or XLSX from the first bytes (and the name, for a better message on old .xls)."""
    lowered = name.lower()
    if head.startswith(b"PK\x03\x04"):
        return FileFormat.XLSX
    if head.startswith(b"\xd0\xcf\x11\xe0") or lowered.endswith(".xls"):
        raise ImportFileError(
            "old Excel .xls files (and password-protected workbooks) are not supported: "
            "open the file in Excel and save it as .xlsx or as CSV UTF-8"
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFileError(
            "the file is UTF-16 (Excel's 'Unicode Text'); save it as 'CSV UTF-8' or .xlsx instead"
        )
    if lowered.endswith((".xlsx", ".xlsm")):
        raise ImportFileError(f"{name} is not a valid .xlsx file (it is not a zip archive)")
    return FileFormat.CSV


def open_table(
    file: IO[bytes],
    *,
    name: str,
    encoding: str | None = None,
    sheet: str | None = None,
    delimiter: str | None = None,
) -> TableReader:
    """A reader positioned after the header. ``file`` must be seekable (a file or a spooled upload)."""
    head = file.read(8)
    file.seek(0)
    if not head:
        raise ImportFileError(f"{name} is empty")
    kind = detect_format(head, name)
    if kind is FileFormat.XLSX:
        if delimiter is not None:
            raise ImportFileError("a delimiter applies to CSV files only")
        return XlsxReader(file, name=name, sheet=sheet)
    if sheet is not None:
        raise ImportFileError("a sheet applies to .xlsx files only; this file is CSV")
    return CsvReader(file, name=name, encoding=encoding or DEFAULT_ENCODING, delimiter=delimiter)


def _file_size(file: IO[bytes]) -> int | None:
    try:
        position = file.tell()
        size = file.seek(0, 2)
        file.seek(position)
        return size
    except (OSError, ValueError):
        return None


class CsvReader:
    format = FileFormat.CSV
    progress_unit = "bytes"

    def __init__(self, file: IO[bytes], *, name: str, encoding: str, delimiter: str | None) -> None:
        try:
            info = codecs.lookup(encoding)
        except LookupError:
            raise ImportFileError(f"unknown encoding {encoding!r}; use utf-8 (default) or gb18030") from None
        if info.name.startswith(("utf-16", "utf-32")):
            raise ImportFileError(f"{encoding} files are not supported; save the file as 'CSV UTF-8'")
        self._utf8 = info.name in ("utf-8", "utf-8-sig")
        self._encoding = "utf-8" if self._utf8 else info.name
        self._shown_encoding = "UTF-8" if self._utf8 else encoding
        self._file = file
        self.progress_total = _file_size(file)
        self._consumed = 0
        self._physical_line = 0
        lines = self._decoded_lines()
        header_text = self._first_non_blank_line(lines, name)
        self._delimiter = delimiter or _sniff_delimiter(header_text)
        if len(self._delimiter) != 1:
            raise ImportFileError(f"the delimiter must be one character, not {self._delimiter!r}")

        def chained() -> Iterator[str]:
            yield header_text
            yield from lines

        self._reader = csv.reader(chained(), delimiter=self._delimiter)
        header = self._next_record()
        if header is None:  # pragma: no cover - the header line was seen above
            raise ImportFileError(f"{name} has no header row")
        self._header_line_offset = self._physical_line - self._reader.line_num
        self.header = [h.strip() for h in header[1]]

    def _decoded_lines(self) -> Iterator[str]:
        encoding = self._encoding
        for raw in self._file:
            self._physical_line += 1
            self._consumed += len(raw)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 1]
                detail = f"byte 0x{bad.hex()} at byte {exc.start + 1} of the line"
                raise FileEncodingError(self._physical_line, self._shown_encoding, detail) from None
            if self._physical_line == 1:
                if text.startswith("\ufeff"):
                    text = text[1:]
                elif not self._utf8 and raw.startswith(codecs.BOM_UTF8):
                    raise ImportFileError(
                        f"the file starts with a UTF-8 byte-order mark, so it is UTF-8, not "
                        f"{self._shown_encoding}: leave the encoding at its default",
                        line=1,
                    )
            yield text

    def _first_non_blank_line(self, lines: Iterator[str], name: str) -> str:
        for text in lines:
            if text.strip():
                return text
        raise ImportFileError(f"{name} has no header row (the file is empty or blank)")

    def _next_record(self) -> tuple[int, list[str]] | None:
        start = self._reader.line_num + 1
        try:
            record = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            line = self._reader.line_num + getattr(self, "_header_line_offset", 0)
            raise ImportFileError(f"line {line} is not valid CSV: {exc}", line=line) from None
        return start, record

    def progress(self) -> int:
        return self._consumed

    def rows(self) -> Iterator[SourceRow]:
        offset = self._header_line_offset
        while True:
            item = self._next_record()
            if item is None:
                return
            start, values = item
            if _is_blank(values):
                continue
            yield SourceRow(start + offset, values)

    def close(self) -> None:
        """The caller owns the file; nothing to release here."""


def _sniff_delimiter(header: str) -> str:
    """Comma unless the header line has more tabs or semicolons (tab-separated Excel exports)."""
    counts = {d: header.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


class XlsxReader:
    format = FileFormat.XLSX
    progress_unit = "rows"

    def __init__(self, file: IO[bytes], *, name: str, sheet: str | None) -> None:
        import openpyxl

        try:
            self._book = openpyxl.load_workbook(file, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises zipfile, KeyError, XML and its own errors
            raise ImportFileError(f"{name} is not a readable .xlsx workbook: {exc}".splitlines()[0]) from None
        names = self._book.sheetnames
        if sheet is not None and sheet not in names:
            self._book.close()
            raise ImportFileError(f"no sheet {sheet!r} in {name}; its sheets are: {', '.join(names)}")
        worksheet = self._book[sheet] if sheet is not None else self._book.worksheets[0]
        declared = worksheet.max_row
        # A wrong <dimension> (some exporters write A1) would cut the sheet short: read it all.
        worksheet.reset_dimensions()
        self.progress_total = declared if declared and declared > 1 else None
        self._rows = iter(worksheet.iter_rows(values_only=True))
        self._row_number = 0
        header: list[str] | None = None
        for values in self._texts():
            if not _is_blank(values):
                header = values
                break
        if header is None:
            self._book.close()
            raise ImportFileError(f"the sheet {worksheet.title!r} of {name} is empty")
        while header and not header[-1].strip():
            header.pop()
        self.header = [h.strip() for h in header]

    def _texts(self) -> Iterator[list[str]]:
        for row in self._rows:
            self._row_number += 1
            yield [cell_text(v) for v in row]

    def progress(self) -> int:
        return self._row_number

    def rows(self) -> Iterator[SourceRow]:
        for values in self._texts():
            if not _is_blank(values):
                yield SourceRow(self._row_number, values)

    def close(self) -> None:
        self._book.close()
