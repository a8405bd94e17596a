"""The edge's bounded in-process cache of resolved links (edge/cache.py)."""

from __future__ import annotations

import time

from edge.cache import MISS, LocalCache
from shared.records import LinkRecord


def record(n: int = 1) -> LinkRecord:
    return LinkRecord(f"lnk_{n}", "ws_1", "dom_1", 1, f"https://brand.com/{n}")


def cache(size: int = 100, ttl: float = 60.0, negative_ttl: float = 60.0) -> LocalCache:
    return LocalCache(size=size, ttl=ttl, negative_ttl=negative_ttl)


def test_an_unknown_key_is_a_miss() -> None:
    # Given an empty cache / When a key is looked up / Then it is MISS (not None: unknown)
    assert cache().get("l:go.brand.com/x") is MISS


def test_a_stored_record_is_a_hit() -> None:
    # Given a record put in the cache
    local = cache()
    local.put("l:go.brand.com/a", record())

    # When it is looked up / Then the same record comes back
    assert local.get("l:go.brand.com/a") == record()


def test_a_negative_answer_is_cached_as_none() -> None:
    # Given "no such link" remembered for a key
    local = cache()
    local.put("l:go.brand.com/nope", None)

    # When it is looked up / Then the answer is None, distinct from MISS
    assert local.get("l:go.brand.com/nope") is None


def test_putting_again_replaces_the_record() -> None:
    # Given a key cached with an old record
    local = cache()
    local.put("k", record(1))

    # When a newer record is put under the same key
    local.put("k", record(2))

    # Then the newer one is served
    assert local.get("k") == record(2)


def test_the_size_bound_evicts_the_oldest_inserted_entry() -> None:
    # Given a full cache of two entries
    local = cache(size=2)
    local.put("first", record(1))
    local.put("second", record(2))

    # When a third key is put
    local.put("third", record(3))

    # Then the first inserted is gone and the others stay
    assert local.get("first") is MISS
    assert local.get("second") == record(2)
    assert local.get("third") == record(3)
    assert len(local) == 2


def test_replacing_a_key_in_a_full_cache_evicts_nothing() -> None:
    # Given a full cache of two entries
    local = cache(size=2)
    local.put("first", record(1))
    local.put("second", record(2))

    # When an existing key is put again
    local.put("second", record(3))

    # Then both keys are still there
    assert local.get("first") == record(1)
    assert local.get("second") == record(3)


def test_evict_removes_one_key() -> None:
    # Given two cached keys
    local = cache()
    local.put("a", record(1))
    local.put("b", record(2))

    # When one is evicted (an invalidation message)
    local.evict("a")

    # Then only that one misses
    assert local.get("a") is MISS
    assert local.get("b") == record(2)


def test_evicting_an_unknown_key_is_harmless() -> None:
    # Given an empty cache / When an unknown key is evicted / Then nothing happens
    local = cache()
    local.evict("never-cached")
    assert len(local) == 0


def test_clear_empties_the_cache() -> None:
    # Given cached entries / When cleared / Then every key misses
    local = cache()
    local.put("a", record(1))
    local.put("b", None)
    local.clear()
    assert (len(local), local.get("a"), local.get("b")) == (0, MISS, MISS)


def test_a_record_expires_after_its_ttl() -> None:
    # Given a record cached with a tiny TTL
    local = cache(ttl=0.01)
    local.put("a", record())

    # When the TTL has passed
    time.sleep(0.02)

    # Then it is a miss and no longer takes room
    assert local.get("a") is MISS
    assert len(local) == 0


def test_a_negative_answer_expires_after_the_negative_ttl() -> None:
    # Given "no such link" cached with a tiny negative TTL
    local = cache(ttl=60.0, negative_ttl=0.01)
    local.put("missing", None)

    # When the negative TTL has passed
    time.sleep(0.02)

    # Then the link is looked up again
    assert local.get("missing") is MISS


def test_a_record_is_kept_for_the_positive_ttl_not_the_negative_one() -> None:
    # Given a long positive TTL and a tiny negative TTL
    local = cache(ttl=60.0, negative_ttl=0.01)
    local.put("a", record())

    # When longer than the negative TTL has passed
    time.sleep(0.02)

    # Then the record is still served
    assert local.get("a") == record()


def test_every_eviction_and_clear_moves_the_epoch() -> None:
    # Given a cache / When keys are evicted or it is cleared / Then the epoch advances, so a
    # look-up in flight across the change knows not to cache what it read
    cache = LocalCache(size=10, ttl=60, negative_ttl=1)
    start = cache.epoch

    cache.evict("l:a/b")
    cache.clear()

    assert cache.epoch == start + 2


def test_cached_records_share_ids_and_utm_maps_yet_read_the_same() -> None:
    # Given two records of one workspace and domain with equal UTM maps, built apart
    # (as two decodes from Redis would build them)
    def decoded(n: int) -> LinkRecord:
        return LinkRecord(
            f"lnk_{n}",
            "".join(["ws_", "1"]),
            "".join(["dom_", "1"]),
            1,
            f"https://brand.com/{n}",
            utm={"source": "news", "campaign": "".join(["q", "2"])},
        )

    first, second = decoded(1), decoded(2)
    assert first.workspace_id is not second.workspace_id
    local = cache()

    # When both are cached
    local.put("l:a/1", first)
    local.put("l:a/2", second)
    one, two = local.get("l:a/1"), local.get("l:a/2")

    # Then they read exactly as given, and hold one copy of what they have alike
    assert (one, two) == (first, second)
    assert isinstance(one, LinkRecord)
    assert isinstance(two, LinkRecord)
    assert one.workspace_id is two.workspace_id
    assert one.domain_id is two.domain_id
    assert one.utm is two.utm


def test_a_negative_flood_never_evicts_a_cached_link() -> None:
    # Given a cached link in a cache far smaller than the flood of unknown keys to come
    local = LocalCache(size=2, ttl=60.0, negative_ttl=60.0, negative_size=3)
    local.put("l:a/hot", record())

    # When many unknown keys are remembered as absent
    for n in range(100):
        local.put(f"l:a/nope-{n}", None)

    # Then the link is still there, and the absent ones are bounded on their own
    assert local.get("l:a/hot") == record()
    assert local.absent == 3
    assert local.get("l:a/nope-99") is None
    assert local.get("l:a/nope-0") is MISS
