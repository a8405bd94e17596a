"""Link passwords are stored as argon2id hashes (argon2-cffi defaults, PHC strings)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    # Hashing is deliberately slow (~50 ms); keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)
