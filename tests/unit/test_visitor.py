"""Click enrichment at ingest (control/clicks/visitor.py): agents, countries, referrers."""

from __future__ import annotations

import os
import sys

import pytest
from crawlerdetect import CrawlerDetect
from crawlerdetect.providers.crawlers import data as crawlers

from control.clicks.visitor import Agent, Visitors

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
IPOD_SAFARI = (
    "Mozilla/5.0 (iPod touch; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/15.6.6 Mobile/15E148 Safari/604.1"
)
IOS_APP = "MyApp/1.2 CFNetwork/1494.0.7 Darwin/23.4.0"
ANDROID_PHONE_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"
)
ANDROID_TABLET_CHROME = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/123.0.6312.118 Safari/537.36"
)
INSTAGRAM_ANDROID = (
    "Mozilla/5.0 (Linux; Android 13; SM-S908B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.105 Mobile Safari/537.36 Instagram "
    "321.0.0.39.106 Android (33/13; 480dpi; 1080x2340; samsung; SM-S908B; b0q; qcom; en_US; "
    "579268367)"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
MACOS_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
)
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
FACEBOOK_PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
CURL = "curl/8.5.0"
ENV_WARNINGS = os.environ.get("PYTHONWARNINGS")


@pytest.fixture(scope="module")
def visitors() -> Visitors:
    # Loading the GeoIP table and regexes takes ~0.3 s: once for the module.
    return Visitors(country_header="cf-ipcountry")


@pytest.fixture(scope="module")
def untrusting() -> Visitors:
    return Visitors()


# --- agent(): device, platform, browser, OS, bot ---------------------------------------------


def test_ua_parser_uses_the_rust_backend(visitors: Visitors) -> None:
    # Given ua-parser-rs installed (the "ua-parser[regex]" pin) / Then misses use the Rust engine
    assert visitors.ua_backend == "rust"


def test_iphone_safari_is_a_mobile_ios_visitor(visitors: Visitors) -> None:
    # When an iPhone's Safari is parsed / Then it is a phone routed to iOS
    assert visitors.agent(IPHONE_SAFARI) == Agent("mobile", "ios", "Mobile Safari", "iOS", False)


def test_ipad_is_a_tablet_routed_to_ios(visitors: Visitors) -> None:
    # When an iPad's Safari is parsed / Then it is a tablet routed to iOS
    assert visitors.agent(IPAD_SAFARI) == Agent("tablet", "ios", "Mobile Safari", "iOS", False)


def test_android_phone_chrome_is_a_mobile_android_visitor(visitors: Visitors) -> None:
    # When Chrome on an Android phone (with "Mobile" in its UA) is parsed
    agent = visitors.agent(ANDROID_PHONE_CHROME)

    # Then it is a phone routed to Android
    assert agent == Agent("mobile", "android", "Chrome Mobile", "Android", False)


def test_android_without_mobile_token_is_a_tablet(visitors: Visitors) -> None:
    # When Chrome on an Android tablet (no "Mobile" token) is parsed
    agent = visitors.agent(ANDROID_TABLET_CHROME)

    # Then it is a tablet, still routed to Android
    assert agent == Agent("tablet", "android", "Chrome", "Android", False)


def test_windows_chrome_is_a_desktop_visitor(visitors: Visitors) -> None:
    assert visitors.agent(WINDOWS_CHROME) == Agent("desktop", "desktop", "Chrome", "Windows", False)


def test_macos_safari_is_a_desktop_visitor(visitors: Visitors) -> None:
    assert visitors.agent(MACOS_SAFARI) == Agent("desktop", "desktop", "Safari", "Mac OS X", False)


def test_linux_firefox_is_a_desktop_visitor(visitors: Visitors) -> None:
    assert visitors.agent(LINUX_FIREFOX) == Agent("desktop", "desktop", "Firefox", "Linux", False)


@pytest.mark.parametrize(
    ("user_agent", "browser"),
    [
        (GOOGLEBOT, "Googlebot"),
        (BINGBOT, "bingbot"),
        (FACEBOOK_PREVIEW, "FacebookBot"),
    ],
)
def test_crawlers_are_bots_on_the_desktop_route(
    visitors: Visitors, user_agent: str, browser: str
) -> None:
    # When a known crawler is parsed / Then it is a bot, routed like a desktop
    assert visitors.agent(user_agent) == Agent("bot", "desktop", browser, "Other", True)


def test_a_smartphone_crawler_is_a_bot_not_an_android_visitor(visitors: Visitors) -> None:
    # Given Googlebot's smartphone UA, which names Android
    agent = visitors.agent(GOOGLEBOT_SMARTPHONE)

    # Then it is still a bot on the desktop route
    assert (agent.device, agent.platform, agent.bot) == ("bot", "desktop", True)


def test_curl_is_a_bot(visitors: Visitors) -> None:
    # Given curl, which crawlerdetect lists as a crawler (ua-parser has no device for it)
    agent = visitors.agent(CURL)

    # Then it counts as a bot
    assert agent == Agent("bot", "desktop", "curl", "Other", True)


def _crawler_samples() -> list[str]:
    # Each plain-text pattern of crawlerdetect's list, alone and inside a browser-like UA
    samples = []
    for pattern in crawlers:
        text = pattern.strip("^$").replace("\\/", "/").replace("\\.", ".").replace("\\(", "(")
        if not set(text) & set("\\^$.[]()*+?{}|"):
            samples += [text, f"Mozilla/5.0 (compatible; {text.upper()}/1.0)"]
    return samples


def test_every_ua_the_library_calls_a_crawler_is_a_bot(visitors: Visitors) -> None:
    # Given UAs built from crawlerdetect's own patterns, which the library flags
    library = CrawlerDetect()
    samples = [ua for ua in _crawler_samples() if library.is_crawler(ua)]
    assert len(samples) > 2000

    # When they are parsed / Then our fast path (Rust pre-filter) misses none of them
    assert [ua for ua in samples if not visitors.agent(ua).bot] == []


def test_without_the_rust_engine_the_answers_are_the_same(
    visitors: Visitors, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given ua-parser-rs not installed
    monkeypatch.setitem(sys.modules, "ua_parser_rs", None)
    monkeypatch.setitem(sys.modules, "ua_parser.regex", None)
    slow = Visitors()
    assert slow.ua_backend == "python"

    # When browsers and bots are parsed / Then the pure-Python engines agree with the Rust ones
    for ua in (IPHONE_SAFARI, ANDROID_TABLET_CHROME, WINDOWS_CHROME, GOOGLEBOT, CURL):
        assert slow.agent(ua) == visitors.agent(ua)


def test_an_empty_user_agent_is_other(visitors: Visitors) -> None:
    assert visitors.agent("") == Agent("other", "desktop", "Other", "Other", False)


def test_an_unknown_user_agent_is_other(visitors: Visitors) -> None:
    assert visitors.agent("asdf") == Agent("other", "desktop", "Other", "Other", False)


@pytest.mark.parametrize(
    ("user_agent", "platform"),
    [
        (IPHONE_SAFARI, "ios"),
        (IPAD_SAFARI, "ios"),
        (IPOD_SAFARI, "ios"),
        (IOS_APP, "ios"),
        (ANDROID_PHONE_CHROME, "android"),
        (ANDROID_TABLET_CHROME, "android"),
        (INSTAGRAM_ANDROID, "android"),
        (WINDOWS_CHROME, "desktop"),
        (MACOS_SAFARI, "desktop"),
        (LINUX_FIREFOX, "desktop"),
        (GOOGLEBOT, "desktop"),
        ("", "desktop"),
    ],
)
def test_routing_platform(visitors: Visitors, user_agent: str, platform: str) -> None:
    # When a UA is parsed / Then its link-routing platform is iOS, Android or desktop
    assert visitors.agent(user_agent).platform == platform


def test_the_same_user_agent_gives_the_same_object_back(visitors: Visitors) -> None:
    # Given a UA parsed once
    first = visitors.agent(WINDOWS_CHROME)

    # When it is parsed again / Then the cached object is returned
    assert visitors.agent(WINDOWS_CHROME) is first


def test_the_agent_cache_is_bounded() -> None:
    # Given a cache of 3 entries, filled by 4 distinct UAs
    small = Visitors(cache_size=3)
    agents = [small.agent(f"{LINUX_FIREFOX} n{n}") for n in range(4)]

    # When they are looked up again, newest first / Then the 3 newest are hits, the oldest is not
    assert [small.agent(f"{LINUX_FIREFOX} n{n}") is agents[n] for n in (3, 2, 1)] == [True] * 3
    assert small.agent(f"{LINUX_FIREFOX} n0") is not agents[0]


def test_a_very_long_user_agent_is_parsed_and_cached_by_its_prefix(visitors: Visitors) -> None:
    # Given a UA far longer than any real one
    long_ua = WINDOWS_CHROME + " x" * 4000

    # When it is parsed / Then it is classified from its first 512 characters, cached under them
    agent = visitors.agent(long_ua)
    assert agent.os == "Windows"
    assert visitors.agent(long_ua[:512]) is agent


def test_constructing_visitors_leaves_the_environment_alone(visitors: Visitors) -> None:
    # Given geoip2fast, whose import sets PYTHONWARNINGS=ignore for every later child process
    # Then the value seen before our module loaded it is back
    assert os.environ.get("PYTHONWARNINGS") == ENV_WARNINGS


# --- country() -------------------------------------------------------------------------------


def test_a_trusted_country_header_wins(visitors: Visitors) -> None:
    # Given a configured CDN header / When it carries a code / Then that code is used, not the IP
    assert visitors.country("DE", "8.8.8.8") == "DE"


def test_a_lower_case_country_header_is_upper_cased(visitors: Visitors) -> None:
    assert visitors.country("fr", None) == "FR"


@pytest.mark.parametrize("value", ["XX", "T1", "ZZ", "", "USA", "1", "é"])
def test_invalid_country_header_values_fall_back_to_the_ip(visitors: Visitors, value: str) -> None:
    # When the header carries unknown/Tor/garbage / Then the IP decides
    assert visitors.country(value, "8.8.8.8") == "US"


def test_the_country_header_is_ignored_when_not_configured(untrusting: Visitors) -> None:
    # Given no trusted header / When a client sends one anyway / Then only the IP counts
    assert untrusting.country("DE", "8.8.8.8") == "US"


def test_country_from_a_public_ipv4(untrusting: Visitors) -> None:
    assert untrusting.country(None, "8.8.8.8") == "US"


def test_country_from_a_public_ipv6(untrusting: Visitors) -> None:
    assert untrusting.country(None, "2001:4860:4860::8888") == "US"


@pytest.mark.parametrize("ip", ["10.0.0.1", "192.168.1.1", "127.0.0.1", "::1"])
def test_private_addresses_have_no_country(untrusting: Visitors, ip: str) -> None:
    assert untrusting.country(None, ip) == ""


@pytest.mark.parametrize("ip", [None, "", "garbage", "8.8.8.8:80", "999.1.1.1", "[::1]"])
def test_missing_or_invalid_addresses_have_no_country(untrusting: Visitors, ip: str | None) -> None:
    assert untrusting.country(None, ip) == ""


# --- referrer() ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("facebook.com", "facebook"),
        ("m.facebook.com", "facebook"),
        ("l.facebook.com", "facebook"),
        ("lm.facebook.com", "facebook"),
        ("fb.com", "facebook"),
        ("fb.me", "facebook"),
        ("instagram.com", "instagram"),
        ("l.instagram.com", "instagram"),
        ("twitter.com", "x"),
        ("mobile.twitter.com", "x"),
        ("x.com", "x"),
        ("t.co", "x"),
        ("linkedin.com", "linkedin"),
        ("lnkd.in", "linkedin"),
        ("reddit.com", "reddit"),
        ("old.reddit.com", "reddit"),
        ("out.reddit.com", "reddit"),
        ("youtube.com", "youtube"),
        ("m.youtube.com", "youtube"),
        ("youtu.be", "youtube"),
        ("tiktok.com", "tiktok"),
        ("pinterest.com", "pinterest"),
        ("pin.it", "pinterest"),
        ("snapchat.com", "snapchat"),
        ("whatsapp.com", "whatsapp"),
        ("wa.me", "whatsapp"),
        ("t.me", "telegram"),
        ("telegram.org", "telegram"),
        ("threads.net", "threads"),
        ("bsky.app", "bluesky"),
        ("discord.com", "discord"),
        ("discord.gg", "discord"),
    ],
)
def test_social_sources(visitors: Visitors, host: str, source: str) -> None:
    # When a referrer on a social network's domain or sub-domain arrives
    result = visitors.referrer(f"https://{host}/some/path?x=1")

    # Then its host and the network are reported
    assert result == (host, source)


def test_www_is_stripped_and_the_host_lower_cased(visitors: Visitors) -> None:
    assert visitors.referrer("https://WWW.Facebook.COM/") == ("facebook.com", "facebook")


def test_port_and_credentials_are_not_part_of_the_host(visitors: Visitors) -> None:
    assert visitors.referrer("https://u:p@news.example.org:8443/a") == ("news.example.org", "")


def test_an_unknown_host_has_no_social_source(visitors: Visitors) -> None:
    assert visitors.referrer("https://www.google.com/") == ("google.com", "")


@pytest.mark.parametrize("host", ["notfacebook.com", "facebook.com.evil.net", "at.co", "at.me"])
def test_lookalike_domains_are_not_social(visitors: Visitors, host: str) -> None:
    # When a host merely ends with (or starts with) a network's name / Then it is not that network
    assert visitors.referrer(f"https://{host}/")[1] == ""


@pytest.mark.parametrize(
    "referer",
    ["", "not a url", "facebook.com/x", "javascript:alert(1)", "https://[::1/", "http://"],
)
def test_garbage_referrers_are_empty(visitors: Visitors, referer: str) -> None:
    assert visitors.referrer(referer) == ("", "")


def test_a_host_with_invalid_characters_is_rejected(visitors: Visitors) -> None:
    assert visitors.referrer("https://exa mple.com/") == ("", "")


def test_the_same_referrer_gives_the_same_object_back(visitors: Visitors) -> None:
    first = visitors.referrer("https://t.co/abc")
    assert visitors.referrer("https://t.co/abc") is first
