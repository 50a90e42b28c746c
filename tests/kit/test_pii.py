"""Identifiers: normalised, encrypted, blind-indexed per merchant, masked for display."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.kit.pii import (
    IdentifierVault,
    IdentityKind,
    InvalidIdentifier,
    mask_identifier,
    normalise_identifier,
    normalise_phone,
)

VAULT = IdentifierVault("s" * 48)


class TestNormalise:
    @pytest.mark.parametrize(
        "raw", ["13800138000", "138 0013 8000", "+86 138-0013-8000", "0086 13800138000", " +8613800138000 "]
    )
    def test_chinese_mobile_numbers_become_e164(self, raw: str) -> None:
        assert normalise_identifier(IdentityKind.PHONE, raw) == "+8613800138000"

    @given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    def test_the_mainland_mobile_fast_path_agrees_with_the_parser(self, raw: str) -> None:
        import phonenumbers

        parsed = phonenumbers.parse(raw, "CN")
        assert normalise_phone(raw) == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def test_foreign_numbers_keep_their_country(self) -> None:
        assert normalise_identifier(IdentityKind.PHONE, "+1 650 253 0000") == "+16502530000"

    @pytest.mark.parametrize("raw", ["", "abc", "123", "+86 1"])
    def test_impossible_phones_are_refused(self, raw: str) -> None:
        with pytest.raises(InvalidIdentifier):
            normalise_identifier(IdentityKind.PHONE, raw)

    def test_email_is_case_folded(self) -> None:
        assert normalise_identifier(IdentityKind.EMAIL, " Li.Lei@Example.COM ") == "li.lei@example.com"


class TestMask:
    def test_phone(self) -> None:
        assert mask_identifier(IdentityKind.PHONE, "+8613800138000") == "138****8000"

    def test_email(self) -> None:
        assert mask_identifier(IdentityKind.EMAIL, "lilei@example.com") == "l***@example.com"

    def test_long_ids_show_only_their_ends(self) -> None:
        assert mask_identifier(IdentityKind.ALIPAY_USER_ID, "2088102122524333") == "2088****4333"

    @given(st.text(min_size=1, max_size=40))
    def test_a_mask_never_reveals_the_whole_value(self, value: str) -> None:
        for kind in IdentityKind:
            masked = mask_identifier(kind, value)
            assert masked != value or set(value) <= {"*"}


class TestVault:
    @given(st.text(min_size=1, max_size=100))
    def test_round_trip(self, value: str) -> None:
        token = VAULT.encrypt("mch_a", IdentityKind.MEMBER_NO, value)
        assert VAULT.decrypt("mch_a", IdentityKind.MEMBER_NO, token) == value

    def test_ciphertexts_differ_and_hide_the_value(self) -> None:
        a = VAULT.encrypt("mch_a", IdentityKind.PHONE, "+8613800138000")
        b = VAULT.encrypt("mch_a", IdentityKind.PHONE, "+8613800138000")
        assert a != b
        assert "13800138000" not in a

    def test_a_token_moved_to_another_merchant_does_not_decrypt(self) -> None:
        token = VAULT.encrypt("mch_a", IdentityKind.PHONE, "+8613800138000")
        with pytest.raises(ValueError, match="does not decrypt"):
            VAULT.decrypt("mch_b", IdentityKind.PHONE, token)

    def test_blind_index_is_stable_and_per_merchant(self) -> None:
        first = VAULT.blind_index("mch_a", IdentityKind.PHONE, "+8613800138000")
        assert first == VAULT.blind_index("mch_a", IdentityKind.PHONE, "+8613800138000")
        assert first != VAULT.blind_index("mch_b", IdentityKind.PHONE, "+8613800138000")
        assert first != IdentifierVault("t" * 48).blind_index("mch_a", IdentityKind.PHONE, "+8613800138000")
