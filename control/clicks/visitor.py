"""Who clicked: device, platform, browser, OS, bot flag, country, referrer host and source.

Ingest enriches every click with this, off the redirect path: the parsers' tables cost
~100 MB per process, more than an edge worker may spend. User agents and referrers repeat
heavily, so each is parsed once per process and kept in a bounded dict (oldest-inserted out
first; insertion order costs nothing): a hit is one dict look-up. Strings are cut to _MAX_LEN
before parsing, which bounds both the CPU a hostile client can make one request cost (parsing
is linear in length) and the caches' memory.

Construction takes ~0.45 s and ~105 MiB RSS: the GeoIP table (IPv4+IPv6: ~0.14 s, ~53 MiB) and
the Rust regex sets of ua-parser (~26 MiB) and crawlerdetect's list (~24 MiB). Build one Visitors
per ingest process, at start-up.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from crawlerdetect import CrawlerDetect
from ua_parser import BasicResolver, Domain, Resolver, load_builtins, load_lazy_builtins

from shared import geo

_MAX_LEN = 512  # real UAs, in-app browsers included, stay under ~400; URL origins under 270
_NOT_COUNTRIES = frozenset({"XX", "T1", "ZZ"})  # CDN codes for unknown / Tor / reserved

_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "Windows Mobile", "BlackBerry OS", "KaiOS", "Firefox OS"}
    | {"Symbian OS", "Symbian^3", "Nokia Series 40", "Nokia Series 30 Plus"}
)
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Mac OS", "Linux", "Ubuntu", "Chrome OS", "Debian", "Fedora"}
    | {"FreeBSD", "OpenBSD", "NetBSD", "Gentoo", "Red Hat", "Solaris", "SUSE", "openSUSE"}
    | {"Linux Mint", "Mint", "Kubuntu", "Arch Linux", "CentOS", "Slackware"}
)
_PHONES = frozenset({"iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"})
_TABLETS = frozenset({"iPad", "Generic Tablet", "Kindle"})
_APPLE = frozenset({"iPhone", "iPad", "iPod"})

# Registrable domain -> social source; sub-domains match too (see _social).
_SOCIAL = {
    domain: source
    for source, domains in {
        "facebook": "facebook.com fb.com fb.me",
        "instagram": "instagram.com",
        "x": "twitter.com x.com t.co",
        "linkedin": "linkedin.com lnkd.in",
        "reddit": "reddit.com",
        "youtube": "youtube.com youtu.be",
        "tiktok": "tiktok.com",
        "pinterest": "pinterest.com pin.it",
        "snapchat": "snapchat.com",
        "whatsapp": "whatsapp.com wa.me",
        "telegram": "t.me telegram.org",
        "threads": "threads.net threads.com",  # Threads moved to .com in 2025
        "bluesky": "bsky.app",
        "discord": "discord.com discord.gg",
    }.items()
    for domain in domains.split()
}
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_:")
_NO_REFERRER = ("", "")


class Agent(NamedTuple):
    device: str  # "mobile" | "tablet" | "desktop" | "bot" | "other" (analytics)
    platform: str  # "ios" | "android" | "desktop" (link routing)
    browser: str
    os: str
    bot: bool


_NO_AGENT = Agent("other", "desktop", "Other", "Other", False)


def _ua_resolver() -> tuple[Resolver, str]:
    # ua-parser 1.x picks its backend only for its lazy global parser; we build our own (no
    # second cache: ours sits in front) and prefer the Rust engine, ~10x faster than re.
    try:
        from ua_parser.regex import Resolver as RustResolver
    except ImportError:  # ua-parser-rs missing: same answers, slower misses
        return BasicResolver(load_builtins()), "python"
    return RustResolver(load_lazy_builtins()), "rust"


def _crawler_check() -> Callable[[str], bool]:
    # crawlerdetect runs ~1,500 alternatives through Python's re: 0.1-2 ms per browser UA. The
    # same patterns in one Rust set answer in ~2 us, so only UAs it flags (bots) pay for the
    # library's own check, which has the last word. Rust has no look-arounds: dropping them only
    # widens a pattern, and the final check narrows it back.
    detector = CrawlerDetect()
    try:
        import ua_parser_rs
        from crawlerdetect.providers.crawlers import data as crawlers
        from crawlerdetect.providers.exclusions import data as exclusions
    except ImportError:
        return detector.is_crawler  # type: ignore[no-any-return]
    look_around = re.compile(r"\(\?<?[!=][^)]*\)")
    rust = ua_parser_rs.UserAgentExtractor(
        ("(?i)" + look_around.sub("", p), "bot", None, None, None, None) for p in crawlers
    )
    browser_tokens = re.compile("|".join(exclusions), re.IGNORECASE)  # as the library strips

    def is_crawler(user_agent: str) -> bool:
        user_agent = user_agent.strip()
        stripped = browser_tokens.sub("", user_agent)
        return rust.extract(stripped) is not None and bool(detector.is_crawler(user_agent))

    return is_crawler


def _remember(cache: dict[str, Any], size: int, key: str, value: Any) -> None:
    if len(cache) >= size:
        # Oldest first. Suppressed: another thread got there between iter() and del.
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):
            del cache[next(iter(cache))]
    cache[key] = value


class Visitors:
    def __init__(self, *, country_header: str | None = None, cache_size: int = 20_000) -> None:
        self.country_header = country_header.lower() if country_header else None
        self.cache_size = max(1, cache_size)
        self._agents: dict[str, Agent] = {}
        self._referrers: dict[str, tuple[str, str]] = {}
        self._countries: dict[str, str] = {}
        self._ua, self.ua_backend = _ua_resolver()
        self._is_crawler = _crawler_check()
        self._geo = geo.load()
        # A crawler, so the library's own regexes get compiled now rather than mid-request.
        self._is_crawler("curl/8.0")

    def agent(self, user_agent: str) -> Agent:
        found = self._agents.get(user_agent)
        return found if found is not None else self._parse_agent(user_agent)

    def _parse_agent(self, user_agent: str) -> Agent:
        key = user_agent[:_MAX_LEN]
        found = self._agents.get(key)
        if found is not None:
            return found
        if not key.strip():
            return _NO_AGENT
        parsed = self._ua(key, Domain.ALL)
        browser = sys.intern(parsed.user_agent.family) if parsed.user_agent else "Other"
        os_name = sys.intern(parsed.os.family) if parsed.os else "Other"
        family = parsed.device.family if parsed.device else "Other"
        brand = (parsed.device.brand or "") if parsed.device else ""
        bot = family == "Spider" or self._is_crawler(key)
        if bot:
            device, platform = "bot", "desktop"
        else:
            is_ios = os_name == "iOS" or family in _APPLE
            platform = "ios" if is_ios else "android" if os_name == "Android" else "desktop"
            if (
                family in _TABLETS
                or brand.endswith("_Tablet")
                or os_name == "BlackBerry Tablet OS"
                or (os_name == "Android" and "Mobile" not in key)  # Android tablets omit it
            ):
                device = "tablet"
            elif os_name in _MOBILE_OS or family in _PHONES:
                device = "mobile"
            elif os_name in _DESKTOP_OS or family == "Mac":
                device = "desktop"
            else:
                device = "other"  # TVs, consoles, watches, unknown
        agent = Agent(device, platform, browser, os_name, bot)
        _remember(self._agents, self.cache_size, key, agent)
        return agent

    def country(self, header_value: str | None, ip: str | None) -> str:
        if self.country_header is not None and header_value is not None:
            code = header_value.strip().upper()
            if len(code) == 2 and code.isascii() and code.isalpha() and code not in _NOT_COUNTRIES:
                return code
        if not ip:
            return ""
        found = self._countries.get(ip)
        if found is None:
            # Visitors come back from the same addresses; the table look-up costs ~15 us.
            found = geo.country(self._geo, ip)
            _remember(self._countries, self.cache_size, ip, found)
        return found

    def referrer(self, referer: str) -> tuple[str, str]:
        found = self._referrers.get(referer)
        return found if found is not None else self._parse_referrer(referer)

    def _parse_referrer(self, referer: str) -> tuple[str, str]:
        key = referer[:_MAX_LEN]  # the origin comes first: the cut never changes a real answer
        found = self._referrers.get(key)
        if found is not None:
            return found
        try:
            host = urlsplit(key.strip()).hostname or ""
        except ValueError:  # e.g. an unbalanced "[" in the authority
            host = ""
        host = host.rstrip(".")
        host = host[4:] if host.startswith("www.") else host
        if not host or len(host) > 253 or not _HOST_CHARS.issuperset(host):
            result = _NO_REFERRER
        else:
            result = (sys.intern(host), _social(host))
        _remember(self._referrers, self.cache_size, key, result)
        return result


def _social(host: str) -> str:
    # The host, then each parent domain: "l.facebook.com", "facebook.com", "com".
    while True:
        source = _SOCIAL.get(host)
        if source is not None:
            return source
        dot = host.find(".")
        if dot < 0:
            return ""
        host = host[dot + 1 :]
