"""Codes: 60 random bits, Crockford base32, a mod-37 check character that catches every single
substitution and adjacent transposition; input normalisation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from siyu.coupons import codes

DATA = st.text(alphabet=codes.SYMBOLS, min_size=codes.DATA_LENGTH, max_size=codes.DATA_LENGTH)


def with_check(data: str) -> str:
    return data + codes.check_symbol(data)


class TestGeneration:
    def test_codes_are_valid_distinct_and_shown_in_groups(self) -> None:
        # when
        made = {codes.new_code() for _ in range(2000)}
        # then
        assert len(made) == 2000
        assert all(codes.is_valid(c) and len(c) == 13 for c in made)
        shown = codes.display(next(iter(made)))
        assert len(shown) == 16
        assert shown[4] == shown[9] == shown[14] == "-"

    def test_sixty_random_bits(self) -> None:
        assert codes.RANDOM_BITS >= 60


class TestCheckCharacter:
    @given(DATA, st.integers(0, codes.CODE_LENGTH - 1), st.integers(1, 36))
    def test_any_single_substitution_is_detected(self, data: str, position: int, shift: int) -> None:
        # given
        code = with_check(data)
        alphabet = codes.SYMBOLS if position < codes.DATA_LENGTH else codes.CHECK_SYMBOLS
        current = alphabet.index(code[position])
        replacement = alphabet[(current + shift) % len(alphabet)]
        if replacement == code[position]:
            return
        # when
        typo = code[:position] + replacement + code[position + 1 :]
        # then
        assert codes.is_valid(code)
        assert not codes.is_valid(typo)

    @given(DATA, st.integers(0, codes.CODE_LENGTH - 2))
    def test_any_adjacent_transposition_is_detected(self, data: str, position: int) -> None:
        # given
        code = with_check(data)
        if code[position] == code[position + 1]:
            return
        # when
        swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
        # then
        assert not codes.is_valid(swapped)


class TestNormalisation:
    @given(DATA)
    def test_case_separators_and_look_alikes_fold_to_the_stored_form(self, data: str) -> None:
        # given
        code = with_check(data)
        typed = codes.display(code).lower().replace("0", "o").replace("1", "l").replace("-", " - ")
        # when / then
        assert codes.normalise(typed) == code
        assert codes.normalise(typed.replace("l", "I")) == code

    def test_garbage_is_not_a_code(self) -> None:
        assert not codes.is_valid(codes.normalise("hello"))
        assert not codes.is_generated_shape("UUUUUUUUUUUU0")
