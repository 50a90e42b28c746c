"""One row of a file → the events it stands for, or a rejection that names the column and why.

* A **member** row becomes one ``member_joined`` event (``properties.source = "import"``) at the
  registration time, or at the import's start when the file has none. Its event id is derived
  from the member number when the row has one, else from all the row's identities — through the
  merchant's keyed blind index, so no identifier appears in an event id — which makes the same
  person imported twice count once.
* An **order** row becomes an ``order_paid`` event with the event id ``order:<order id>`` (a
  POS that also sends orders through the API can use the same id, and the two count once), plus
  an ``order_refunded`` event ``refund:<order id>`` when a refund column holds an amount.

Checks that need no database happen here so that their reasons are precise; everything else
(identity normalisation for orders, the one-day-in-the-future rule) is left to ingestion, whose
rejections are mapped back to columns by their JSON pointers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from siyu.kit.money import InvalidAmount, parse_yuan
from siyu.kit.pii import IdentifierVault, IdentityKind
from siyu.members.service import IdentityError, normalise_all

from .mapping import IDENTITY_FIELDS, ColumnMapping, ImportKind
from .readers import SourceRow

MAX_TAG_LENGTH = 64
MAX_CHANNEL_LENGTH = 64
MAX_ORDER_ID_LENGTH = 128
IMPORT_SOURCE = "import"

_DATETIME = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:(?:\s+|T)(\d{1,2})[:：](\d{1,2})(?:[:：](\d{1,2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?"
)
_SCIENTIFIC = re.compile(r"[+-]?\d(?:\.\d+)?[eE]\+?\d+")
_TAG_SEPARATORS = re.compile(r"[,，;；|、]")
_CODE_SEPARATORS = re.compile(r"[,，;；|\s]+")
_PLAIN_ID = re.compile(r"[\x21-\x7e]{1,100}")


@dataclass(slots=True)
class Rejection:
    """A row that was not imported: its line, the reason, the column at fault and the row itself."""

    line: int
    reason: str
    column: str | None
    values: list[str]


@dataclass(slots=True)
class RowEvents:
    """The events one row stands for, and what else the row asks for (tags)."""

    row: SourceRow
    events: list[dict[str, Any]]
    pointers: list[dict[str, str]]
    """Per event: JSON-pointer prefix → field, to name the column of an ingestion rejection."""
    tags: list[str] = field(default_factory=list)
    identities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RowContext:
    """What building a row needs besides the row."""

    merchant_id: str
    mapping: ColumnMapping
    timezone: tzinfo
    stores: dict[str, str]
    """Store code → store id, for the merchant (only loaded when a store column is mapped)."""
    default_time: datetime
    vault: IdentifierVault


class BadValue(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def parse_time(text: str, zone: tzinfo) -> datetime:
    """``2026-05-01 12:30``, ``2026/5/1``, ``2026年5月1日 12:30:05``, ISO 8601 with offset.

    A time without an offset is in ``zone`` (the merchant's time zone); a date alone is midnight.
    """
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a date and time (expected e.g. 2026-05-01 12:30:00)")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=zone,
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date and time: {exc}") from None
    if offset is None:
        return value
    return datetime.fromisoformat(value.replace(tzinfo=None).isoformat() + _iso_offset(offset))


def _iso_offset(offset: str) -> str:
    if offset == "Z":
        return "+00:00"
    digits = offset[1:].replace(":", "")
    return f"{offset[0]}{digits[:2]}:{digits[2:4] or '00'}"


def _fen(text: str, field: str, *, in_fen: bool) -> int:
    if in_fen:
        cleaned = text.strip()
        if not re.fullmatch(r"[+-]?\d+", cleaned):
            raise BadValue(field, f"{field} {text!r} is not a whole number of fen")
        fen = int(cleaned)
    else:
        try:
            fen = parse_yuan(text)
        except InvalidAmount as exc:
            raise BadValue(field, f"{field} {exc}") from None
    if fen < 0:
        raise BadValue(field, f"{field} {text!r} is negative")
    return fen


def safe_event_id(prefix: str, key: str) -> str:
    """``prefix:key`` when the key is plain ASCII, else ``prefix:h:<sha-256>`` (stable, ≤ 128)."""
    if _PLAIN_ID.fullmatch(key):
        return f"{prefix}:{key}"
    return f"{prefix}:h:{hashlib.sha256(key.encode()).hexdigest()[:48]}"


class RowBuilder:
    """Turns rows of one file into events; one per import run."""

    def __init__(self, kind: ImportKind, context: RowContext) -> None:
        self.kind = kind
        self.ctx = context
        columns = context.mapping.columns
        self._columns = columns
        self._identity_columns = [(f, columns[f]) for f in IDENTITY_FIELDS if f in columns]
        self._amount_field = "amount_fen" if "amount_fen" in columns else "amount"
        self._refund_field = "refund_amount_fen" if "refund_amount_fen" in columns else "refund_amount"

    def _cell(self, values: list[str], field: str) -> str:
        index = self._columns.get(field)
        if index is None or index >= len(values):
            return ""
        return values[index].strip()

    def build(self, row: SourceRow) -> RowEvents | Rejection:
        try:
            if self.kind is ImportKind.MEMBERS:
                return self._member(row)
            return self._order(row)
        except BadValue as exc:
            column = self.ctx.mapping.column_of(exc.field) if exc.field else None
            return Rejection(row.line, exc.reason, column, row.values)

    def _identities(self, values: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, index in self._identity_columns:
            value = values[index].strip() if index < len(values) else ""
            if not value:
                continue
            if _SCIENTIFIC.fullmatch(value):
                raise BadValue(
                    name,
                    f"{name} {value!r} is in scientific notation (Excel shortened it): format the "
                    "column as text in Excel and export again",
                )
            found[name] = value
        if not found:
            names = ", ".join(self.ctx.mapping.column_of(f) or f for f, _ in self._identity_columns)
            raise BadValue(None, f"no identity: the row is empty in every identity column ({names})")
        return found

    def _store_id(self, values: list[str]) -> str | None:
        code = self._cell(values, "store_code")
        if not code:
            return None
        store_id = self.ctx.stores.get(code)
        if store_id is None:
            raise BadValue("store_code", f"unknown store code {code!r} (no store of this merchant has it)")
        return store_id

    def _channel(self, values: list[str]) -> str | None:
        channel = self._cell(values, "channel")
        if len(channel) > MAX_CHANNEL_LENGTH:
            raise BadValue("channel", f"channel is longer than {MAX_CHANNEL_LENGTH} characters")
        return channel or None

    def _time(self, values: list[str], field: str, default: datetime | None) -> datetime:
        text = self._cell(values, field)
        if not text:
            if default is None:
                raise BadValue(field, f"{field} is empty")
            return default
        try:
            return parse_time(text, self.ctx.timezone)
        except ValueError as exc:
            raise BadValue(field, str(exc)) from None

    def _member(self, row: SourceRow) -> RowEvents:
        values = row.values
        raw = self._identities(values)
        try:
            normalised = normalise_all(raw)
        except IdentityError as exc:
            field = exc.pointer.rsplit("/", 1)[-1]
            raise BadValue(field, f"{field}: {exc.detail}") from None
        tags = [t.strip() for t in _TAG_SEPARATORS.split(self._cell(values, "tags")) if t.strip()]
        for tag in tags:
            if len(tag) > MAX_TAG_LENGTH:
                raise BadValue("tags", f"tag {tag[:20]!r}… is longer than {MAX_TAG_LENGTH} characters")
        identities = {kind.value: value for kind, value in normalised.items()}
        event = {
            "event_id": self._member_event_id(normalised),
            "type": "member_joined",
            "occurred_at": self._time(values, "registered_at", self.ctx.default_time),
            "identities": identities,
            "channel": self._channel(values),
            "store_id": self._store_id(values),
            "properties": {"source": IMPORT_SOURCE},
        }
        pointers = {"/occurred_at": "registered_at", "/channel": "channel", "/store_id": "store_code"}
        return RowEvents(row, [event], [pointers], tags=list(dict.fromkeys(tags)), identities=identities)

    def _member_event_id(self, normalised: dict[IdentityKind, str]) -> str:
        """From the member number if the row has one, else from every identity of the row."""
        keys = (
            {IdentityKind.MEMBER_NO: normalised[IdentityKind.MEMBER_NO]}
            if IdentityKind.MEMBER_NO in normalised
            else normalised
        )
        vault, merchant = self.ctx.vault, self.ctx.merchant_id
        parts = sorted(f"{k.value}={vault.blind_index(merchant, k, v)}" for k, v in keys.items())
        return f"import:member:{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:40]}"

    def _order(self, row: SourceRow) -> RowEvents:
        values = row.values
        identities = self._identities(values)
        order_id = self._cell(values, "order_id")
        if not order_id:
            raise BadValue("order_id", "order_id is empty")
        if len(order_id) > MAX_ORDER_ID_LENGTH:
            raise BadValue("order_id", f"order_id is longer than {MAX_ORDER_ID_LENGTH} characters")
        paid_at = self._time(values, "paid_at", None)
        amount_text = self._cell(values, self._amount_field)
        if not amount_text:
            raise BadValue(self._amount_field, f"{self._amount_field} is empty")
        amount = _fen(amount_text, self._amount_field, in_fen=self._amount_field == "amount_fen")
        channel, store_id = self._channel(values), self._store_id(values)
        codes = [c for c in _CODE_SEPARATORS.split(self._cell(values, "coupon_codes")) if c]
        paid = {
            "event_id": safe_event_id("order", order_id),
            "type": "order_paid",
            "occurred_at": paid_at,
            "identities": identities,
            "channel": channel,
            "store_id": store_id,
            "properties": {
                "order_id": order_id,
                "amount_fen": amount,
                "coupon_codes": codes,
                "source": "import",
            },
        }
        common = {"/channel": "channel", "/store_id": "store_code", "/event_id": "order_id"}
        events = [paid]
        pointers = [
            {
                **common,
                "/occurred_at": "paid_at",
                "/properties/order_id": "order_id",
                "/properties/amount_fen": self._amount_field,
                "/properties/coupon_codes": "coupon_codes",
            }
        ]
        refund_text = self._cell(values, self._refund_field)
        if refund_text:
            refund = _fen(refund_text, self._refund_field, in_fen=self._refund_field == "refund_amount_fen")
            if refund > amount:
                raise BadValue(self._refund_field, f"the refund ({refund_text}) exceeds the amount paid")
            if refund:
                events.append(
                    {
                        "event_id": safe_event_id("refund", order_id),
                        "type": "order_refunded",
                        "occurred_at": self._time(values, "refunded_at", paid_at),
                        "identities": identities,
                        "channel": channel,
                        "store_id": store_id,
                        "properties": {"order_id": order_id, "amount_fen": refund, "source": "import"},
                    }
                )
                pointers.append(
                    {
                        **common,
                        "/occurred_at": "refunded_at",
                        "/properties/order_id": "order_id",
                        "/properties/amount_fen": self._refund_field,
                    }
                )
        return RowEvents(row, events, pointers, identities=identities)


def field_of_pointer(pointers: dict[str, str], pointer: str | None) -> str | None:
    """The field an ingestion pointer (``/events/7/identities/phone``) points at."""
    if not pointer:
        return None
    parts = pointer.split("/", 3)
    rest = "/" + parts[3] if len(parts) > 3 else ""
    if rest.startswith("/identities/"):
        name = rest.removeprefix("/identities/").split("/", 1)[0]
        return name if name in IDENTITY_FIELDS else None
    for prefix, field_name in pointers.items():
        if rest == prefix or rest.startswith(prefix + "/"):
            return field_name
    return None
