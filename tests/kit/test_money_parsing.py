"""Amounts in yuan as people type them become fen exactly, or are refused — never rounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.kit.money import InvalidAmount, format_yuan, parse_yuan


class TestParseYuan:
    @pytest.mark.parametrize(
        ("text", "fen"),
        [
            ("12.30", 1230),
            ("12.3", 1230),
            ("0.1", 10),
            ("0.01", 1),
            ("12", 1200),
            (".5", 50),
            ("5.", 500),
            ("12.340", 1234),
            (" ¥1,234.50 ", 123450),
            ("￥8元", 800),
            ("-3.20", -320),
            ("0", 0),
        ],
    )
    def test_exact_fen(self, text: str, fen: int) -> None:
        assert parse_yuan(text) == fen

    @pytest.mark.parametrize(
        "text", ["12.345", "0.001", "abc", "", ".", "1,23.4", "12,3456", "1e3", "1.2.3", "--1"]
    )
    def test_refused(self, text: str) -> None:
        with pytest.raises(InvalidAmount):
            parse_yuan(text)

    @given(st.integers(min_value=-(10**12), max_value=10**12))
    def test_round_trips_with_format_yuan(self, fen: int) -> None:
        assert parse_yuan(format_yuan(fen)) == fen
