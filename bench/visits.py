"""Who visits short links, and how often: the visitor mix of bench/locust_visitors.py.

Kept apart from the locustfile (importing locust patches the standard library with gevent)
so the mix can be checked on its own.
"""

from __future__ import annotations

import bisect
import random
from itertools import accumulate
from typing import Any

PHONES = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
]
DESKTOPS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Twitterbot/1.0",
]
REFERRERS = [
    "",
    "",
    "https://l.instagram.com/",
    "https://t.co/",
    "https://www.google.com/",
    "https://mail.google.com/",
    "https://www.linkedin.com/",
]
# Scanners and typos that come back again and again (answered from the negative cache).
PROBES = ["admin", "login", "wp-login", "test", "promo", "sale", "launch", "old-campaign"]

Visit = tuple[str, str, dict[str, str], int]  # kind, path, headers, expected status


class Mix:
    """Draws visits: a Zipf-like choice of link (rank r in proportion to 1 / r^zipf), and
    the shares of unknown slugs, QR scans and bots; the rest are people clicking."""

    def __init__(
        self,
        slugs: list[str],
        host: str,
        zipf: float = 1.0,
        unknown: float = 0.0,
        qr: float = 0.0,
        bots: float = 0.0,
        hot: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.slugs = slugs
        self.host = host
        self.cumulative = list(accumulate(1.0 / (r**zipf) for r in range(1, len(slugs) + 1)))
        self.unknown, self.qr, self.bots = unknown, qr, bots
        self.hot = hot
        self.rng = rng or random.Random()

    @classmethod
    def from_config(cls, config: dict[str, Any], slugs: list[str]) -> Mix:
        return cls(
            slugs,
            config.get("host", "localhost"),
            float(config.get("zipf", 1.0)),
            float(config.get("unknown", 0.0)),
            float(config.get("qr", 0.0)),
            float(config.get("bots", 0.0)),
            config.get("hot"),
        )

    def popular(self) -> str:
        """A seeded slug, by popularity (the first slug is rank 1)."""
        roll = self.rng.random() * self.cumulative[-1]
        return self.slugs[bisect.bisect_left(self.cumulative, roll)]

    def next(self) -> Visit:
        rng, host = self.rng, self.host
        if self.hot:
            return "hot", self.hot, {"Host": host}, 302
        roll = rng.random()
        if roll < self.unknown:
            # Half are the same few probes, half never seen before (a Redis miss each, and
            # a look-up at the control plane).
            fresh = rng.random() < 0.5
            slug = f"zz{rng.getrandbits(40):x}" if fresh else rng.choice(PROBES)
            return "unknown", f"/{slug}", {"Host": host, "User-Agent": rng.choice(DESKTOPS)}, 404
        roll -= self.unknown
        if roll < self.qr:
            headers = {"Host": host, "User-Agent": rng.choice(PHONES)}
            return "qr_scan", f"/{self.popular()}?qr=1", headers, 302
        roll -= self.qr
        if roll < self.bots:
            return "bot", f"/{self.popular()}", {"Host": host, "User-Agent": rng.choice(BOTS)}, 302
        headers = {"Host": host, "User-Agent": rng.choice(PHONES + DESKTOPS)}
        referrer = rng.choice(REFERRERS)
        if referrer:
            headers["Referer"] = referrer
        return "click", f"/{self.popular()}", headers, 302
