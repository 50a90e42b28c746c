"""The dashboard loads its figures off NiceGUI's event loop (issue 8 follow-up).

Each test swaps one screen's ``load`` for a wrapper around the real one that can block on a
``threading.Event`` (the test releases it) or raise. A load that ran on the event loop would hold
the loop, and with it this test (it runs on the same loop): the wrapper then times out and
records it, and the test fails.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nicegui import ElementFilter, core
from nicegui.testing import User

from siyu.analytics.scope import Grain, Scope
from siyu.analytics.service import AnalyticsContext
from siyu.console import ccare
from siyu.console.dashboard import Screen
from siyu.console.i18n import ZH
from siyu.tenancy.facade import StaffView
from tests.console import test_console as shell
from tests.console.test_console import PASSWORD, signed_in
from tests.console.test_dashboard import Shop, chart, charts, options_of
from tests.console.test_dashboard import shop as shop  # the fixture
from tests.console.test_operations import eventually

anyio_backend = shell.anyio_backend
merchant = shell.merchant
user = shell.user

pytestmark = pytest.mark.anyio

WAIT_SECONDS = 10.0
"""How long a blocked load waits for the test; reaching it means the test could not run."""


class Gate:
    """Wraps a screen's real load: the loads listed in ``blocked`` (0 = the first) wait for
    ``release``; every load records whether it was released in time and when it finished."""

    def __init__(self, real: Screen[Any], *, blocked: frozenset[int] = frozenset({0})) -> None:
        self.real, self.blocked = real, blocked
        self.release = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()
        self.calls = 0
        self.released_in_time: list[bool] = []
        self.threads: list[str] = []

    def load(self, ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView) -> Any:
        number = self.calls
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        if number in self.blocked:
            self.started.set()
            self.released_in_time.append(self.release.wait(WAIT_SECONDS))
        try:
            return self.real.load(ctx, scope, grain, staff)
        finally:
            if number in self.blocked:
                self.finished.set()


def gate(monkeypatch: pytest.MonkeyPatch, name: str, **kw: Any) -> Gate:
    found = Gate(ccare.SCREENS[name], **kw)
    monkeypatch.setitem(ccare.SCREENS, name, Screen(found.load, ccare.SCREENS[name].render))
    return found


@pytest.fixture
async def other() -> AsyncIterator[User]:
    """A second browser on the same NiceGUI app (its own cookies, so its own session)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test") as client:
        yield User(client)


async def wait_for(event: threading.Event) -> None:
    await eventually(event.is_set, attempts=200)


class TestLoadingOffTheLoop:
    async def test_another_user_is_served_while_a_screen_loads(
        self, user: User, other: User, shop: Shop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given: the active screen's load blocks until released
        held = gate(monkeypatch, "active")
        await signed_in(user, "owner", PASSWORD)
        # when: the page is opened (its response does not wait for the load)
        await user.open("/area/active")
        await user.should_see(marker="period-preset")
        await user.should_see(marker="dash-loading")
        await wait_for(held.started)
        # then: meanwhile another browser's page and an API request are served
        await other.open("/login")
        await other.should_see(marker="login-login")
        answer = await other.http_client.get("/login")
        assert answer.status_code == 200
        assert not held.release.is_set()
        assert "active-daily" not in charts(user)
        # and: once released, the figures replace the spinner
        held.release.set()
        graph = await chart(user, "active-daily")
        assert len(graph.options["xAxis"]["data"]) == 30
        await user.should_not_see(marker="dash-loading")
        assert held.released_in_time == [True]
        assert held.threads
        assert all(name != threading.main_thread().name for name in held.threads)

    async def test_a_stale_load_does_not_overwrite_the_newer_period(
        self, user: User, shop: Shop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given: the first load (30 days) blocks; later ones run at once
        held = gate(monkeypatch, "active")
        await signed_in(user, "owner", PASSWORD)
        await user.open("/area/active")
        await wait_for(held.started)
        # when: the period changes to 7 days while the first load still runs
        user.find(marker="period-preset").elements.pop().value = 7
        await eventually(lambda: len(options_of(user, "active-daily").get("xAxis", {}).get("data", [])) == 7)
        held.release.set()
        await wait_for(held.finished)
        await asyncio.sleep(0.5)  # the stale result's turn on the loop comes and goes
        # then: the newer period stays, drawn once
        assert held.released_in_time == [True]
        assert held.calls == 2
        assert len(options_of(user, "active-daily")["xAxis"]["data"]) == 7
        with user.client:
            drawn = [e for e in ElementFilter(marker="chart-active-daily") if not e.is_deleted]
        assert len(drawn) == 1

    async def test_a_failed_load_shows_a_translated_error(
        self, user: User, shop: Shop, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # given: the worth screen's queries fail
        def broken(ctx: AnalyticsContext, scope: Scope, grain: Grain, staff: StaffView) -> Any:
            raise RuntimeError("the mirror is gone")

        monkeypatch.setitem(ccare.SCREENS, "worth", Screen(broken, ccare.SCREENS["worth"].render))
        await signed_in(user, "owner", PASSWORD)
        # when
        await user.open("/area/worth")
        # then: the error in the reader's language, the picker still there, no spinner left
        await user.should_see(marker="dash-load-error", retries=200)
        await user.should_see(ZH["dash.load_failed"])
        await user.should_see(marker="period-preset")
        await user.should_not_see(marker="dash-loading")
        assert charts(user) == {}
