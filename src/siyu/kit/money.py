"""Money is integer fen (分) with an ISO 4217 currency code; rates are basis points.

There is exactly one rounding rule in Siyu, :func:`round_half_up_div`, so that two parts of the
system never disagree by a fen.
"""

from __future__ import annotations

import re

BASIS_POINTS = 10_000
_CURRENCY = re.compile(r"^[A-Z]{3}$")


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
