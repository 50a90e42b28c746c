"""Importing files through the ingestion path, chunk by chunk, on the suite's database engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from siyu.db import Database
from siyu.events.models import MemberRollup
from siyu.imports import facade
from siyu.imports.facade import ImportAborted, ImportFileInvalid
from siyu.imports.models import ImportRun
from siyu.kit.clock import utcnow
from siyu.members import repository as members_repo
from tests.imports.conftest import Importer, Shop, excel_time, read_rejected, write_csv, write_xlsx

MEMBERS_HEADER = ["手机号", "会员号", "注册时间", "标签", "渠道", "门店编码", "姓名"]
ORDERS_HEADER = ["订单号", "手机号", "实付金额", "支付时间", "门店编码", "备注"]


def rollups(db: Database, merchant_id: str) -> dict[str, MemberRollup]:
    with db.reading() as session:
        rows = session.execute(select(MemberRollup).where(MemberRollup.merchant_id == merchant_id)).scalars()
        return {r.member_id: r for r in rows}


def tags(db: Database, merchant_id: str, member_id: str) -> list[str]:
    with db.reading() as session:
        return members_repo.tags_of(session, merchant_id, member_id)


class TestMembersImport:
    def test_csv_with_chinese_headers(self, tmp_path: Path, shop: Shop, run_import: Importer) -> None:
        # given
        path = write_csv(
            tmp_path / "会员.csv",
            [
                MEMBERS_HEADER,
                ["13800138000", "M001", "2025-01-02 08:00", "VIP、咖啡爱好者", "小程序", "XH01", "张三"],
                ["13900139000", "", "", "", "", "", "李四"],
                ["", "M001", "", "老客", "", "", "张三"],
            ],
        )
        # when
        summary = run_import(shop, "members", path)
        # then
        assert (summary.rows_read, summary.accepted, summary.duplicates, summary.rejected) == (3, 2, 1, 0)
        assert summary.ignored_columns == ("姓名",)
        zhang = shop.member_of("phone", "13800138000")
        assert zhang is not None
        assert zhang == shop.member_of("member_no", "M001")
        assert shop.member_of("phone", "13900139000") not in (None, zhang)
        joined = {e.member_id: e for e in shop.events("member_joined")}
        assert joined[zhang].occurred_at == datetime(2025, 1, 2, 0, 0, tzinfo=UTC)
        assert joined[zhang].properties == {"source": "import"}
        assert joined[zhang].store_id == shop.stores["XH01"]
        assert joined[zhang].channel == "小程序"
        assert tags(shop.db, shop.merchant_id, zhang) == ["VIP", "咖啡爱好者", "老客"]
        assert summary.rejected_file is None, "nothing was rejected, so no file is named"

    def test_xlsx(self, tmp_path: Path, shop: Shop, run_import: Importer) -> None:
        # given: numbers and dates as Excel stores them
        path = write_xlsx(
            tmp_path / "members.xlsx",
            [
                ["会员卡号", "手机", "注册时间"],
                ["C100", 13700137000, excel_time(2025, 3, 1, 9, 30)],
                ["C101", 13700137001, None],
            ],
        )
        # when
        summary = run_import(shop, "members", path)
        # then
        assert (summary.file_format, summary.accepted, summary.rejected) == ("xlsx", 2, 0)
        member = shop.member_of("phone", "13700137000")
        assert member is not None
        assert member == shop.member_of("member_no", "C100")
        (event,) = [e for e in shop.events("member_joined") if e.member_id == member]
        assert event.occurred_at == datetime(2025, 3, 1, 1, 30, tzinfo=UTC)

    def test_importing_the_same_file_again_counts_once_and_changes_nothing(
        self, tmp_path: Path, shop: Shop, run_import: Importer
    ) -> None:
        # given
        path = write_csv(
            tmp_path / "m.csv",
            [["phone", "tags"], ["13800138000", "vip"], ["13800138001", ""], ["13800138002", "新客"]],
        )
        run_import(shop, "members", path)
        before = [(e.event_id, e.member_id, e.occurred_at) for e in shop.events()]
        # when
        again = run_import(shop, "members", path)
        # then
        assert (again.rows_read, again.accepted, again.duplicates, again.rejected) == (3, 0, 3, 0)
        assert [(e.event_id, e.member_id, e.occurred_at) for e in shop.events()] == before

    def test_a_later_file_adds_tags_to_members_imported_before(
        self, tmp_path: Path, shop: Shop, run_import: Importer
    ) -> None:
        # given
        run_import(shop, "members", write_csv(tmp_path / "a.csv", [["手机"], ["13800138000"]]))
        # when
        summary = run_import(
            shop, "members", write_csv(tmp_path / "b.csv", [["手机", "标签"], ["13800138000", "高潜"]])
        )
        # then
        assert (summary.accepted, summary.duplicates) == (0, 1)
        member = shop.member_of("phone", "13800138000")
        assert member is not None
        assert tags(shop.db, shop.merchant_id, member) == ["高潜"]
        assert len(shop.events()) == 1


class TestOrdersImport:
    def test_csv_amounts_in_yuan_become_exact_fen(
        self, tmp_path: Path, shop: Shop, run_import: Importer
    ) -> None:
        # given
        path = write_csv(
            tmp_path / "订单.csv",
            [
                ORDERS_HEADER,
                ["A1", "13800138000", "12.30", "2026-05-01 12:30", "XH01", ""],
                ["A2", "13800138000", "0.1", "2026/5/2 08:00", "JA02", ""],
                ["A3", "13800138001", "1,234.56", "2026-05-03", "", ""],
            ],
        )
        # when
        summary = run_import(shop, "orders", path)
        # then
        assert (summary.accepted, summary.rejected) == (3, 0)
        events = {e.event_id: e for e in shop.events("order_paid")}
        assert {k: v.amount_fen for k, v in events.items()} == {
            "order:A1": 1230,
            "order:A2": 10,
            "order:A3": 123456,
        }
        assert events["order:A1"].occurred_at == datetime(2026, 5, 1, 4, 30, tzinfo=UTC)
        assert events["order:A2"].store_id == shop.stores["JA02"]
        assert events["order:A3"].store_id is None
        assert events["order:A1"].properties["order_id"] == "A1"
        member = shop.member_of("phone", "13800138000")
        assert member is not None
        rollup = rollups(shop.db, shop.merchant_id)[member]
        assert (rollup.order_count, rollup.total_spend_fen) == (2, 1240)

    def test_xlsx_with_numeric_and_date_cells(self, tmp_path: Path, shop: Shop, run_import: Importer) -> None:
        # given
        path = write_xlsx(
            tmp_path / "orders.xlsx",
            [
                ["订单编号", "手机", "支付金额", "付款时间"],
                ["B1", 13800138000, 12.3, excel_time(2026, 5, 1, 12, 30)],
                ["B2", 13800138000, 26.910000000000004, "2026-05-02 09:00:00"],
                [10003, 13800138000, 8, excel_time(2026, 5, 3)],
            ],
        )
        # when
        summary = run_import(shop, "orders", path)
        # then
        assert (summary.accepted, summary.rejected) == (3, 0)
        assert {e.event_id: e.amount_fen for e in shop.events("order_paid")} == {
            "order:B1": 1230,
            "order:B2": 2691,
            "order:10003": 800,
        }

    def test_rejected_rows_file_has_line_reason_column_and_the_row(
        self, tmp_path: Path, shop: Shop, run_import: Importer
    ) -> None:
        # given
        future = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
        path = write_csv(
            tmp_path / "orders.csv",
            [
                ORDERS_HEADER,
                ["A1", "13800138000", "12.30", "2026-05-01 12:30", "XH01", "ok"],
                ["A2", "13800138000", "12.345", "2026-05-01 12:30", "XH01", ""],
                ["A3", "13800138000", "abc", "2026-05-01 12:30", "", ""],
                ["A4", "13800138000", "5", "2026-05-01 12:30", "NOPE", ""],
                ["A5", "123", "5", "2026-05-01 12:30", "", ""],
                ["A6", "13800138000", "5", future, "", ""],
                ["", "13800138000", "5", "2026-05-01", "", ""],
                ["A8", "13800138000", "5", "2026-05-01", "", "", "extra cell"],
            ],
        )
        # when
        summary = run_import(shop, "orders", path, chunk_size=3)
        # then
        assert (summary.rows_read, summary.accepted, summary.rejected) == (8, 2, 6)
        rejected = read_rejected(tmp_path / "orders.rejected.csv")
        assert rejected[0] == ["line", "reason", "column", *ORDERS_HEADER]
        assert [(r[0], r[2], r[3:]) for r in rejected[1:]] == [
            ("3", "实付金额", ["A2", "13800138000", "12.345", "2026-05-01 12:30", "XH01", ""]),
            ("4", "实付金额", ["A3", "13800138000", "abc", "2026-05-01 12:30", "", ""]),
            ("5", "门店编码", ["A4", "13800138000", "5", "2026-05-01 12:30", "NOPE", ""]),
            ("6", "手机号", ["A5", "123", "5", "2026-05-01 12:30", "", ""]),
            ("7", "支付时间", ["A6", "13800138000", "5", future, "", ""]),
            ("8", "订单号", ["", "13800138000", "5", "2026-05-01", "", ""]),
        ]
        reasons = [r[1] for r in rejected[1:]]
        assert reasons[0] == "amount '12.345' has more than 2 decimal places (fen)"
        assert reasons[1] == "amount 'abc' is not an amount"
        assert reasons[2] == "unknown store code 'NOPE' (no store of this merchant has it)"
        assert reasons[3].startswith("phone: not a possible phone number")
        assert reasons[4] == "paid_at: occurred_at is more than a day in the future"
        assert reasons[5] == "order_id is empty"

    def test_reimport_counts_once_and_a_later_refund_is_added(
        self, tmp_path: Path, shop: Shop, run_import: Importer
    ) -> None:
        # given
        header = ["订单号", "手机", "实付金额", "支付时间", "退款金额", "退款时间"]
        first = write_csv(
            tmp_path / "o1.csv", [header, ["A1", "13800138000", "30", "2026-05-01 12:00", "", ""]]
        )
        run_import(shop, "orders", first)
        # when: the same file, then a later export where the order was partly refunded
        again = run_import(shop, "orders", first)
        later = write_csv(
            tmp_path / "o2.csv",
            [header, ["A1", "13800138000", "30", "2026-05-01 12:00", "10.5", "2026-05-03 09:00"]],
        )
        refunded = run_import(shop, "orders", later)
        # then
        assert (again.accepted, again.duplicates) == (0, 1)
        assert (refunded.accepted, refunded.duplicates) == (1, 0)
        (refund,) = shop.events("order_refunded")
        assert (refund.event_id, refund.amount_fen) == ("refund:A1", 1050)
        assert refund.occurred_at == datetime(2026, 5, 3, 1, 0, tzinfo=UTC)
        member = shop.member_of("phone", "13800138000")
        assert member is not None
        rollup = rollups(shop.db, shop.merchant_id)[member]
        assert (rollup.order_count, rollup.total_spend_fen, rollup.refund_count, rollup.refund_fen) == (
            1,
            3000,
            1,
            1050,
        )

    def test_mapping_overrides_and_amounts_in_fen(
        self, tmp_path: Path, shop: Shop, run_import: Importer
    ) -> None:
        # given: headers no alias knows
        path = write_csv(
            tmp_path / "pos.csv",
            [["单据", "客户电话", "分", "时间"], ["P1", "13800138000", "1230", "2026-05-01"]],
        )
        # when
        summary = run_import(
            shop,
            "orders",
            path,
            overrides={"order_id": "单据", "phone": "客户电话", "amount_fen": "分", "paid_at": "时间"},
        )
        # then
        assert summary.mapping == {
            "order_id": "单据",
            "phone": "客户电话",
            "amount_fen": "分",
            "paid_at": "时间",
        }
        assert [(e.event_id, e.amount_fen) for e in shop.events()] == [("order:P1", 1230)]

    def test_chunks_give_the_same_result_and_the_run_keeps_the_counts(
        self, tmp_path: Path, shop: Shop, run_import: Importer, db: Database
    ) -> None:
        # given
        rows = [["订单号", "手机", "金额", "支付时间"]]
        rows += [[f"C{n}", f"1380013{n % 3:04d}", f"{n}.5", "2026-05-01"] for n in range(1, 12)]
        rows += [["C1", "13800130001", "1.5", "2026-05-01"], ["C13", "13800130001", "x", "2026-05-01"]]
        path = write_csv(tmp_path / "o.csv", rows)
        # when
        summary = run_import(shop, "orders", path, chunk_size=4)
        # then
        assert (summary.rows_read, summary.accepted, summary.duplicates, summary.rejected) == (13, 11, 1, 1)
        assert summary.status == "completed"
        with db.reading() as session:
            run = session.get(ImportRun, (shop.merchant_id, summary.import_id))
            assert run is not None
            assert (run.rows_read, run.accepted, run.duplicates, run.rejected) == (13, 11, 1, 1)
        assert sum(r.total_spend_fen for r in rollups(db, shop.merchant_id).values()) == sum(
            n * 100 + 50 for n in range(1, 12)
        )


class TestImportFailures:
    def test_a_missing_column_is_refused_before_anything_is_written(
        self, tmp_path: Path, shop: Shop, run_import: Importer, db: Database
    ) -> None:
        path = write_csv(tmp_path / "o.csv", [["手机", "金额"], ["13800138000", "1"]])
        with pytest.raises(ImportFileInvalid, match="no order_id"):
            run_import(shop, "orders", path)
        with db.reading() as session:
            assert session.execute(select(ImportRun)).first() is None

    def test_an_unknown_merchant(self, tmp_path: Path, shop: Shop, run_import: Importer) -> None:
        path = write_csv(tmp_path / "m.csv", [["手机"], ["13800138000"]])
        ghost = Shop("mch_nobody", {}, shop.vault, shop.db)
        with pytest.raises(facade.Problem, match="no merchant mch_nobody"):
            run_import(ghost, "members", path)

    def test_an_undecodable_line_stops_the_import_and_the_rows_before_it_stay(
        self, tmp_path: Path, shop: Shop, run_import: Importer, db: Database
    ) -> None:
        # given: five good ASCII rows, then a GBK line
        lines = ["phone,tags"] + [f"1380013800{n},vip" for n in range(5)] + ["13800138009,咖啡"]
        path = tmp_path / "m.csv"
        path.write_bytes("\n".join(lines).encode("gbk"))
        # when
        with pytest.raises(ImportAborted) as caught:
            run_import(shop, "members", path, chunk_size=2)
        # then
        assert caught.value.detail.startswith("line 7 is not valid UTF-8")
        assert "the 5 rows before it were imported" in caught.value.detail
        assert (caught.value.summary.status, caught.value.summary.accepted) == ("failed", 5)
        assert len(shop.events()) == 5
        with db.reading() as session:
            run = session.get(ImportRun, (shop.merchant_id, caught.value.summary.import_id))
            assert run is not None
            assert run.status == "failed"
            assert run.error == caught.value.detail

    def test_a_stale_rejected_file_is_removed_when_nothing_is_rejected(
        self, tmp_path: Path, shop: Shop, run_import: Importer
    ) -> None:
        # given
        (tmp_path / "m.rejected.csv").write_text("old errors")
        path = write_csv(tmp_path / "m.csv", [["手机"], ["13800138000"]])
        # when
        run_import(shop, "members", path)
        # then
        assert not (tmp_path / "m.rejected.csv").exists()
