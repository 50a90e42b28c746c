"""API shapes of imports."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RejectedRowOut(BaseModel):
    line: int = Field(description="line of the file (CSV) or row of the sheet (XLSX), 1-based")
    reason: str
    column: str | None = Field(description="header of the cell at fault, when one is")
    values: list[str] = Field(description="the row's cells as they were in the file")


class ImportOut(BaseModel):
    id: str
    kind: str = Field(description="members or orders")
    status: str = Field(description="running, completed or failed")
    file_name: str
    file_format: str = Field(description="csv or xlsx")
    rows_read: int
    accepted: int
    duplicates: int = Field(description="rows imported before (same event ids): changed nothing")
    rejected: int
    columns: list[str] = Field(description="the file's header")
    mapping: dict[str, str] = Field(description="field → column header, as used")
    ignored_columns: list[str]
    error: str | None = None
    origin: str = Field(description="api or cli")
    started_at: datetime
    finished_at: datetime | None = None
    rejected_rows: list[RejectedRowOut] = Field(
        default_factory=list, description="the first rejected rows (all of them: `rejected_rows_url`)"
    )
    rejected_rows_url: str | None = Field(
        default=None, description="CSV of every rejected row (uploads only; kept 7 days)"
    )
