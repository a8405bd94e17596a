"""Thin-path latency: create a link, follow it on the edge, see the click counted.

Runs against a live `ricochet up` (reads `.ricochet/dev.json`):

    ./dev shell up &            # or ./dev up in another terminal
    .venv/bin/python bench/thin_path.py -n 50

Prints p50/p95/max for each stage and writes a JSON result to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path

import httpx2 as httpx


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_round(http: httpx.Client, info: dict[str, str]) -> dict[str, float]:
    auth = {"authorization": f"Bearer {info['api_key']}"}
    slug = "bench-" + uuid.uuid4().hex[:12]
    t0 = time.perf_counter()
    link = http.post(
        f"{info['control_url']}/api/v1/links",
        json={"destination": "https://example.com/", "slug": slug},
        headers=auth,
    ).json()
    t1 = time.perf_counter()
    while http.get(f"{info['edge_url']}/{slug}").status_code != 302:
        time.sleep(0.002)
    t2 = time.perf_counter()
    while (
        http.get(f"{info['control_url']}/api/v1/links/{link['id']}", headers=auth).json()["clicks"]
        < 1
    ):
        time.sleep(0.005)
    t3 = time.perf_counter()
    return {
        "create": t1 - t0,
        "visible_at_edge": t2 - t1,
        "click_counted": t3 - t2,
        "total": t3 - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="rounds [30]")
    parser.add_argument("--dev-json", type=Path, default=Path(".ricochet/dev.json"))
    args = parser.parse_args()
    info = json.loads(args.dev_json.read_text())
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        rounds = [one_round(http, info) for _ in range(args.n)]
    report = {}
    print(f"{'stage':<16}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for stage in rounds[0]:
        values = [r[stage] * 1000 for r in rounds]
        report[stage] = {
            "p50_ms": statistics.median(values),
            "p95_ms": percentile(values, 0.95),
            "max_ms": max(values),
        }
        print(
            f"{stage:<16}{report[stage]['p50_ms']:>10.1f}{report[stage]['p95_ms']:>10.1f}"
            f"{report[stage]['max_ms']:>10.1f}"
        )
    out = Path("bench/results") / f"thin_path-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rounds": args.n, "stages": report}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
