"""Which column holds which field: header aliases in Chinese and English, and overrides.

Every field has a list of aliases, best first. A header matches an alias after normalisation
(case, spaces, ``_``/``-``, full-width brackets ignored), so ``手机号``, ``Phone`` and
``phone_number`` all find the phone column. When two columns match one field, the one whose
alias comes first wins (``实付金额`` before ``订单金额``) and the other is reported as ignored.
``--map field=Header`` (or the API's ``mapping``) overrides a field; ``field=`` (empty) leaves
the field unmapped. Required fields that are missing, unknown fields and unknown headers are
refused before any row is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from siyu.kit.pii import IdentityKind

from .readers import ImportFileError


class ImportKind(StrEnum):
    MEMBERS = "members"
    ORDERS = "orders"


IDENTITY_FIELDS: tuple[str, ...] = tuple(k.value for k in IdentityKind)

ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("phone", "手机号", "手机", "手机号码", "电话", "联系电话", "mobile", "phone_number", "tel"),
    "member_no": ("member_no", "会员号", "会员卡号", "会员编号", "卡号", "member_number", "card_no"),
    "alipay_user_id": ("alipay_user_id", "支付宝用户ID", "支付宝ID", "支付宝UID", "alipay_uid"),
    "wechat_openid": ("wechat_openid", "openid", "微信openid"),
    "wechat_unionid": ("wechat_unionid", "unionid", "微信unionid"),
    "douyin_openid": ("douyin_openid", "抖音openid"),
    "device_id": ("device_id", "设备号", "设备ID"),
    "email": ("email", "邮箱", "电子邮箱", "e-mail", "mail"),
    "registered_at": ("registered_at", "注册时间", "入会时间", "开卡时间", "register_time", "joined_at"),
    "tags": ("tags", "标签", "会员标签", "tag"),
    "channel": ("channel", "渠道", "来源渠道", "注册渠道", "下单渠道"),
    "store_code": ("store_code", "门店编码", "门店编号", "门店代码", "门店", "store"),
    "order_id": ("order_id", "订单号", "订单编号", "订单ID", "order_no", "交易号"),
    "paid_at": ("paid_at", "支付时间", "付款时间", "下单时间", "交易时间", "pay_time", "order_time"),
    "amount": ("amount", "实付金额", "实收金额", "支付金额", "付款金额", "金额", "paid_amount", "订单金额"),
    "amount_fen": ("amount_fen", "实付金额(分)", "金额(分)"),
    "coupon_codes": ("coupon_codes", "券码", "优惠券码", "优惠券", "coupon_code"),
    "refund_amount": ("refund_amount", "退款金额"),
    "refund_amount_fen": ("refund_amount_fen", "退款金额(分)"),
    "refunded_at": ("refunded_at", "退款时间", "refund_time"),
}

FIELD_HELP: dict[str, str] = {
    "registered_at": "registration time; naive times are in the merchant's time zone",
    "tags": "tags separated by , ， ; ； | or 、",
    "channel": "acquisition or order channel (free text, up to 64 characters)",
    "store_code": "the merchant's store code (门店编码); unknown codes reject the row",
    "order_id": "the order number; it makes re-imports count once",
    "paid_at": "payment time; naive times are in the merchant's time zone",
    "amount": "paid amount in yuan, at most 2 decimals (12.30)",
    "amount_fen": "paid amount in fen (1230)",
    "coupon_codes": "coupon codes used, separated by commas",
    "refund_amount": "refunded amount in yuan (adds an order_refunded event)",
    "refund_amount_fen": "refunded amount in fen",
    "refunded_at": "refund time (default: the payment time)",
}

FIELDS: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.MEMBERS: (*IDENTITY_FIELDS, "registered_at", "tags", "channel", "store_code"),
    ImportKind.ORDERS: (
        *IDENTITY_FIELDS,
        "order_id",
        "paid_at",
        "amount",
        "amount_fen",
        "store_code",
        "channel",
        "coupon_codes",
        "refund_amount",
        "refund_amount_fen",
        "refunded_at",
    ),
}

REQUIRED: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.MEMBERS: (),
    ImportKind.ORDERS: ("order_id", "paid_at"),
}

ONE_OF: tuple[tuple[str, ...], ...] = (("amount", "amount_fen"), ("refund_amount", "refund_amount_fen"))

_NOISE = re.compile(r"[\s_\-]+")


def normalise_header(header: str) -> str:
    """Case, blanks, ``_``/``-`` and full-width brackets do not matter when matching headers."""
    text = header.strip().replace("（", "(").replace("）", ")").replace("\ufeff", "")
    return _NOISE.sub("", text).lower()


_ALIAS_RANK: dict[str, tuple[str, int]] = {}
for _field, _aliases in ALIASES.items():
    for _rank, _alias in enumerate(_aliases):
        _ALIAS_RANK.setdefault(normalise_header(_alias), (_field, _rank))


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Field → column index, plus what the report shows."""

    kind: ImportKind
    header: tuple[str, ...]
    columns: dict[str, int]
    ignored: tuple[str, ...]
    """Headers no field uses (shown, so a misspelt column is noticed)."""

    def column_of(self, field: str) -> str | None:
        index = self.columns.get(field)
        return self.header[index] if index is not None else None

    def as_dict(self) -> dict[str, str]:
        """``{field: header}`` in field order, for reports."""
        return {f: self.header[i] for f, i in sorted(self.columns.items(), key=lambda item: item[1])}


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["phone=手机", "email="]`` → ``{"phone": "手机", "email": ""}`` (the CLI's ``--map``)."""
    result: dict[str, str] = {}
    for item in items:
        field, sep, header = item.partition("=")
        if not sep or not field.strip():
            raise ImportFileError(f"--map takes field=Header (for example phone=手机号), not {item!r}")
        result[field.strip()] = header.strip()
    return result


def _describe_field(field: str) -> str:
    chinese = next((a for a in ALIASES[field] if not a.isascii()), None)
    return f"{field} ({chinese})" if chinese else field


def resolve_mapping(
    kind: ImportKind, header: Sequence[str], overrides: Mapping[str, str] | None = None
) -> ColumnMapping:
    """Match the header against the aliases and apply ``overrides``; refuse what cannot work."""
    overrides = dict(overrides or {})
    known = FIELDS[kind]
    unknown = sorted(f for f in overrides if f not in known)
    if unknown:
        raise ImportFileError(
            f"unknown field {unknown[0]!r} for a {kind} import; fields are: {', '.join(known)}"
        )
    columns: dict[str, int] = {}
    ranks: dict[str, int] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        match = _ALIAS_RANK.get(normalise_header(name))
        if match is None or match[0] not in known or match[0] in overrides:
            continue
        field, rank = match
        if field not in columns or rank < ranks[field]:
            columns[field], ranks[field] = index, rank
    for field, wanted in overrides.items():
        if not wanted:
            continue
        exact = [i for i, name in enumerate(header) if name == wanted]
        loose = [i for i, name in enumerate(header) if normalise_header(name) == normalise_header(wanted)]
        found = exact or loose
        if not found:
            raise ImportFileError(
                f"--map {field}={wanted}: the file has no column {wanted!r}; "
                f"its columns are: {', '.join(h for h in header if h)}"
            )
        columns[field] = found[0]
    taken: dict[int, str] = {}
    for field, index in sorted(columns.items(), key=lambda item: item[1]):
        if index in taken:
            raise ImportFileError(
                f"the column {header[index]!r} is mapped to both {taken[index]} and {field}; "
                "map one of them elsewhere with --map"
            )
        taken[index] = field
    _check_required(kind, header, columns)
    ignored = tuple(name for i, name in enumerate(header) if name and i not in taken)
    return ColumnMapping(kind=kind, header=tuple(header), columns=columns, ignored=ignored)


def _check_required(kind: ImportKind, header: Sequence[str], columns: Mapping[str, int]) -> None:
    found = ", ".join(h for h in header if h) or "none"
    missing = [f for f in REQUIRED[kind] if f not in columns]
    if kind is ImportKind.ORDERS and not any(f in columns for f in ONE_OF[0]):
        missing.append("amount")
    if missing:
        field = missing[0]
        raise ImportFileError(
            f"the {kind} file has no {_describe_field(field)} column (columns found: {found}); "
            f"name one with --map {field}=HEADER"
        )
    if not any(f in columns for f in IDENTITY_FIELDS):
        raise ImportFileError(
            f"the {kind} file has no column identifying the member ({', '.join(IDENTITY_FIELDS)}; "
            f"for example 手机号 or 会员号); columns found: {found}; name one with --map phone=HEADER"
        )
    for group in ONE_OF:
        both = [f for f in group if f in columns]
        if len(both) > 1:
            raise ImportFileError(
                f"both {header[columns[both[0]]]!r} ({both[0]}) and {header[columns[both[1]]]!r} "
                f"({both[1]}) were found; keep one with --map {both[1]}="
            )
