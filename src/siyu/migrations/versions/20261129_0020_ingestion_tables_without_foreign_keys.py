"""Ingestion tables without foreign keys: the tables written on every ingested event reference
their member (or merchant) by declaration (``siyu.db.unenforced``), not by foreign key.

Each foreign key cost every inserted row a look-up of its parent and, on PostgreSQL, a
``FOR KEY SHARE`` lock on it. ``siyu db check`` finds rows whose parent is missing. On SQLite,
dropping a constraint rebuilds the table (a copy of ``events``: minutes on a large database).

Revision ID: 0020
Revises: 0019_model_fits
Create Date: 2026-11-29 10:37:28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019_model_fits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEMBER = (["merchant_id", "member_id"], "members", ["merchant_id", "id"])
MERCHANT = (["merchant_id"], "merchants", ["id"])

DROPPED: dict[str, list[tuple[list[str], str, list[str]]]] = {
    "events": [MERCHANT, MEMBER],
    "member_identities": [MEMBER],
    "member_rollups": [MEMBER],
    "member_stages": [MEMBER],
    "members": [MERCHANT],
    "points_accounts": [MEMBER],
    "points_entries": [MEMBER],
    "points_lots": [MEMBER],
    "reach_changes": [MEMBER, MERCHANT],
    "reach_states": [MEMBER],
    "stage_transitions": [MEMBER],
    "tier_progress": [MEMBER],
}


def _name(table: str, columns: list[str], parent: str) -> str:
    return f"fk_{table}_{'_'.join(columns)}_{parent}"


def upgrade() -> None:
    for table, references in DROPPED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for columns, parent, _ in references:
                batch_op.drop_constraint(batch_op.f(_name(table, columns, parent)), type_="foreignkey")


def downgrade() -> None:
    for table, references in reversed(DROPPED.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for columns, parent, parent_columns in references:
                batch_op.create_foreign_key(
                    batch_op.f(_name(table, columns, parent)), parent, columns, parent_columns
                )
