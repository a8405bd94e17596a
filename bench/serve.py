"""Serve an ASGI factory with exactly the Granian settings `ricochet edge` uses."""

from __future__ import annotations

import sys

from ricochet.cli import _serve

if __name__ == "__main__":
    target, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    _serve(target, "127.0.0.1", port, workers)
