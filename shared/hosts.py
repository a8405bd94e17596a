"""Host-name normalisation both sides must agree on (the projection is keyed by it)."""

from __future__ import annotations

import re

# A DNS name (letters, digits, '-', '_', dots) or a bracketed IPv6 literal, normalised.
_HOST = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?|\[[0-9a-f:.]{2,45}\])$")


def normalise_host(name: str) -> str:
    """Lower-case, no port, no trailing dot: `Go.Brand.COM:443` -> `go.brand.com`."""
    host = name.strip().lower()
    if host.startswith("["):  # IPv6 literal keeps its brackets, loses its port
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0].rstrip(".")


def valid_host(host: str) -> bool:
    """A normalised Host that could name a domain; anything else is a 400 (RFC 9112 3.2)."""
    return _HOST.match(host) is not None
