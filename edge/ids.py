"""Click ids: UUIDv7 layout (time-ordered), minted per redirect without a system call.

`random.Random` seeded from the OS once per worker (in the lifespan, after Granian has
forked its workers) gives 74 random bits per id: collisions across workers and
milliseconds are negligible, and the id is the click's idempotency key downstream.
"""

from __future__ import annotations

import os
import random
import time


class ClickIds:
    def __init__(self) -> None:
        self._bits = random.Random(os.urandom(32)).getrandbits

    def new(self) -> str:
        ms = time.time_ns() // 1_000_000
        rand = self._bits(74)
        value = (
            (ms & 0xFFFFFFFFFFFF) << 80
            | 0x7 << 76
            | (rand >> 62) << 64
            | 0b10 << 62
            | (rand & 0x3FFFFFFFFFFFFFFF)
        )
        return f"{value:032x}"
