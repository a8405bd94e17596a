"""A bounded in-process cache of resolved links, one per worker.

Entries expire after a TTL as a safety net; the relay's invalidation messages normally evict
them much sooner. Negative answers (no such link) are cached briefly so a flood of unknown
slugs does not become a flood of Redis calls. Eviction is oldest-inserted first: a plain
dict keeps insertion order, so that costs nothing on the hot path.
"""

from __future__ import annotations

import time

from shared.records import LinkRecord

MISS = object()


class LocalCache:
    def __init__(self, size: int, ttl: float, negative_ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._data: dict[str, tuple[float, LinkRecord | None]] = {}
        # Bumped by every eviction: a look-up that straddled one must not cache what it read,
        # since it may have read the value the eviction was about.
        self.epoch = 0

    def get(self, key: str) -> LinkRecord | object | None:
        entry = self._data.get(key)
        if entry is None:
            return MISS
        if entry[0] < time.monotonic():
            del self._data[key]
            return MISS
        return entry[1]

    def put(self, key: str, record: LinkRecord | None) -> None:
        ttl = self.ttl if record is not None else self.negative_ttl
        if key not in self._data and len(self._data) >= self.size:
            del self._data[next(iter(self._data))]
        self._data[key] = (time.monotonic() + ttl, record)

    def evict(self, key: str) -> None:
        self.epoch += 1
        self._data.pop(key, None)

    def clear(self) -> None:
        self.epoch += 1
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
