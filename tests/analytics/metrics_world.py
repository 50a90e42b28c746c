"""The small fixed data set the Customer, Scale and Active metric tests compute by hand.

Merchant in Asia/Shanghai (UTC+8), stage rules with ``dormant_after_days=5``; the period is
Monday 2026-11-02 … Sunday 2026-11-08. Events go through the real ingestion, day by day, with
the daily lifecycle sweep at each day's end, so the ledger is the one production writes.

=====  ============================================================================================
G, H   joined 2026-10-01 (mini_program); H also visits 10-20; both dormant by 11-01;
       G visits 11-04 (recalled), H never returns
A      joins 11-02 10:00 (mini_program, store s1, campaign c1), subscribes (operable), visits 11-03,
       pays 1,000 on 11-04, refund 300 on 11-05, opens a message 11-06, clicks 11-07,
       visits 11-08 23:30 (in the period) and 11-09 00:30 (= 11-08 16:30 UTC: not in it)
B      joins 11-02 23:30 (= 15:30 UTC; alipay, referrer "A"), subscribes, pays 2,000 11-03 00:40,
       opens a message 11-07
C      joins 11-03 00:30 (= 11-02 16:30 UTC; alipay): new on 11-03, not 11-02
F      joins 11-03 (offline, store s2); erased 11-07
D, E   D scans 11-04 (offline, store s2, by phone); E pays 500 11-05 (alipay, by Alipay id);
       a visit on 11-06 carries both identities: E is merged into D (the older)
=====  ============================================================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from siyu.analytics.service import AnalyticsContext, Source, open_context
from siyu.db import Database
from siyu.events.service import ingest
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pii import IdentifierVault
from siyu.lifecycle import service as lifecycle
from siyu.lifecycle.rules import StageRules
from siyu.members.rights import erase_member
from siyu.messaging.models import Message
from siyu.tenancy import facade as tenancy
from siyu.tiers.models import MemberTier
from tests.analytics.duckcopy import copy_to_duck, duck_engine

ZONE = "Asia/Shanghai"
START, END = date(2026, 11, 2), date(2026, 11, 8)
PHONE, ALIPAY = "13800138000", "2088000000000001"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(ZONE))


def nov(day: int, hour: int, minute: int = 0) -> datetime:
    return local(date(2026, 11, day), hour, minute)


def ev(
    event_id: str,
    who: str | dict[str, str],
    type_: str,
    when: datetime,
    *,
    channel: str | None = None,
    store: str | None = None,
    amount: int = 0,
    **extra: str,
) -> dict[str, Any]:
    properties: dict[str, Any] = dict(extra)
    if type_ in ("order_paid", "order_refunded"):
        properties |= {"order_id": f"o-{event_id}", "amount_fen": amount}
    elif type_ == "scan":
        properties |= {"code_id": "qr"}
    elif type_ == "subscribe":
        properties |= {"channel": "mini_program", "template_id": "tpl"}
    elif type_ in ("message_opened", "message_clicked"):
        properties |= {"message_id": f"msg-{event_id}"}
    identities = {"member_no": who} if isinstance(who, str) else who
    raw: dict[str, Any] = {
        "event_id": event_id,
        "type": type_,
        "occurred_at": when.isoformat(),
        "identities": identities,
        "properties": properties,
    }
    if channel:
        raw["channel"] = channel
    if store:
        raw["store_id"] = store
    return raw


MP, ALI, OFF = "mini_program", "alipay", "offline"

EVENTS: list[dict[str, Any]] = [
    ev("g1", "G", "visit", local(date(2026, 10, 1), 10), channel=MP, store="s1"),
    ev("h1", "H", "visit", local(date(2026, 10, 1), 11), channel=MP),
    ev("h2", "H", "visit", local(date(2026, 10, 20), 12), channel=MP),
    ev("a1", "A", "visit", nov(2, 10), channel=MP, store="s1", campaign="c1"),
    ev("a2", "A", "subscribe", nov(2, 10, 5), channel=MP),
    ev("b1", "B", "visit", nov(2, 23, 30), channel=ALI, referrer="A"),
    ev("b2", "B", "subscribe", nov(2, 23, 35), channel=ALI),
    ev("c1", "C", "visit", nov(3, 0, 30), channel=ALI),
    ev("b3", "B", "order_paid", nov(3, 0, 40), channel=ALI, amount=2000),
    ev("f1", "F", "visit", nov(3, 9), channel=OFF, store="s2"),
    ev("a3", "A", "visit", nov(3, 12), channel=MP, store="s1"),
    ev("a4", "A", "order_paid", nov(4, 12), channel=MP, store="s1", amount=1000),
    ev("d1", {"phone": PHONE}, "scan", nov(4, 15), channel=OFF, store="s2"),
    ev("g2", "G", "visit", nov(4, 16), channel=MP),
    ev("e1", {"alipay_user_id": ALIPAY}, "order_paid", nov(5, 9), channel=ALI, amount=500),
    ev("a5", "A", "order_refunded", nov(5, 10), channel=MP, amount=300),
    ev("x1", {"phone": PHONE, "alipay_user_id": ALIPAY}, "visit", nov(6, 10), channel=OFF, store="s2"),
    ev("a6", "A", "message_opened", nov(6, 20)),
    ev("b4", "B", "message_opened", nov(7, 20)),
    ev("a7", "A", "message_clicked", nov(7, 20, 5)),
    ev("a8", "A", "visit", nov(8, 23, 30), channel=MP),
    ev("a9", "A", "visit", nov(9, 0, 30), channel=MP),
]
ERASE_F_AT = nov(7, 9)


@dataclass(frozen=True)
class World:
    merchant_id: str
    ids: dict[str, str]
    """Member id per letter (E: the merged record's id)."""


def build(db: Database, vault: IdentifierVault, *, erase: bool = True, name: str = "指标") -> World:
    """Ingest the world day by day with the daily sweep at each day's end (through 11-10)."""
    with db.unit_of_work() as session:
        merchant_id = tenancy.create_merchant(session, name=name, timezone=ZONE).id
        lifecycle.set_rules(
            session,
            merchant_id,
            StageRules(dormant_after_days=5, lost_after_days=180),
            actor="test",
            now=local(date(2026, 9, 30), 12),
        )
    ids: dict[str, str] = {}
    day = date(2026, 10, 1)
    while day <= date(2026, 11, 10):
        for raw in [e for e in EVENTS if datetime.fromisoformat(e["occurred_at"]).date() == day]:
            received = datetime.fromisoformat(raw["occurred_at"]) + timedelta(minutes=1)
            with db.unit_of_work() as session:
                (verdict,) = ingest(session, vault, merchant_id, [raw], now=received)
            assert verdict.status == "accepted", verdict
            who = raw["identities"].get("member_no") or ("D" if "phone" in raw["identities"] else "E")
            ids.setdefault(who, verdict.member_id or "")
        if erase and day == ERASE_F_AT.date():
            with db.unit_of_work() as session:
                erase_member(session, merchant_id, ids["F"], now=ERASE_F_AT)
        with db.unit_of_work() as session:
            lifecycle.sweep(session, merchant_id, now=local(day, 23, 59))
        day += timedelta(days=1)
    return World(merchant_id, ids)


def add_messages(db: Database, world: World) -> None:
    """Messages as the messaging module records them: four accepted in the period (three
    delivered, one failed), one capped (never sent) and one delivered after the period."""
    rows = [
        ("A", "delivered", nov(6, 19)),
        ("B", "delivered", nov(7, 19)),
        ("C", "delivered", nov(5, 19)),
        ("A", "failed", nov(5, 19)),
        ("A", "capped", nov(6, 19, 30)),
        ("A", "delivered", nov(9, 19)),
    ]
    with db.unit_of_work() as session:
        for n, (who, status, at) in enumerate(rows):
            session.add(
                Message(
                    merchant_id=world.merchant_id,
                    id=new_id(IdKind.MESSAGE),
                    key=f"k{n}",
                    member_id=world.ids[who],
                    template_id="tpl",
                    channel="subscription",
                    kind="marketing",
                    status=status,
                    send_at=at.astimezone(UTC),
                    local_day=at.date().isoformat(),
                    local_week=f"{at.isocalendar().year}-W{at.isocalendar().week:02d}",
                    created_at=at.astimezone(UTC),
                    updated_at=at.astimezone(UTC),
                )
            )


NOW = nov(10, 12)
NO_MIRROR = Path("/nonexistent/siyu-analytics")


@contextmanager
def contexts(db: Database, merchant_id: str, *, now: datetime = NOW) -> Iterator[list[AnalyticsContext]]:
    """The merchant's metrics context on the state store and on DuckDB (a copy of the same
    relations): every metric test asks both and expects the same numbers."""
    with (
        db.reading() as session,
        duck_engine().connect() as duck,
        open_context(session, NO_MIRROR, merchant_id, source=Source.STATE, now=now) as state,
    ):
        rel = copy_to_duck(session.connection(), state.rel, duck)
        on_duck = AnalyticsContext(
            merchant_id=merchant_id,
            source=Source.MIRROR,
            rel=rel,
            conn=duck,
            session=session,
            today=state.today,
            now=state.now,
        )
        yield [state, on_duck]


def same_on_every_engine(contexts: list[AnalyticsContext], compute: Any) -> Any:
    """``compute(ctx)`` on each context; asserts they agree and answers the common value."""
    answers = [compute(ctx) for ctx in contexts]
    for ctx, answer in zip(contexts[1:], answers[1:], strict=True):
        assert answer == answers[0], (ctx.rel.engine, answer, answers[0])
    return answers[0]


def session_of(ctxs: list[AnalyticsContext]) -> Session:
    return ctxs[0].session


def set_tier(db: Database, world: World, tier_id: str, *letters: str) -> None:
    """Members' current tier, as the tiers module stores it."""
    with db.unit_of_work() as session:
        for letter in letters:
            session.add(
                MemberTier(
                    merchant_id=world.merchant_id,
                    member_id=world.ids[letter],
                    tier_id=tier_id,
                    since=NOW,
                    updated_at=NOW,
                )
            )


def key_headers(
    db: Database, merchant_id: str, scopes: tuple[str, ...] = ("analytics:read",)
) -> dict[str, str]:
    """A fresh API key of the merchant (only ``scopes``), as request headers."""
    with db.unit_of_work() as session:
        key = tenancy.issue_key(session, name="analytics", scopes=list(scopes), merchant_id=merchant_id)
    return {"Authorization": f"Bearer {key.secret}"}
