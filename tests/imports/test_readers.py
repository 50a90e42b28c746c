"""Readers stream a file row by row, report exact line numbers, and refuse what they cannot read."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from siyu.imports.readers import FileEncodingError, FileFormat, ImportFileError, cell_text, open_table
from tests.imports.conftest import excel_time, write_xlsx


def table(data: bytes, name: str = "f.csv", **options: str):  # type: ignore[no-untyped-def]
    return open_table(io.BytesIO(data), name=name, **options)


class TestCsvReader:
    def test_reads_header_and_rows_with_their_line_numbers(self) -> None:
        # given: a blank line before the header, a blank row, and a quoted cell over two lines
        data = '\n手机号,备注\n13800138000,"多行\n备注"\n\n13800138001,x\n'.encode()
        # when
        reader = table(data)
        rows = list(reader.rows())
        # then
        assert reader.format is FileFormat.CSV
        assert reader.header == ["手机号", "备注"]
        assert [(r.line, r.values) for r in rows] == [
            (3, ["13800138000", "多行\n备注"]),
            (6, ["13800138001", "x"]),
        ]
        assert reader.progress() == len(data) == reader.progress_total

    def test_a_utf8_byte_order_mark_is_not_part_of_the_first_header(self) -> None:
        reader = table("\ufeff手机号\n13800138000\n".encode())
        assert reader.header == ["手机号"]

    def test_gbk_without_an_encoding_names_the_line_and_suggests_gb18030(self) -> None:
        # given: an ASCII header, then a GBK line
        data = "phone,tags\n13800138000,vip\n13800138001,咖啡\n".encode("gbk")
        reader = table(data)
        rows = reader.rows()
        assert next(rows).line == 2
        # when
        with pytest.raises(FileEncodingError) as caught:
            next(rows)
        # then
        message = str(caught.value)
        assert message.startswith("line 3 is not valid UTF-8 (byte 0xbf at byte 13 of the line)")
        assert "--encoding gb18030" in message
        assert "\n" not in message

    def test_gbk_header_fails_before_any_row(self) -> None:
        with pytest.raises(FileEncodingError, match=r"^line 1 is not valid UTF-8"):
            table("手机号\n13800138000\n".encode("gbk"))

    def test_gb18030_reads_a_gbk_file(self) -> None:
        reader = table("手机号,标签\n13800138000,咖啡爱好者\n".encode("gbk"), encoding="gb18030")
        assert reader.header == ["手机号", "标签"]
        assert [r.values for r in reader.rows()] == [["13800138000", "咖啡爱好者"]]

    def test_a_utf8_file_read_as_gb18030_is_caught_by_its_byte_order_mark(self) -> None:
        with pytest.raises(ImportFileError, match="UTF-8 byte-order mark"):
            table("\ufeff手机号\n1\n".encode(), encoding="gb18030")

    @pytest.mark.parametrize(
        ("data", "name", "message"),
        [
            ("手机号\n".encode("utf-16"), "f.txt", "UTF-16"),
            (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "f.xls", ".xls"),
            (b"", "f.csv", "empty"),
            (b"\n\n  \n", "f.csv", "no header row"),
            (b"not a zip", "f.xlsx", "not a valid .xlsx"),
        ],
        ids=["utf-16", "old-xls", "empty", "blank", "fake-xlsx"],
    )
    def test_files_it_cannot_read_are_refused_with_a_reason(
        self, data: bytes, name: str, message: str
    ) -> None:
        with pytest.raises(ImportFileError, match=message):
            table(data, name=name)

    def test_unknown_encoding_is_refused(self) -> None:
        with pytest.raises(ImportFileError, match="unknown encoding 'klingon'"):
            table(b"a\n1\n", encoding="klingon")

    def test_tab_separated_files_are_recognised(self) -> None:
        reader = table("手机号\t标签\n13800138000\tvip,新客\n".encode())
        assert reader.header == ["手机号", "标签"]
        assert [r.values for r in reader.rows()] == [["13800138000", "vip,新客"]]


class TestXlsxReader:
    def test_reads_the_first_sheet_from_its_first_non_blank_row(self, tmp_path: Path) -> None:
        # given
        path = write_xlsx(
            tmp_path / "m.xlsx",
            [
                ["会员卡号", "手机", "注册时间"],
                ["C1", 13800138000, excel_time(2025, 3, 1, 9, 30)],
                [],
                ["C2", None, None],
            ],
            before=2,
        )
        # when
        with path.open("rb") as handle:
            reader = open_table(handle, name=path.name)
            rows = list(reader.rows())
            reader.close()
        # then
        assert reader.format is FileFormat.XLSX
        assert reader.header == ["会员卡号", "手机", "注册时间"]
        assert [(r.line, r.values) for r in rows] == [
            (4, ["C1", "13800138000", "2025-03-01 09:30:00"]),
            (6, ["C2"]),
        ]
        assert reader.progress_unit == "rows"

    def test_a_named_sheet(self, tmp_path: Path) -> None:
        path = write_xlsx(tmp_path / "m.xlsx", [["手机"], ["13800138000"]], sheet="会员")
        with path.open("rb") as handle:
            reader = open_table(handle, name=path.name, sheet="会员")
            assert [r.values for r in reader.rows()] == [["13800138000"]]
            reader.close()

    def test_an_unknown_sheet_lists_the_sheets(self, tmp_path: Path) -> None:
        path = write_xlsx(tmp_path / "m.xlsx", [["手机"]], sheet="会员")
        with path.open("rb") as handle, pytest.raises(ImportFileError, match="its sheets are: Notes, 会员"):
            open_table(handle, name=path.name, sheet="订单")


class TestCellText:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (None, ""),
            (12.3, "12.3"),
            (26.910000000000004, "26.91"),
            (0.1 + 0.2, "0.3"),
            (13800138000.0, "13800138000"),
            (1e16, "10000000000000000"),
            (7, "7"),
            (True, "true"),
            (excel_time(2026, 5, 1, 12, 30), "2026-05-01 12:30:00"),
            ("  as is ", "  as is "),
        ],
    )
    def test_cells_read_as_a_person_sees_them(self, value: object, text: str) -> None:
        assert cell_text(value) == text
