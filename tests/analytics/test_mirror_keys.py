"""The mirror's integer member keys: one key per member id, never changed once given, carried by
every mirrored row that names a member, and an older layout rebuilt by the next sync."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from siyu.analytics import mirror, service
from siyu.analytics import mirror_store as store
from siyu.analytics.mirror_events import Writer
from siyu.analytics.mirror_keys import MemberKeys, member_ids
from siyu.db import Database
from tests.analytics.mirrorkit import Shop, assert_same, make_shop


@pytest.fixture
def shop(db: Database, tmp_path: Path) -> Shop:
    return make_shop(db, tmp_path / "analytics")


def dictionary(shop: Shop) -> dict[str, int]:
    return {member: key for key, member in member_ids(shop.root, shop.merchant_id).items()}


def file_rows(shop: Shop, table: str, schema: pa.Schema) -> list[dict[str, Any]]:
    ms = store.load_state(shop.root).merchants[shop.merchant_id]
    return store.read_parquet(shop.root, list(ms.files[table]), schema).to_pylist()


class TestTheDictionary:
    def test_each_member_id_has_one_key_and_the_keys_are_dense(self, shop: Shop) -> None:
        # given three people, one of whom buys
        for person in ("p1", "p2", "p3"):
            shop.event(person)
        shop.event("p2", "order_paid", amount=700)
        # when
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        keys = dictionary(shop)
        members = {r["member_id"] for r in shop.state("members")}
        assert set(keys) == members
        assert sorted(keys.values()) == list(range(len(members)))
        assert store.load_state(shop.root).merchants[shop.merchant_id].next_member_key == len(members)

    def test_a_key_once_given_never_changes(self, shop: Shop) -> None:
        # given a synced mirror
        shop.event("p1")
        shop.event("p2")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        before = dictionary(shop)
        # when new people arrive over several syncs
        for person in ("p3", "p4", "p1", "p5"):
            shop.tick()
            shop.event(person)
            mirror.sync(shop.db, shop.root, now=shop.tick())
        # then the old pairs are unchanged and each new id got the next key
        after = dictionary(shop)
        assert {m: after[m] for m in before} == before
        assert sorted(after.values()) == list(range(len(after)))
        assert len(after) == len(before) + 3
        assert_same(shop)

    def test_every_file_row_carries_the_key_of_its_member_id(self, shop: Shop) -> None:
        # given events of two people, then a merge of them (one event links both identities)
        shop.event("p1", "order_paid", amount=300)
        shop.event("p2")
        shop.tick()
        shop.event("p2", extra_identity="m-1")
        shop.event("p1", extra_identity="m-1")
        # when
        mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        keys = dictionary(shop)
        events = file_rows(shop, "events", store.EVENTS_FILE_SCHEMA)
        members = file_rows(shop, "members", store.MEMBERS_FILE_SCHEMA)
        ledger = file_rows(shop, "stage_transitions", store.TRANSITIONS_FILE_SCHEMA)
        merges = file_rows(shop, "merge_map", store.MERGE_MAP_FILE_SCHEMA)
        assert events
        assert members
        assert ledger
        assert merges
        assert all(keys[r["member_id"]] == r["member_key"] for r in events + members + ledger)
        assert all(
            (keys[r["merged_id"]], keys[r["survivor_id"]]) == (r["merged_key"], r["survivor_key"])
            for r in merges
        )
        # and the mirror resolves the merged member's events to the survivor, as the state store
        assert_same(shop)

    def test_the_dictionary_parts_are_compacted(self, shop: Shop) -> None:
        # given more syncs that each meet a new member than a partition may have parts
        for n in range(mirror.MAX_PARTS + 2):
            shop.event(f"p{n}")
            mirror.sync(shop.db, shop.root, now=shop.tick())
        # then
        ms = store.load_state(shop.root).merchants[shop.merchant_id]
        assert 1 <= len(ms.files["member_keys"]) <= mirror.MAX_PARTS
        assert sorted(dictionary(shop).values()) == list(range(mirror.MAX_PARTS + 2))


class TestMemberKeys:
    def test_keys_follow_the_ids_in_order_with_repeats_and_nulls(self, shop: Shop) -> None:
        # given a writer on an empty mirror
        state = store.MirrorState()
        ms = state.merchants.setdefault(shop.merchant_id, store.MerchantState(zone="Asia/Shanghai"))
        w = Writer(shop.root, state, ms, shop.merchant_id, shop.now)
        try:
            # when
            first = w.keys.of(pa.array(["b", "a", None, "b"]))
            second = w.keys.of(pa.chunked_array([pa.array(["c", "a"]), pa.array(["b"])]))
            third = MemberKeys(w).of(pa.array(["c", "d"]))  # a second reader sees the written parts
        finally:
            w.keys.close()
        # then
        assert first.to_pylist() == [0, 1, None, 0]
        assert second.to_pylist() == [2, 1, 0]
        assert third.to_pylist() == [2, 3]
        assert first.type == pa.int32()
        assert ms.next_member_key == 4


class TestOlderLayout:
    def test_a_mirror_of_the_previous_layout_is_ignored_by_readers_and_rebuilt_by_sync(
        self, shop: Shop
    ) -> None:
        # given a mirror whose state file says layout 1 (files without member keys)
        shop.event("p1", "order_paid", amount=900)
        shop.event("p2")
        mirror.sync(shop.db, shop.root, now=shop.tick())
        state_file = shop.root / store.STATE_FILE
        data = json.loads(state_file.read_text())
        data["layout_version"] = 1
        old_files = {p for t in data["merchants"][shop.merchant_id]["files"].values() for p in t}
        state_file.write_text(json.dumps(data))
        # then readers do not use it (the state store answers meanwhile)
        with pytest.raises(store.LayoutOutdated, match="siyu analytics sync"):
            store.load_state(shop.root)
        assert service.mirror_status(shop.root, shop.merchant_id).has_merchant is False
        # when
        report = mirror.sync(shop.db, shop.root, now=shop.tick())
        # then the sync rebuilt it whole into new files, with keys
        assert report.events == 2
        state = store.load_state(shop.root)
        live = state.live_files()
        assert not live & old_files
        assert old_files <= set(state.retired)
        for path in live:
            assert (
                "member_key" in pq.read_schema(shop.root / path).names
                or "merged_key" in pq.read_schema(shop.root / path).names
            )
        assert service.mirror_status(shop.root, shop.merchant_id).has_merchant is True
        assert_same(shop)
