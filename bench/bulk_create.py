"""Bulk create: 1,000 links in one `POST /api/v1/links/bulk`, timed end to end over HTTP.

Runs against a live `ricochet up` (reads `.ricochet/dev.json`):

    ./dev up &                      # in another terminal
    .venv/bin/python bench/bulk_create.py --rounds 5

Each round sends 1,000 new links with explicit slugs, UTM fields and two tags (the shape of
seed 001's campaign matrix). Budget (../shared/design.md): 1,000 links in one call <= 1 s.
Exits 1 when the median misses the budget. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx2 as httpx

BUDGET_S = 1.0


def items(run: str, n: int) -> list[dict[str, object]]:
    return [
        {
            "destination": f"https://brand{i % 5}.example/launch?ref={i}",
            "slug": f"b-{run}-{i}",
            "utm_source": f"channel-{i % 10}",
            "utm_medium": "cpc",
            "utm_campaign": f"brand{i % 5}-q2",
            "utm_content": f"v{i % 4}",
            "tags": [f"brand{i % 5}", f"channel-{i % 10}"],
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--dev-json", type=Path, default=Path(".ricochet/dev.json"))
    args = parser.parse_args()
    info = json.loads(args.dev_json.read_text())
    auth = {"authorization": f"Bearer {info['api_key']}"}
    timings = []
    with httpx.Client(timeout=60) as http:
        for r in range(args.rounds):
            body = {"items": items(uuid.uuid4().hex[:8], args.size)}
            started = time.perf_counter()
            response = http.post(
                f"{info['control_url']}/api/v1/links/bulk", json=body, headers=auth
            )
            elapsed = time.perf_counter() - started
            result = response.json()
            if response.status_code != 200 or result["created"] != args.size:
                sys.exit(
                    f"round {r}: unexpected answer {response.status_code}: {str(result)[:300]}"
                )
            timings.append(elapsed)
            print(f"round {r + 1}: {args.size} links in {elapsed * 1000:.0f} ms")
    median = statistics.median(timings)
    verdict = "ok" if median <= BUDGET_S else "MISSED"
    print(
        f"median {median * 1000:.0f} ms, best {min(timings) * 1000:.0f} ms, "
        f"worst {max(timings) * 1000:.0f} ms; budget {BUDGET_S * 1000:.0f} ms: {verdict}"
    )
    out = Path("bench/results") / f"bulk_create-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "size": args.size,
                "seconds": timings,
                "median_s": median,
                "budget_s": BUDGET_S,
                "ok": median <= BUDGET_S,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {out}")
    sys.exit(0 if median <= BUDGET_S else 1)


if __name__ == "__main__":
    main()
