"""Small shared pieces: ids, money, cursors, secrets, time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.kit.clock import as_utc, is_valid_timezone
from siyu.kit.crypto import (
    derive_key,
    generate_api_key_secret,
    hash_api_key,
    hash_password,
    verify_password,
)
from siyu.kit.ids import CROCKFORD, IdGenerator, IdKind, _encode, looks_like_id, new_id, replayable
from siyu.kit.money import apply_basis_points, format_yuan, round_half_up_div
from siyu.kit.pagination import decode_cursor, encode_cursor
from siyu.kit.problems import BadRequest


class TestIds:
    def test_ids_are_prefixed_and_well_formed(self) -> None:
        value = new_id(IdKind.STORE)
        assert value.startswith("str_")
        assert looks_like_id(value, IdKind.STORE)
        assert not looks_like_id(value, IdKind.MERCHANT)

    @given(
        st.integers(min_value=1, max_value=26).flatmap(
            lambda n: st.tuples(st.just(n), st.integers(0, 32**n - 1))
        )
    )
    def test_encoding_is_base32_of_the_value_most_significant_first(self, case: tuple[int, int]) -> None:
        length, value = case
        text = _encode(value, length)
        assert len(text) == length
        decoded = 0
        for c in text:
            decoded = decoded * 32 + CROCKFORD.index(c)
        assert decoded == value

    @given(ms=st.integers(1, 2**48 - 1), rand=st.integers(0, 2**79 - 2))
    def test_an_id_body_is_its_time_then_its_random_part_in_base32(self, ms: int, rand: int) -> None:
        # given: a generator whose next millisecond draws ``rand`` as its random part
        generator = IdGenerator(randbits=lambda bits: rand)
        # when: two ids in that millisecond
        first = generator.new(IdKind.MEMBER, now_ms=ms)
        second = generator.new(IdKind.MEMBER, now_ms=ms)
        # then: each body is the 130-bit (time, random) value in base32, the second one higher
        assert first == f"mbr_{_encode((ms << 80) | rand, 26)}"
        assert second == f"mbr_{_encode((ms << 80) | (rand + 1), 26)}"

    def test_ids_sort_by_creation_even_within_one_millisecond(self) -> None:
        generator = IdGenerator()
        values = [generator.new(IdKind.MERCHANT, now_ms=1_700_000_000_000) for _ in range(1000)]
        assert values == sorted(values)
        assert len(set(values)) == 1000

    def test_later_milliseconds_sort_later(self) -> None:
        generator = IdGenerator()
        earlier = generator.new(IdKind.STORE, now_ms=4_000_000_000_000)
        later = generator.new(IdKind.STORE, now_ms=4_000_000_000_001)
        assert later > earlier

    def test_a_clock_going_backwards_never_reorders(self) -> None:
        generator = IdGenerator()
        first = generator.new(IdKind.STORE, now_ms=5_000_000_000_000)
        second = generator.new(IdKind.STORE, now_ms=1_000_000_000_000)
        assert second > first

    def test_a_replayable_block_makes_the_same_ids_every_run_and_then_lets_go(self) -> None:
        # given: two runs of the same calls under the same seed, and one under another seed
        def run(seed: int) -> list[str]:
            with replayable(seed):
                return [new_id(IdKind.MEMBER) for _ in range(50)] + [new_id(IdKind.CAMPAIGN)]

        first, again, other = run(7), run(7), run(8)
        # then: the same seed gives the same ids, still distinct, sorted and well formed
        assert first == again
        assert len(set(first)) == len(first)
        assert first[:50] == sorted(first[:50])
        assert all(looks_like_id(value, IdKind.MEMBER) for value in first[:50])
        assert set(first).isdisjoint(other)
        # and: outside the block, ids are the system's again (the current time, not the fixed one)
        after = new_id(IdKind.MEMBER)
        assert after[4:14] != first[0][4:14]
        assert after not in first


class TestMoney:
    @pytest.mark.parametrize(
        ("numerator", "denominator", "expected"),
        [(5, 10, 1), (4, 10, 0), (15, 10, 2), (-15, 10, -2), (-14, 10, -1), (0, 7, 0), (7, 7, 1)],
    )
    def test_round_half_up(self, numerator: int, denominator: int, expected: int) -> None:
        assert round_half_up_div(numerator, denominator) == expected

    @given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=1, max_value=10**6))
    def test_rounding_is_within_half_a_unit(self, numerator: int, denominator: int) -> None:
        result = round_half_up_div(numerator, denominator)
        assert abs(result * denominator - numerator) * 2 <= denominator

    def test_basis_points_and_format(self) -> None:
        assert apply_basis_points(1999, 8500) == 1699  # 16.9915 → 16.99
        assert format_yuan(12345) == "123.45"
        assert format_yuan(-5) == "-0.05"


class TestCursor:
    @given(st.text(min_size=1, max_size=60))
    def test_round_trip(self, last_id: str) -> None:
        assert decode_cursor(encode_cursor(last_id)) == last_id

    @pytest.mark.parametrize("garbage", ["", "!!!", "e30", "WzFd"])
    def test_garbage_is_a_bad_request(self, garbage: str) -> None:
        with pytest.raises(BadRequest):
            decode_cursor(garbage)


class TestSecrets:
    def test_password_hash_verifies_only_the_password(self) -> None:
        hashed = hash_password("correct horse")
        assert hashed.startswith("$argon2id$")
        assert verify_password(hashed, "correct horse")
        assert not verify_password(hashed, "wrong horse")
        assert not verify_password("not-a-hash", "correct horse")

    def test_api_key_secrets_are_long_random_and_hashed(self) -> None:
        a, b = generate_api_key_secret(), generate_api_key_secret()
        assert a != b
        assert len(a) >= 40
        assert hash_api_key(a) != hash_api_key(b)
        assert len(hash_api_key(a)) == 64

    def test_derived_keys_differ_per_purpose(self) -> None:
        assert derive_key("s" * 40, "sessions") != derive_key("s" * 40, "identifiers")
        assert len(derive_key("s" * 40, "x")) == 32


class TestClock:
    def test_naive_datetimes_are_refused(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            as_utc(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test

    def test_aware_datetimes_become_utc(self) -> None:
        shanghai = timezone(timedelta(hours=8))
        assert as_utc(datetime(2026, 1, 1, 8, tzinfo=shanghai)) == datetime(2026, 1, 1, tzinfo=UTC)

    def test_time_zone_names(self) -> None:
        assert is_valid_timezone("Asia/Shanghai")
        assert not is_valid_timezone("Mars/Olympus")
        assert not is_valid_timezone("../etc/passwd")
