"""Times in the merchant's zone; deterministic event ids; reasons that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from siyu.imports.mapping import ImportKind, resolve_mapping
from siyu.imports.readers import SourceRow
from siyu.imports.rows import (
    Rejection,
    RowBuilder,
    RowContext,
    RowEvents,
    field_of_pointer,
    parse_time,
    safe_event_id,
)
from siyu.kit.pii import IdentifierVault

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
VAULT = IdentifierVault("test-secret-" + "x" * 40)


def builder(kind: ImportKind, header: list[str], stores: dict[str, str] | None = None) -> RowBuilder:
    context = RowContext(
        merchant_id="mch_1",
        mapping=resolve_mapping(kind, header),
        timezone=SHANGHAI,
        stores=stores or {},
        default_time=NOW,
        vault=VAULT,
    )
    return RowBuilder(kind, context)


class TestParseTime:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-05-01 12:30:00", datetime(2026, 5, 1, 4, 30, tzinfo=UTC)),
            ("2026-05-01 12:30", datetime(2026, 5, 1, 4, 30, tzinfo=UTC)),
            ("2026/5/1", datetime(2026, 4, 30, 16, 0, tzinfo=UTC)),
            ("2026年5月1日 08:00", datetime(2026, 5, 1, 0, 0, tzinfo=UTC)),
            ("2026-05-01T12:30:00+00:00", datetime(2026, 5, 1, 12, 30, tzinfo=UTC)),
            ("2026-05-01T12:30:00Z", datetime(2026, 5, 1, 12, 30, tzinfo=UTC)),
            ("2026-05-01 12:30:00.250", datetime(2026, 5, 1, 4, 30, 0, 250000, tzinfo=UTC)),
        ],
    )
    def test_naive_times_are_in_the_merchants_zone(self, text: str, expected: datetime) -> None:
        assert parse_time(text, SHANGHAI) == expected

    @pytest.mark.parametrize("text", ["45412.5", "2026-02-30", "昨天", "2026-05-01 25:00"])
    def test_what_is_not_a_time_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="not a"):
            parse_time(text, SHANGHAI)


class TestMemberRows:
    def test_the_event_id_comes_from_the_member_number_when_there_is_one(self) -> None:
        # given
        rows = builder(ImportKind.MEMBERS, ["会员号", "手机"])
        # when
        first = rows.build(SourceRow(2, ["M001", "13800138000"]))
        again = rows.build(SourceRow(9, [" M001 ", "13900139000"]))
        # then
        assert isinstance(first, RowEvents)
        assert isinstance(again, RowEvents)
        assert first.events[0]["event_id"] == again.events[0]["event_id"]
        assert first.events[0]["event_id"].startswith("import:member:")
        assert "13800138000" not in first.events[0]["event_id"]

    def test_without_member_number_every_normalised_identity_counts(self) -> None:
        rows = builder(ImportKind.MEMBERS, ["手机", "email"])
        one = rows.build(SourceRow(2, ["138 0013 8000", "A@x.CN"]))
        same = rows.build(SourceRow(3, ["+8613800138000", "a@x.cn"]))
        other = rows.build(SourceRow(4, ["13800138000", ""]))
        assert isinstance(one, RowEvents)
        assert isinstance(same, RowEvents)
        assert isinstance(other, RowEvents)
        assert one.events[0]["event_id"] == same.events[0]["event_id"] != other.events[0]["event_id"]

    def test_member_joined_at_registration_with_tags(self) -> None:
        # when
        built = builder(ImportKind.MEMBERS, ["手机", "注册时间", "标签", "渠道"]).build(
            SourceRow(2, ["13800138000", "2025-01-02 08:00", "VIP，咖啡爱好者;VIP", "小程序"])
        )
        # then
        assert isinstance(built, RowEvents)
        event = built.events[0]
        assert event["type"] == "member_joined"
        assert event["occurred_at"] == datetime(2025, 1, 2, 0, 0, tzinfo=UTC)
        assert event["properties"] == {"source": "import"}
        assert event["channel"] == "小程序"
        assert built.tags == ["VIP", "咖啡爱好者"]

    def test_without_registration_time_the_import_time(self) -> None:
        built = builder(ImportKind.MEMBERS, ["手机"]).build(SourceRow(2, ["13800138000"]))
        assert isinstance(built, RowEvents)
        assert built.events[0]["occurred_at"] == NOW

    @pytest.mark.parametrize(
        ("values", "column", "reason"),
        [
            (["", ""], None, "no identity"),
            (["123", ""], "手机", "phone: not a possible phone number"),
            (["1.38001E+10", ""], "手机", "scientific notation"),
            (["13800138000", "S9"], "门店", "unknown store code 'S9'"),
        ],
    )
    def test_rejections_name_the_column(self, values: list[str], column: str | None, reason: str) -> None:
        built = builder(ImportKind.MEMBERS, ["手机", "门店"], {"XH01": "str_1"}).build(SourceRow(7, values))
        assert isinstance(built, Rejection)
        assert (built.line, built.column) == (7, column)
        assert reason in built.reason
        assert built.values == values


class TestOrderRows:
    HEADER: ClassVar[list[str]] = ["订单号", "手机", "实付金额", "支付时间", "门店编码", "退款金额", "券码"]

    def test_an_order_with_a_refund_becomes_two_events(self) -> None:
        # when
        built = builder(ImportKind.ORDERS, self.HEADER, {"XH01": "str_1"}).build(
            SourceRow(2, ["A-1", "13800138000", "¥1,234.50", "2026-05-01 12:30", "XH01", "34.5", "C1, C2"])
        )
        # then
        assert isinstance(built, RowEvents)
        paid, refund = built.events
        assert paid["event_id"] == "order:A-1"
        assert paid["properties"] == {
            "order_id": "A-1",
            "amount_fen": 123450,
            "coupon_codes": ["C1", "C2"],
            "source": "import",
        }
        assert paid["store_id"] == "str_1"
        assert refund["event_id"] == "refund:A-1"
        assert refund["type"] == "order_refunded"
        assert refund["properties"]["amount_fen"] == 3450
        assert refund["occurred_at"] == paid["occurred_at"]

    def test_an_order_id_that_is_not_plain_ascii_gets_a_stable_hashed_event_id(self) -> None:
        assert safe_event_id("order", "订单 1") == safe_event_id("order", "订单 1")
        assert safe_event_id("order", "订单 1").startswith("order:h:")
        assert len(safe_event_id("order", "x" * 128)) <= 128

    @pytest.mark.parametrize(
        ("amount", "refund", "column", "reason"),
        [
            ("12.345", "", "实付金额", "amount '12.345' has more than 2 decimal places"),
            ("abc", "", "实付金额", "amount 'abc' is not an amount"),
            ("-1", "", "实付金额", "negative"),
            ("", "", "实付金额", "amount is empty"),
            ("10", "10.01", "退款金额", "exceeds the amount paid"),
        ],
    )
    def test_bad_amounts_are_rejected_with_their_column(
        self, amount: str, refund: str, column: str, reason: str
    ) -> None:
        built = builder(ImportKind.ORDERS, self.HEADER).build(
            SourceRow(5, ["A-1", "13800138000", amount, "2026-05-01", "", refund, ""])
        )
        assert isinstance(built, Rejection)
        assert built.column == column
        assert reason in built.reason


class TestFieldOfPointer:
    def test_ingestion_pointers_lead_back_to_fields(self) -> None:
        pointers = {"/occurred_at": "paid_at", "/properties/amount_fen": "amount"}
        assert field_of_pointer(pointers, "/events/3/identities/phone") == "phone"
        assert field_of_pointer(pointers, "/events/3/occurred_at") == "paid_at"
        assert field_of_pointer(pointers, "/events/0/properties/amount_fen") == "amount"
        assert field_of_pointer(pointers, "/events/0/type") is None
        assert field_of_pointer(pointers, None) is None
