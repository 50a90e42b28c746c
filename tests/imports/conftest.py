"""Helpers for import tests: files written in the test (CSV in any encoding, XLSX with openpyxl),
the import run through the facade with a rejected-rows file, and what ended up stored."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from siyu.config import Settings
from siyu.db import Database
from siyu.events.models import Event
from siyu.imports import facade
from siyu.imports.facade import ImportKind, ImportOptions, ImportSummary
from siyu.imports.rejects import RejectedFile, default_path
from siyu.kit.pii import IdentifierVault
from siyu.members.service import find_by_identity
from siyu.tenancy import facade as tenancy


def excel_time(*parts: int) -> datetime:
    """A wall-clock time as Excel stores it: without a time zone."""
    return datetime(*parts, tzinfo=UTC).replace(tzinfo=None)


def write_csv(path: Path, rows: Sequence[Sequence[object]], *, encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def write_xlsx(
    path: Path, rows: Sequence[Sequence[object]], *, sheet: str | None = None, before: int = 0
) -> Path:
    """A workbook whose first sheet is ``Notes`` when ``sheet`` names another one for the data."""
    book = openpyxl.Workbook()
    data = book.active
    assert data is not None
    if sheet is not None:
        data.title = "Notes"
        data.append(["这一页不是数据"])
        data = book.create_sheet(sheet)
    for _ in range(before):
        data.append([])
    for row in rows:
        data.append(list(row))
    book.save(path)
    return path


def read_rejected(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


@dataclass(frozen=True)
class Shop:
    """A merchant with two stores (XH01, JA02), and the vault the API and the imports use."""

    merchant_id: str
    stores: dict[str, str]
    vault: IdentifierVault
    db: Database

    def events(self, type_: str | None = None) -> list[Event]:
        with self.db.reading() as session:
            statement = select(Event).where(Event.merchant_id == self.merchant_id)
            if type_:
                statement = statement.where(Event.type == type_)
            return list(session.execute(statement.order_by(Event.event_id)).scalars())

    def member_of(self, kind: str, value: str) -> str | None:
        with self.db.reading() as session:
            return find_by_identity(session, self.vault, self.merchant_id, kind, value)


@pytest.fixture
def make_shop(db: Database, settings: Settings) -> Callable[[str], Shop]:
    def make(name: str = "一杯咖啡") -> Shop:
        with db.unit_of_work() as session:
            merchant = tenancy.create_merchant(session, name=name)
            stores = {
                code: tenancy.create_store(session, merchant.id, name=f"店{code}", code=code).id
                for code in ("XH01", "JA02")
            }
        return Shop(merchant.id, stores, IdentifierVault(settings.resolved_secret_key()), db)

    return make


@pytest.fixture
def shop(make_shop: Callable[[str], Shop]) -> Shop:
    return make_shop("一杯咖啡")


Importer = Callable[..., ImportSummary]


@pytest.fixture
def run_import(db: Database) -> Importer:
    """The facade as the CLI drives it: one unit of work per chunk, rejected rows to a CSV file."""

    def run(shop: Shop, kind: str, path: Path, *, chunk_size: int = 2000, **options: Any) -> ImportSummary:
        rejects = RejectedFile(default_path(path))
        try:
            with path.open("rb") as handle:
                return facade.import_file(
                    db.unit_of_work,
                    shop.vault,
                    shop.merchant_id,
                    ImportKind(kind),
                    handle,
                    name=path.name,
                    options=ImportOptions(chunk_size=chunk_size, **options),
                    origin="cli",
                    actor="test",
                    rejects=rejects.write,
                    rejected_file=str(rejects.path),
                    on_mapping=lambda report: rejects.begin(report.columns),
                )
        finally:
            rejects.close()

    return run
