"""``siyu demo``: build the simulated coffee chain in a fresh data directory, then serve it."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from siyu.analytics import mirror
from siyu.cli.common import console, domain_errors, fail, open_database, safe_url, say, settings_or_exit
from siyu.kit.clock import utcnow
from siyu.kit.crypto import generate_password
from siyu.kit.pii import IdentifierVault
from siyu.sim.demo import build_demo
from siyu.sim.world import World
from siyu.tenancy import facade as tenancy


class _Bars:
    """:class:`siyu.sim.demo.Progress` on a Rich progress display: one bar per step."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: object | None = None

    def start(self, label: str, total: int | None) -> None:
        if self.task is not None:  # finished: a step without a total gets one, so its clock stops
            done = self.progress.tasks[-1].total or 1
            self.progress.update(self.task, total=done, completed=done)  # type: ignore[arg-type]
        self.task = self.progress.add_task(label, total=total)

    def advance(self, amount: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, amount)  # type: ignore[arg-type]

    def finish(self) -> None:
        self.start("done", 1)
        self.advance(1)


def demo(
    members: Annotated[int, typer.Option(min=10, max=5_000_000, help="simulated people")] = 50_000,
    days: Annotated[int, typer.Option(min=40, max=1_000, help="days of history, ending now")] = 180,
    seed: Annotated[int, typer.Option(min=0, help="same seed, same people and events")] = 1,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="build only, do not serve")] = False,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="a new or empty directory for the demo's data")
    ] = Path("siyu-demo"),
    password: Annotated[str | None, typer.Option(help="the owner's password (default: generated)")] = None,
) -> None:
    """Build a demo merchant — a coffee chain (拾光咖啡), 12 stores, staff and guides, simulated
    members with history, coupons, points, tiers, two finished campaigns with holdouts — sync the
    analytics mirror, then serve the console and print the login.

    Example: siyu demo --members 5000 --days 120 --seed 3 --no-serve
    """
    if data_dir.exists() and any(data_dir.iterdir()):
        fail(f"{data_dir} is not empty: give a new directory with --data-dir (the demo never reuses data)")
    settings = settings_or_exit(data_dir=data_dir)
    database = open_database(settings)
    began = time.perf_counter()
    owner_password = password or generate_password()
    try:
        with database.reading() as session:
            if tenancy.first_merchant(session) is not None:
                url = safe_url(settings.resolved_database_url)
                fail(f"{url} already holds a merchant: the demo needs an empty database")
        now = utcnow().replace(microsecond=0)
        world = World(start=now - timedelta(days=days), members=members, days=days, seed=seed)
        vault = IdentifierVault(settings.resolved_secret_key())
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with domain_errors(settings), Progress(*columns, console=console) as progress:
            bars = _Bars(progress)
            result = build_demo(
                database,
                vault,
                world,
                now=now,
                password=owner_password,
                truth_dir=data_dir / "sim",
                progress=bars,
            )
            bars.start("分析同步 analytics sync", None)
            mirror.sync(database, settings.resolved_analytics_dir, now=utcnow())
            bars.finish()
    finally:
        if no_serve:
            database.dispose()
    elapsed = time.perf_counter() - began
    tally = result.tally
    say(
        f"Built in {elapsed:.0f} s: {members:,} simulated people, {tally.accepted:,} events accepted "
        f"({tally.rejected} rejected), {result.decisions:,} payment-page decisions; "
        f"ground truth in {data_dir / 'sim'}",
        style="dim",
    )
    url = f"http://{settings.host}:{settings.port}/console"
    login = (
        f"Console  {url}\nLogin    owner\nPassword {owner_password}\n"
        f"Campaign results: 沉睡会员唤醒 (recall) and 支付成功页 (payment page), Campaigns page"
    )
    console.print(Panel(Text(login), title="拾光咖啡 demo is ready", expand=False))
    if no_serve:
        return
    import uvicorn

    from siyu.app import create_app

    with domain_errors(settings):
        app = create_app(settings, db=database)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
