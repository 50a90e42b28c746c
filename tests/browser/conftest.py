"""The real-browser suite: the console served by a real server, driven by headless Chromium.

* **The server** (``console_url``, once per pytest worker): ``uvicorn siyu.app:create_app
  --factory`` in a subprocess, on the suite's own database (the same SQLite file or PostgreSQL
  schema the ``db`` fixture uses), console on, background jobs, outbox worker and mirror sync
  off. A subprocess, not a thread: NiceGUI keeps one app per process, and the simulated-user
  tests of ``tests/console`` reset it. Tables are emptied after every test, so each test seeds
  what it shows (``shop``).
* **The browser** (``browser``, once per test module — see the fixture for why): Debian's
  Chromium (``/usr/bin/chromium``, ``apt-get install -y chromium``; ``.ci/run`` installs it
  when missing) through Playwright's Python package, with ``--headless --no-sandbox
  --disable-gpu --disable-background-networking``.
  Never run ``playwright install`` (it downloads browsers). Without Chromium the suite is
  skipped with that instruction (the README's test command passes on a fresh machine), except
  under ``SIYU_REQUIRE_BROWSER=1`` — ``.ci/run`` sets it and installs Chromium — where it fails.
* ``page``: a fresh browser context per test (``zh-CN``, 1440×900); ``login(page, login,
  password)``; ``shot(page, name)`` writes ``test-artifacts/screenshots/<name>.png``
  (``SIYU_TEST_ARTIFACTS`` moves the folder), which ``.ci/run`` keeps.
* ``shop``: a bootstrapped merchant (owner ``owner`` / :data:`PASSWORD`), two stores (one a
  franchise), an analyst and a franchise store's staff, and members with visits and orders,
  ingested through the real ingestion path with the server's own identifier vault.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault
from siyu.tenancy import facade
from siyu.tenancy.models import StaffRole, StoreKind
from tests.conftest import DatabaseUnderTest, free_port

CHROMIUM = Path("/usr/bin/chromium")
SECRET = "browser-secret-" + "x" * 40
PASSWORD = "owner-password-1"
STAFF_PASSWORD = "staff-password-1"
ARTIFACTS = Path(os.environ.get("SIYU_TEST_ARTIFACTS", "test-artifacts")) / "screenshots"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="session")
def console_url(test_database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SIYU_DATABASE_URL": test_database.url,
        "SIYU_DATA_DIR": str(tmp_path_factory.mktemp("browser-data")),
        "SIYU_SECRET_KEY": SECRET,
        "SIYU_CONSOLE": "true",
        "SIYU_UPKEEP": "false",
        "SIYU_WORKER_EMBEDDED": "false",
        "SIYU_ANALYTICS_SYNC_INTERVAL": "0",
    }
    command = [
        sys.executable, "-m", "uvicorn", "siyu.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the console server exited with {server.returncode}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the console server did not start within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an event
    loop running on the main thread while it lives, and the async tests of ``tests/console``
    (anyio) that a worker runs after this module could not start theirs."""
    if not CHROMIUM.exists():
        why = (
            "the browser suite needs Debian's Chromium: apt-get update && apt-get install -y chromium "
            "chromium-driver (never `playwright install`)"
        )
        if os.environ.get("SIYU_REQUIRE_BROWSER"):  # .ci/run: never skipped there
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, console_url: str) -> Iterator[Any]:
    context = browser.new_context(
        base_url=console_url, locale="zh-CN", viewport={"width": 1440, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


def by_id(page: Any, testid: str) -> Any:
    return page.locator(f"[data-testid='{testid}']")


def field(page: Any, testid: str) -> Any:
    """The text field with ``testid`` (a Quasar input puts the id on the native ``<input>``)."""
    return page.locator(f"input[data-testid='{testid}'], [data-testid='{testid}'] input").first


def login(page: Any, login_name: str, password: str) -> None:
    """Sign in on the console's sign-in page and wait for the signed-in frame."""
    page.goto("/console/login")
    field(page, "login-login").fill(login_name)
    field(page, "login-password").fill(password)
    by_id(page, "login-submit").click()
    by_id(page, "header-logout").wait_for()


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot of what the test sees, kept by CI."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass(frozen=True)
class Shop:
    merchant_id: str
    own_store: str
    franchise_store: str
    members: dict[str, str]
    """Phone → member id."""


PEOPLE = {
    # phone: (store, orders in fen, visits)
    "13800000001": ("own", [3_800, 4_200], 3),
    "13800000002": ("own", [2_500], 1),
    "13800000003": ("franchise", [6_000, 1_800, 2_200], 2),
    "13800000004": ("franchise", [], 2),
    "13800000005": ("own", [], 1),
}


@pytest.fixture
def shop(db: Database) -> Shop:
    vault = IdentifierVault(SECRET)
    with db.unit_of_work() as session:
        created = facade.bootstrap(session, password=PASSWORD)
        assert created is not None
        merchant_id = created.merchant.id
        own = facade.create_store(session, merchant_id, code="S01", name="国贸店", kind=StoreKind.DIRECT)
        franchise = facade.create_store(
            session, merchant_id, code="F01", name="望京加盟店", kind=StoreKind.FRANCHISE
        )
        facade.create_staff(
            session, merchant_id, login="analyst", role=StaffRole.ANALYST, password=STAFF_PASSWORD
        )
        facade.create_staff(
            session,
            merchant_id,
            login="franchisee",
            role=StaffRole.OPERATOR,
            password=STAFF_PASSWORD,
            store_ids=(franchise.id,),
        )
    stores = {"own": own.id, "franchise": franchise.id}
    now = utcnow()
    events: list[dict[str, Any]] = []
    for n, (phone, (store, orders, visits)) in enumerate(PEOPLE.items()):
        for v in range(visits):
            events.append(_event(f"v-{n}-{v}", "visit", phone, stores[store], now - timedelta(days=20 - v)))
        for o, amount in enumerate(orders):
            at = now - timedelta(days=10 - o)
            events.append(
                _event(
                    f"o-{n}-{o}",
                    "order_paid",
                    phone,
                    stores[store],
                    at,
                    order_id=f"o-{n}-{o}",
                    amount_fen=amount,
                )
            )
    with db.unit_of_work() as session:
        verdicts = ingest(session, vault, merchant_id, events, now=now)
    assert all(v.status == "accepted" for v in verdicts), verdicts
    members: dict[str, str] = {}
    for event, verdict in zip(events, verdicts, strict=True):
        members[event["identities"]["phone"]] = verdict.member_id or ""
    return Shop(merchant_id, own.id, franchise.id, members)


def _event(
    event_id: str, type_: str, phone: str, store_id: str, at: Any, **properties: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": at.isoformat(),
        "identities": {"phone": phone},
        "channel": "mini_program",
        "store_id": store_id,
        "properties": properties,
    }
