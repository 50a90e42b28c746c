"""Migrations build the schema from empty on this engine, and agree with the ORM models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from siyu.all_models import metadata
from siyu.db import Database
from siyu.migrate import current_revision, head_revision, upgrade
from tests.conftest import create_test_database


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[Database]:
    for test_db in create_test_database(tmp_path):
        database = Database(test_db.url)
        yield database
        database.dispose()


class TestMigrations:
    def test_upgrade_from_empty_builds_every_table(self, empty_database: Database) -> None:
        # given
        assert current_revision(empty_database.engine) is None
        # when
        upgrade(empty_database.engine)
        # then
        tables = set(inspect(empty_database.engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert current_revision(empty_database.engine) == head_revision(empty_database.engine)

    def test_upgrade_twice_is_harmless(self, empty_database: Database) -> None:
        upgrade(empty_database.engine)
        upgrade(empty_database.engine)
        assert current_revision(empty_database.engine) == head_revision(empty_database.engine)

    def test_models_and_migrations_agree(self, empty_database: Database) -> None:
        # given
        upgrade(empty_database.engine)
        # when
        with empty_database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
        # then
        assert differences == [], "run `alembic revision --autogenerate` and commit the migration"

    def test_downgrade_to_base_and_back(self, empty_database: Database) -> None:
        from alembic import command

        from siyu.migrate import alembic_config

        upgrade(empty_database.engine)
        command.downgrade(alembic_config(empty_database.engine), "base")
        assert set(inspect(empty_database.engine).get_table_names()) <= {"alembic_version"}
        upgrade(empty_database.engine)
        assert set(metadata.tables) <= set(inspect(empty_database.engine).get_table_names())


def test_the_suite_runs_on_the_engine_it_was_asked_for(db: Database) -> None:
    """Guards CI: the PostgreSQL run must really be on PostgreSQL."""
    wanted = os.environ.get("SIYU_TEST_DATABASE_URL", "sqlite")
    assert db.engine.dialect.name == ("postgresql" if wanted.startswith("postgresql") else "sqlite")
