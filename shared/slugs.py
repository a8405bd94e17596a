"""The shape of a slug, which both sides need: the control plane refuses anything else,
so the edge can answer 404 for a path of any other shape without looking it up."""

from __future__ import annotations

import re

SLUG_MAX = 64
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")


# The same shape in either case, for a path not yet lower-cased (ASCII only: checked first,
# since lower() maps e.g. U+212A KELVIN SIGN to "k").
_SHAPE = re.compile(SLUG_RE.pattern, re.IGNORECASE)


def slug_shaped(raw: str) -> bool:
    """`raw` (as the visitor typed it) could name a link. Scanner paths such as `.env` or
    `wp-login.php` cannot, and cost a regex match instead of a look-up."""
    return raw.isascii() and _SHAPE.match(raw) is not None
