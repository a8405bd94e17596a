"""Host-name normalisation both sides must agree on (the projection is keyed by it)."""

from __future__ import annotations


def normalise_host(name: str) -> str:
    """Lower-case, no port, no trailing dot: `Go.Brand.COM:443` -> `go.brand.com`."""
    host = name.strip().lower()
    if host.startswith("["):  # IPv6 literal keeps its brackets, loses its port
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0].rstrip(".")
