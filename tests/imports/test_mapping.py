"""Columns are found by header in Chinese or English; overrides win; what cannot work is refused."""

from __future__ import annotations

import pytest

from siyu.imports.mapping import ImportKind, parse_overrides, resolve_mapping
from siyu.imports.readers import ImportFileError

MEMBERS, ORDERS = ImportKind.MEMBERS, ImportKind.ORDERS


class TestResolveMapping:
    def test_chinese_headers(self) -> None:
        # when
        mapping = resolve_mapping(
            ORDERS, ["订单号", "手机号", "会员卡号", "实付金额", "支付时间", "门店编码", "备注"]
        )
        # then
        assert mapping.as_dict() == {
            "order_id": "订单号",
            "phone": "手机号",
            "member_no": "会员卡号",
            "amount": "实付金额",
            "paid_at": "支付时间",
            "store_code": "门店编码",
        }
        assert mapping.ignored == ("备注",)

    def test_english_headers_in_any_case_and_spacing(self) -> None:
        mapping = resolve_mapping(
            MEMBERS, ["Phone Number", "OpenID", "UnionId", "Alipay_User_ID", "Registered At"]
        )
        assert mapping.as_dict() == {
            "phone": "Phone Number",
            "wechat_openid": "OpenID",
            "wechat_unionid": "UnionId",
            "alipay_user_id": "Alipay_User_ID",
            "registered_at": "Registered At",
        }

    def test_the_better_alias_wins_and_the_other_column_is_ignored(self) -> None:
        # given: 订单金额 (list price) and 实付金额 (paid); 下单时间 and 支付时间
        header = ["订单金额", "订单号", "下单时间", "手机", "实付金额", "支付时间"]
        # when
        mapping = resolve_mapping(ORDERS, header)
        # then
        assert mapping.column_of("amount") == "实付金额"
        assert mapping.column_of("paid_at") == "支付时间"
        assert set(mapping.ignored) == {"订单金额", "下单时间"}

    def test_full_width_brackets_match(self) -> None:
        mapping = resolve_mapping(ORDERS, ["订单号", "手机", "支付时间", "实付金额（分）"])
        assert mapping.column_of("amount_fen") == "实付金额（分）"

    def test_overrides_take_a_column_and_can_unmap_a_field(self) -> None:
        # given
        header = ["联系方式", "手机号", "卡号"]
        # when
        mapping = resolve_mapping(MEMBERS, header, {"phone": "联系方式", "member_no": ""})
        # then
        assert mapping.as_dict() == {"phone": "联系方式"}
        assert mapping.ignored == ("手机号", "卡号")

    @pytest.mark.parametrize(
        ("kind", "header", "overrides", "message"),
        [
            (ORDERS, ["手机", "实付金额", "支付时间"], {}, r"no order_id \(订单号\) column.*--map order_id="),
            (ORDERS, ["订单号", "手机", "支付时间"], {}, r"no amount \(实付金额\) column"),
            (MEMBERS, ["姓名", "生日"], {}, r"no column identifying the member"),
            (MEMBERS, ["手机"], {"nickname": "昵称"}, r"unknown field 'nickname' for a members import"),
            (MEMBERS, ["手机"], {"phone": "电话号码"}, r"no column '电话号码'; its columns are: 手机"),
            (MEMBERS, ["手机", "会员号"], {"member_no": "手机"}, r"mapped to both phone and member_no"),
            (ORDERS, ["订单号", "手机", "支付时间", "金额", "amount_fen"], {}, r"both '金额' \(amount\)"),
            (MEMBERS, ["手机"], {"order_id": "手机"}, r"unknown field 'order_id'"),
        ],
        ids=["no-order-id", "no-amount", "no-identity", "unknown-field", "unknown-header", "twice",
             "two-amounts", "order-field-on-members"],
    )  # fmt: skip
    def test_what_cannot_work_is_refused_before_any_row(
        self, kind: ImportKind, header: list[str], overrides: dict[str, str], message: str
    ) -> None:
        with pytest.raises(ImportFileError, match=message):
            resolve_mapping(kind, header, overrides)


class TestParseOverrides:
    def test_field_equals_header(self) -> None:
        assert parse_overrides(["phone=手机", "member_no = 卡号 ", "email="]) == {
            "phone": "手机",
            "member_no": "卡号",
            "email": "",
        }

    def test_without_equals_sign_is_refused(self) -> None:
        with pytest.raises(ImportFileError, match="field=Header"):
            parse_overrides(["phone"])
