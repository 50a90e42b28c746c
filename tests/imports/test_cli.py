"""``siyu import members|orders``: a mapping report, a summary (or JSON), one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli.main import app
from siyu.config import Settings
from tests.conftest import DatabaseUnderTest
from tests.imports.conftest import Shop, read_rejected, write_csv, write_xlsx

runner = CliRunner()


@pytest.fixture
def cli_env(
    tmp_path: Path, test_database: DatabaseUnderTest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI on the suite's database, with the instance secret the shop's vault uses."""
    monkeypatch.setenv("SIYU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIYU_DATABASE_URL", test_database.url)
    monkeypatch.setenv("SIYU_SECRET_KEY", settings.resolved_secret_key())


def siyu(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


@pytest.mark.usefixtures("cli_env")
class TestImportCommand:
    def test_members_report_the_mapping_and_a_summary(self, tmp_path: Path, shop: Shop) -> None:
        # given
        path = write_csv(tmp_path / "会员.csv", [["手机号", "会员号", "姓名"], ["13800138000", "M1", "张三"]])
        # when
        code, output = siyu("import", "members", path, "-m", shop.merchant_id)
        # then
        assert code == 0, output
        assert "会员.csv (csv): 2 columns mapped" in output
        assert "手机号 → phone" in output
        assert "会员号 → member_no" in output
        assert "ignored: 姓名" in output
        assert "1 rows read · 1 accepted · 0 duplicates · 0 rejected" in output
        assert shop.member_of("phone", "13800138000") is not None

    def test_orders_as_json_with_the_rejected_rows_file(self, tmp_path: Path, shop: Shop) -> None:
        # given
        header = ["订单号", "手机号", "实付金额", "支付时间", "门店编码"]
        path = write_csv(
            tmp_path / "orders.csv",
            [
                header,
                ["A1", "13800138000", "12.30", "2026-05-01 12:30", "XH01"],
                ["A2", "13800138000", "1", "2026-05-01", "S9"],
            ],
        )
        # when
        code, output = siyu("import", "orders", path, "-m", shop.merchant_id, "--json")
        # then
        assert code == 0, output
        data = json.loads(output)
        assert (data["rows_read"], data["accepted"], data["duplicates"], data["rejected"]) == (2, 1, 0, 1)
        assert data["status"] == "completed"
        assert data["mapping"]["amount"] == "实付金额"
        assert data["rejected_file"] == str(tmp_path / "orders.rejected.csv")
        assert read_rejected(tmp_path / "orders.rejected.csv")[1] == [
            "3", "unknown store code 'S9' (no store of this merchant has it)", "门店编码",
            "A2", "13800138000", "1", "2026-05-01", "S9",
        ]  # fmt: skip
        # and when: the same file again
        code, output = siyu("import", "orders", path, "-m", shop.merchant_id, "--json")
        # then: it counts once
        again = json.loads(output)
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1, 1)
        assert [e.event_id for e in shop.events()] == ["order:A1"]

    def test_a_gbk_file_without_encoding_is_one_clear_error_and_works_with_gb18030(
        self, tmp_path: Path, shop: Shop
    ) -> None:
        # given: what Excel on Chinese Windows saves as CSV
        path = write_csv(tmp_path / "会员.csv", [["手机号", "标签"], ["13800138000", "咖啡"]], encoding="gbk")
        # when
        code, output = siyu("import", "members", path, "-m", shop.merchant_id)
        # then
        assert code == 2
        line = error_line(output)
        assert "line 1 is not valid UTF-8" in line
        assert "--encoding gb18030" in line
        assert shop.events() == []
        # and when
        code, output = siyu("import", "members", path, "-m", shop.merchant_id, "--encoding", "gb18030")
        # then
        assert code == 0, output
        assert "标签 → tags" in output
        assert len(shop.events()) == 1

    def test_a_missing_required_column_is_one_error_before_any_row(self, tmp_path: Path, shop: Shop) -> None:
        path = write_csv(
            tmp_path / "o.csv", [["手机号", "实付金额", "支付时间"], ["13800138000", "1", "2026-05-01"]]
        )
        code, output = siyu("import", "orders", path, "-m", shop.merchant_id)
        assert code == 2
        assert "no order_id (订单号) column" in error_line(output)
        assert "--map order_id=HEADER" in output
        assert shop.events() == []

    def test_map_and_a_chosen_rejected_path(self, tmp_path: Path, shop: Shop) -> None:
        # given
        path = write_csv(tmp_path / "m.csv", [["联系方式", "卡"], ["13800138000", "C1"], ["12", "C2"]])
        rejected = tmp_path / "out" / "bad.csv"
        # when
        code, output = siyu(
            "import", "members", path, "-m", shop.merchant_id,
            "--map", "phone=联系方式", "--map", "member_no=卡", "--rejected", rejected,
        )  # fmt: skip
        # then
        assert code == 0, output
        assert "联系方式 → phone" in output
        assert f"rejected rows: {rejected}" in output
        assert [r[0] for r in read_rejected(rejected)] == ["line", "3"]
        assert not (tmp_path / "m.rejected.csv").exists()

    def test_an_xlsx_sheet(self, tmp_path: Path, shop: Shop) -> None:
        path = write_xlsx(tmp_path / "book.xlsx", [["会员号"], ["C1"], ["C2"]], sheet="会员")
        code, output = siyu("import", "members", path, "-m", shop.merchant_id, "--sheet", "会员", "--json")
        assert code == 0, output
        assert json.loads(output)["accepted"] == 2

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["-m", "mch_nobody"], "no merchant mch_nobody"),
            (["--map", "phone"], "--map takes field=Header"),
            (["--map", "nickname=昵称"], "unknown field 'nickname'"),
            (["--sheet", "会员"], "a sheet applies to .xlsx files only"),
            (["--encoding", "klingon"], "unknown encoding 'klingon'"),
        ],
    )
    def test_bad_input_is_one_line_with_exit_2(
        self, tmp_path: Path, shop: Shop, args: list[str], message: str
    ) -> None:
        path = write_csv(tmp_path / "m.csv", [["手机号"], ["13800138000"]])
        merchant = [] if "-m" in args else ["-m", shop.merchant_id]
        code, output = siyu("import", "members", path, *merchant, *args)
        assert code == 2
        assert message in error_line(output)

    def test_the_rejected_file_may_not_be_the_input(self, tmp_path: Path, shop: Shop) -> None:
        path = write_csv(tmp_path / "m.csv", [["手机号"], ["13800138000"]])
        code, output = siyu("import", "members", path, "-m", shop.merchant_id, "--rejected", path)
        assert code == 2
        assert "must not be the file being imported" in error_line(output)


class TestImportHelp:
    @pytest.mark.parametrize("kind", ["members", "orders"])
    def test_help_has_an_example_and_the_header_aliases(self, kind: str) -> None:
        result = runner.invoke(app, ["import", kind, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "Example" in result.output
        assert "手机号" in result.output
        assert "--encoding" in result.output
        assert "--map" in result.output
