"""`ricochet up` as a user runs it: real processes, embedded servers, HTTP only."""

from __future__ import annotations

import signal
import time

import httpx2 as httpx

from tests.e2e.conftest import Up, wait_gone


def _create_follow_count(info: dict[str, str], slug: str) -> float:
    """Create a link, follow it on the edge, wait for the click in the API; seconds taken."""
    auth = {"authorization": f"Bearer {info['api_key']}"}
    started = time.monotonic()
    with httpx.Client(timeout=5, follow_redirects=False) as http:
        created = http.post(
            f"{info['control_url']}/api/v1/links",
            json={"destination": "https://example.com/landing", "slug": slug},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        link = created.json()
        # The relay projects after commit; poll until the edge knows the link.
        while (hit := http.get(f"{info['edge_url']}/{slug}")).status_code == 404:
            assert time.monotonic() - started < 10, "edge never learned the link"
            time.sleep(0.01)
        assert hit.status_code == 302
        assert hit.headers["location"] == "https://example.com/landing"
        while (
            http.get(f"{info['control_url']}/api/v1/links/{link['id']}", headers=auth).json()[
                "clicks"
            ]
            < 1
        ):
            assert time.monotonic() - started < 10, "click never counted"
            time.sleep(0.02)
    return time.monotonic() - started


def _change_destination_and_wait(info: dict[str, str], slug: str, destination: str) -> float:
    """PATCH the destination of a link the edge has cached; seconds until the edge serves it."""
    auth = {"authorization": f"Bearer {info['api_key']}"}
    with httpx.Client(timeout=5, follow_redirects=False) as http:
        [link] = http.get(
            f"{info['control_url']}/api/v1/links", params={"q": slug}, headers=auth
        ).json()["data"]
        started = time.monotonic()
        patched = http.patch(
            f"{info['control_url']}/api/v1/links/{link['id']}",
            json={"destination": destination},
            headers=auth,
        )
        assert patched.status_code == 200, patched.text
        while http.get(f"{info['edge_url']}/{slug}").headers.get("location") != destination:
            assert time.monotonic() - started < 10, "the edge kept the old destination"
            time.sleep(0.005)
    return time.monotonic() - started


def test_up_serves_the_thin_path_and_ctrl_c_leaves_nothing_behind(up: Up) -> None:
    info = up.start()
    assert set(info) == {
        "edge_url",
        "control_url",
        "api_key",
        "workspace_id",
        "database_url",
        "redis_url",
    }
    processes = up.descendants()
    assert len(processes) >= 6  # postgres, redis, edge, control, relay, ingest (+ workers)

    elapsed = _create_follow_count(info, "e2e-hello")
    changed = _change_destination_and_wait(info, "e2e-hello", "https://example.com/v2")

    assert elapsed < 2.0, f"create -> redirect -> counted took {elapsed:.2f}s"
    assert changed < 1.0, f"destination change took {changed:.2f}s to reach the edge"
    assert up.stop(signal.SIGINT) == 0
    assert wait_gone(processes) == []
    assert not (up.home / "dev.json").exists()


def test_up_recovers_after_kill_9_and_keeps_data(up: Up) -> None:
    first = up.start()
    _create_follow_count(first, "before-crash")
    processes = up.descendants()

    up.stop(signal.SIGKILL)

    # The kernel's parent-death signal takes every child down with it.
    assert wait_gone(processes) == []
    second = up.start()
    assert second["api_key"] == first["api_key"]  # same dev key, same data
    with httpx.Client(timeout=5, follow_redirects=False) as http:
        assert http.get(f"{second['edge_url']}/before-crash").status_code == 302
    _create_follow_count(second, "after-crash")
    assert up.stop(signal.SIGTERM) == 0
