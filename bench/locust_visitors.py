"""Visitors of short links, for `ricochet bench redirect` (started by bench/loadgen.py).

Each request is one visit, redirects not followed (the edge's answer is what we time):

- people clicking links whose popularity is Zipf-like (rank r is visited in proportion to
  1 / r^s: a few campaigns take most of the traffic, the long tail stays warm but rare),
  on phones and desktops, arriving from social networks, mail and search;
- QR scans (`?qr=1`, phone browsers);
- crawlers and link expanders (Googlebot, Slackbot, ...), which the edge redirects too;
- unknown slugs: typos and scanners, some repeated (served from the negative cache),
  some never seen before (each one a Redis miss and a control-plane look-up).

BENCH_MIX (JSON) sets the shares and where the seeded links are; with `hot` set, every
request is that one path instead (the ceiling's cache-hot case).
"""

from __future__ import annotations

import bisect
import json
import os
import random
from itertools import accumulate

from locust import FastHttpUser, task

from bench.recorder import Schedule, lateness_ms, pacing  # Schedule: the shape locust runs

MIX = json.loads(os.environ.get("BENCH_MIX", "{}"))
HOST = MIX.get("host", "localhost")

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
PROBES = ["admin", "login", "wp-login", "test", "promo", "sale", "launch", "old-campaign"]


def _load() -> tuple[list[str], list[float]]:
    if MIX.get("hot") or not MIX.get("links_file"):
        return [], []
    with open(MIX["links_file"]) as f:
        slugs: list[str] = json.load(f)["slugs"]
    s = float(MIX.get("zipf", 1.0))
    return slugs, list(accumulate(1.0 / (rank**s) for rank in range(1, len(slugs) + 1)))


SLUGS, CUMULATIVE = _load()
UNKNOWN = float(MIX.get("unknown", 0.0))
QR = float(MIX.get("qr", 0.0))
BOT = float(MIX.get("bots", 0.0))


def _popular() -> str:
    return SLUGS[bisect.bisect_left(CUMULATIVE, random.random() * CUMULATIVE[-1])]


def pick() -> tuple[str, str, dict[str, str], int]:
    """(kind, path, headers, expected status) of the next visit."""
    if MIX.get("hot"):
        return "hot", MIX["hot"], {"Host": HOST}, 302
    roll = random.random()
    if roll < UNKNOWN:
        # Half are the same few probes (negative cache), half never seen before.
        slug = random.choice(PROBES) if random.random() < 0.5 else f"zz{random.getrandbits(40):x}"
        return "unknown", f"/{slug}", {"Host": HOST, "User-Agent": random.choice(DESKTOPS)}, 404
    roll -= UNKNOWN
    if roll < QR:
        return (
            "qr_scan",
            f"/{_popular()}?qr=1",
            {"Host": HOST, "User-Agent": random.choice(PHONES)},
            302,
        )
    roll -= QR
    if roll < BOT:
        return "bot", f"/{_popular()}", {"Host": HOST, "User-Agent": random.choice(BOTS)}, 302
    headers = {"Host": HOST, "User-Agent": random.choice(PHONES + DESKTOPS)}
    referrer = random.choice(REFERRERS)
    if referrer:
        headers["Referer"] = referrer
    return "click", f"/{_popular()}", headers, 302


class Visitor(FastHttpUser):
    wait_time = pacing()

    @task
    def visit(self) -> None:
        kind, path, headers, expect = pick()
        self.client.request(
            "GET",
            path,
            name=kind,
            headers=headers,
            allow_redirects=False,
            context={"expect": expect, "late_ms": lateness_ms(self)},
        )


__all__ = ["Schedule", "Visitor"]
