"""The stage ledger by the time each entry was recorded: how the mirror sync finds new entries.

An index on ``stage_transitions (merchant_id, recorded_at)``. The analytics mirror copies the
entries recorded since its last sync (and re-checks the last minute, for late commits), and
probes the ledger's size and its oldest and newest entry, from this index alone. Before it,
each sync re-read every entry dated from its last day on: during a day of heavy ingestion, the
whole day, every few seconds. Entries are recorded in time order, so new keys go to the index's
right edge.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-29 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_stage_transitions_merchant_id_recorded_at"


def upgrade() -> None:
    op.create_index(INDEX, "stage_transitions", ["merchant_id", "recorded_at"], unique=False)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="stage_transitions")
