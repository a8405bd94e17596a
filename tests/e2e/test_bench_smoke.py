"""The redirect bench keeps working: a few seconds at a low rate, loose bounds.

This proves the harness end to end (stack up, links seeded, locust visitors, percentiles,
budget checks, JSON result), not the budget: only a full `ricochet bench redirect` run
on a quiet machine says whether that holds. No wrk or oha needed: the ceiling is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(150)
def test_a_short_redirect_bench_prints_the_table_and_writes_a_passing_result(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RICOCHET_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ricochet",
            "bench",
            "redirect",
            "--profile",
            "smoke",
            "--duration",
            "4",
            "--warmup",
            "1",
            "--links",
            "200",
            "--no-ceiling",
            "--no-floor",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=140,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for heading in ("p50 ms", "p95 ms", "p99 ms", "req/s", "errors", "verdict: every budget met"):
        assert heading in out
    [path] = tmp_path.glob("redirect-*.json")
    result = json.loads(path.read_text())
    assert result["ok"] is True
    assert result["overall"]["requests"] > 0
    assert result["overall"]["errors"] == 0
    assert result["overall"]["latency_ms"]["p99"] >= result["overall"]["latency_ms"]["p50"] > 0
    assert set(result["kinds"]) >= {"click", "qr_scan", "bot"}
    assert {c["name"] for c in result["checks"]} >= {"p50 latency", "p99 latency", "errors"}
    assert result["edge_metrics"]["clicks_dropped"] == 0
