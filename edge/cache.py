"""A bounded in-process cache of resolved links, one per worker.

Entries expire after a TTL as a safety net; the relay's invalidation messages normally evict
them much sooner. Answers that there is no such link live in a separate, smaller table:
a scan of random slugs then churns only that one, and never evicts the hot links. Eviction
is oldest-inserted first: a plain dict keeps insertion order, so that costs nothing on the
hot path.
"""

from __future__ import annotations

import sys
import time

import msgspec

from shared.records import LinkRecord

SHARED_MAPS = 10_000  # distinct UTM maps shared between records; past it, kept as they come

MISS = object()


class LocalCache:
    def __init__(
        self, size: int, ttl: float, negative_ttl: float, negative_size: int = 10_000
    ) -> None:
        self.size = size
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.negative_size = negative_size
        self._data: dict[str, tuple[float, LinkRecord]] = {}
        self._absent: dict[str, float] = {}
        self._maps: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        # Bumped by every eviction: a look-up that straddled one must not cache what it read,
        # since it may have read the value the eviction was about.
        self.epoch = 0

    def get(self, key: str) -> LinkRecord | object | None:
        entry = self._data.get(key)
        if entry is not None:
            if entry[0] >= time.monotonic():
                return entry[1]
            del self._data[key]
            return MISS
        until = self._absent.get(key)
        if until is None:
            return MISS
        if until < time.monotonic():
            del self._absent[key]
            return MISS
        return None

    def put(self, key: str, record: LinkRecord | None, ttl: float | None = None) -> None:
        """Remember `record` (None: no such link) for `ttl` seconds, or the default TTL."""
        now = time.monotonic()
        if record is None:
            if key not in self._absent and len(self._absent) >= self.negative_size:
                del self._absent[next(iter(self._absent))]
            self._absent[key] = now + (self.negative_ttl if ttl is None else ttl)
            return
        self._absent.pop(key, None)
        if key not in self._data and len(self._data) >= self.size:
            del self._data[next(iter(self._data))]
        self._data[key] = (now + (self.ttl if ttl is None else ttl), self._compact(record))

    def _compact(self, record: LinkRecord) -> LinkRecord:
        """The same record, sharing what many records hold alike: a workspace's and a
        domain's ids, and UTM maps (presets, campaigns). About 0.5 KB less per cached link,
        paid once per miss, never per hit. The shared maps are never mutated: the edge only
        reads records."""
        utm = record.utm
        if utm:
            items = tuple(utm.items())
            shared = self._maps.get(items)
            if shared is None and len(self._maps) < SHARED_MAPS:
                shared = self._maps[items] = utm
            utm = shared or utm
        return msgspec.structs.replace(
            record,
            workspace_id=sys.intern(record.workspace_id),
            domain_id=sys.intern(record.domain_id),
            utm=utm,
        )

    def evict(self, key: str) -> None:
        self.epoch += 1
        self._data.pop(key, None)
        self._absent.pop(key, None)

    def clear(self) -> None:
        self.epoch += 1
        self._data.clear()
        self._absent.clear()

    def __len__(self) -> int:
        """Links held (answers that a link does not exist are not counted)."""
        return len(self._data)

    @property
    def absent(self) -> int:
        return len(self._absent)
