"""Money is integer fen (分) with an ISO 4217 currency code; rates are basis points.

There is exactly one rounding rule in Siyu, :func:`round_half_up_div`, so that two parts of the
system never disagree by a fen.
"""

from __future__ import annotations

import re

BASIS_POINTS = 10_000
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_YUAN = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def is_currency_code(code: str) -> bool:
    """True for a three-letter upper-case ISO 4217 code such as ``CNY``."""
    return bool(_CURRENCY.match(code))


def round_half_up_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, in integers only."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return sign * quotient


def apply_basis_points(amount_fen: int, basis_points: int) -> int:
    """``amount × bp / 10 000`` in fen, rounded by the house rule."""
    return round_half_up_div(amount_fen * basis_points, BASIS_POINTS)


def format_yuan(amount_fen: int) -> str:
    """``12345`` → ``"123.45"`` (display only; never parse this back)."""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(amount_fen), 100)
    return f"{sign}{yuan}.{fen:02d}"


class InvalidAmount(ValueError):
    """A text that is not an amount of yuan with at most two decimal places."""


def parse_yuan(text: str) -> int:
    """An amount in yuan as people write it → fen, exactly: ``"12.30"`` → 1230, ``"0.1"`` → 10.

    Accepts a leading ``¥``/``￥``, a trailing ``元``, and thousands separators (``1,234.50``).
    A third decimal place is refused rather than rounded (``"12.345"``), unless it is zero
    (``"12.340"``): an amount that does not fit in fen is an error in the data, not a rounding case.
    """
    value = text.strip().removeprefix("¥").removeprefix("￥").removesuffix("元").strip()
    if "," in value:
        if not _GROUPED.fullmatch(value):
            raise InvalidAmount(f"{text!r} is not an amount (misplaced thousands separator)")
        value = value.replace(",", "")
    match = _YUAN.fullmatch(value)
    if match is None or not (match.group(2) or match.group(3)):
        raise InvalidAmount(f"{text!r} is not an amount")
    sign, whole, fraction = match.group(1), match.group(2) or "0", match.group(3) or ""
    if len(fraction) > 2 and fraction[2:].strip("0"):
        raise InvalidAmount(f"{text!r} has more than 2 decimal places (fen)")
    fen = int(whole) * 100 + int(fraction[:2].ljust(2, "0"))
    return -fen if sign == "-" else fen
