"""Coupon and promo codes: 60 random bits in Crockford base32 plus a Crockford check character.

A generated code is 12 data characters (5 bits each, from :mod:`secrets`) and one check
character: the 60-bit value mod 37, written in Crockford's check alphabet (the 32 symbols and
``* ~ $ = U``). Mod 37 is prime and larger than the alphabet, so every single-character
substitution and every adjacent transposition changes the check (the change is ``d·32^k`` or
``d·31·32^k`` with ``0 < |d| < 32``, never a multiple of 37). Codes are stored normalised
(``7ZQ41C9TXBRM4``) and shown in groups (``7ZQ4-1C9T-XBRM-4``).

Input is normalised the Crockford way before anything else: upper case, hyphens and spaces
dropped, ``O``→``0``, ``I``/``L``→``1``. A code of generated length whose check character is
wrong is refused before any query.
"""

from __future__ import annotations

import re
import secrets

SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHECK_SYMBOLS = SYMBOLS + "*~$=U"
DATA_LENGTH = 12
CODE_LENGTH = DATA_LENGTH + 1
RANDOM_BITS = 5 * DATA_LENGTH
_VALUE = {symbol: index for index, symbol in enumerate(SYMBOLS)}
_TRANSLATE = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
SHARED_CODE = re.compile(r"^[0-9A-Z]{4,32}$")


def check_symbol(data: str) -> str:
    """The Crockford check character of ``data`` (symbols of :data:`SYMBOLS`)."""
    value = 0
    for symbol in data:
        value = value * 32 + _VALUE[symbol]
    return CHECK_SYMBOLS[value % 37]


def new_code() -> str:
    """A fresh, unguessable code (normalised form, 13 characters)."""
    value = secrets.randbits(RANDOM_BITS)
    data = "".join(SYMBOLS[(value >> shift) & 31] for shift in range(RANDOM_BITS - 5, -1, -5))
    return data + check_symbol(data)


def normalise(text: str) -> str:
    """What a person typed → the stored form (case, separators and look-alikes folded)."""
    return text.strip().upper().translate(_TRANSLATE)


def is_generated_shape(code: str) -> bool:
    """A normalised code of the generated length made of code symbols (its check not yet verified)."""
    return (
        len(code) == CODE_LENGTH
        and all(c in _VALUE for c in code[:DATA_LENGTH])
        and code[DATA_LENGTH] in CHECK_SYMBOLS
    )


def is_valid(code: str) -> bool:
    """A normalised generated code whose check character matches."""
    return is_generated_shape(code) and check_symbol(code[:DATA_LENGTH]) == code[DATA_LENGTH]


def display(code: str) -> str:
    """``7ZQ41C9TXBRM4`` → ``7ZQ4-1C9T-XBRM-4``; other codes (shared ones) as they are."""
    if len(code) != CODE_LENGTH:
        return code
    return f"{code[0:4]}-{code[4:8]}-{code[8:12]}-{code[12]}"
