"""Test fixtures shared by the whole suite.

The suite runs on SQLite by default and on PostgreSQL when ``SIYU_TEST_DATABASE_URL`` is set
(``postgresql+psycopg://postgres@127.0.0.1:5432/test``). The schema is built once per run from
the Alembic migrations — on PostgreSQL inside a fresh schema of its own, dropped at the end, so
parallel runs and other tests never collide — and every table is emptied after each test, which
lets tests commit for real (the API commits per request) and still start clean.

``@pytest.mark.postgres_only`` tests (real concurrency) are skipped on SQLite; ``.ci/run``
fails the PostgreSQL run if any test was skipped there.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

import siyu.wiring  # noqa: F401  (listeners of every module)
from siyu.all_models import metadata
from siyu.app import create_app
from siyu.config import Settings, load_settings
from siyu.db import Database
from siyu.kit import config_cache
from siyu.migrate import upgrade
from siyu.tenancy import facade
from siyu.tenancy.scopes import ALL_PROVIDER_SCOPES, MERCHANT_SCOPES, sorted_scopes

TEST_DATABASE_URL = os.environ.get("SIYU_TEST_DATABASE_URL")


def is_postgres_run() -> bool:
    return bool(TEST_DATABASE_URL) and make_url(TEST_DATABASE_URL or "").get_backend_name() == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if is_postgres_run():
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set SIYU_TEST_DATABASE_URL")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def with_search_path(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema`` (psycopg ``options``)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@dataclass
class DatabaseUnderTest:
    url: str
    schema: str | None


def drop_schema(admin: Engine, schema: str, attempts: int = 5) -> None:
    """Drop the run's schema, retrying if PostgreSQL picks the drop as a deadlock victim: a
    server thread of the session (a live test server's background upkeep) may still be finishing
    a query over the same tables when the session ends."""
    for attempt in range(attempts):
        try:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def create_test_database(tmp_dir: Path) -> Iterator[DatabaseUnderTest]:
    """A migrated, empty database: a new PostgreSQL schema or a new SQLite file."""
    if TEST_DATABASE_URL and is_postgres_run():
        schema = f"siyu_test_{os.getpid()}_{secrets.token_hex(4)}"
        admin = create_engine(TEST_DATABASE_URL)
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield DatabaseUnderTest(with_search_path(TEST_DATABASE_URL, schema), schema)
        finally:
            drop_schema(admin, schema)
            admin.dispose()
    elif TEST_DATABASE_URL:
        yield DatabaseUnderTest(TEST_DATABASE_URL, None)
    else:
        yield DatabaseUnderTest(f"sqlite:///{tmp_dir / 'siyu-test.db'}", None)


@pytest.fixture(scope="session")
def test_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseUnderTest]:
    yield from create_test_database(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def db(test_database: DatabaseUnderTest) -> Iterator[Database]:
    database = Database(test_database.url)
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    config_cache.invalidate()  # a test may change configuration with raw SQL (seen within the TTL)
    if "db" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("db")
    with database.unit_of_work() as session:
        for table in reversed(metadata.sorted_tables):
            session.execute(delete(table))


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, test_database: DatabaseUnderTest) -> Settings:
    return load_settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=test_database.url,
        secret_key="test-secret-" + "x" * 40,
        console=False,
        max_body_bytes=64 * 1024,
        worker_embedded=False,  # tests run the outbox worker themselves (tests/outbox)
        # no background jobs in the test servers: the live server lives for the whole session,
        # and its real-clock expiry raced tests that inject their clock (points ledger, CI)
        upkeep=False,
        analytics_sync_interval=0,  # tests sync the analytics mirror themselves (tests/analytics)
    )


@pytest.fixture(scope="session")
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db=db, console=False)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@dataclass(frozen=True)
class Tenant:
    """A merchant with an all-scopes API key, ready for API calls."""

    merchant_id: str
    key_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@dataclass(frozen=True)
class ProviderTenant:
    provider_id: str
    key_id: str
    secret: str

    def headers(self, merchant_id: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.secret}"}
        if merchant_id:
            headers["Siyu-Merchant"] = merchant_id
        return headers


@pytest.fixture
def make_tenant(db: Database):  # type: ignore[no-untyped-def]
    def make(name: str = "商户", scopes: list[str] | None = None) -> Tenant:
        with db.unit_of_work() as session:
            merchant = facade.create_merchant(session, name=name)
            key = facade.issue_key(
                session, name="test", scopes=scopes or sorted_scopes(MERCHANT_SCOPES), merchant_id=merchant.id
            )
        assert key.secret is not None
        return Tenant(merchant.id, key.id, key.secret)

    return make


@pytest.fixture
def make_provider(db: Database):  # type: ignore[no-untyped-def]
    def make(name: str = "服务商", scopes: list[str] | None = None) -> ProviderTenant:
        with db.unit_of_work() as session:
            provider = facade.create_provider(session, name=name)
            key = facade.issue_key(
                session,
                name="test",
                scopes=scopes or sorted_scopes(ALL_PROVIDER_SCOPES),
                provider_id=provider.id,
            )
        assert key.secret is not None
        return ProviderTenant(provider.id, key.id, key.secret)

    return make


@pytest.fixture
def tenant(make_tenant) -> Tenant:  # type: ignore[no-untyped-def]
    return make_tenant("甲商户")  # type: ignore[no-any-return]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(app: FastAPI) -> Iterator[str]:
    """The app served by a real uvicorn in a background thread (for race tests with real sockets)."""
    import threading
    import time

    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", workers=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:  # pragma: no cover
        raise RuntimeError("the test server did not start")
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    if thread.is_alive():  # keep-alive clients hold a graceful exit open: stop the server anyway,
        server.force_exit = True  # or its background upkeep still runs when the schema is dropped
        thread.join(timeout=10)
