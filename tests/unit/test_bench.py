"""The benchmarks' own arithmetic: budgets, checks, percentiles, parsing, schedules, mixes.

Timing is never asserted here (design.md: budgets are measured by benchmarks, never by
timed unit tests); these are the pure pieces the bench's verdicts are built from.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from bench import budgets, ceiling, loadgen, report
from bench.budgets import Check
from bench.visits import Mix
from ricochet.cli import main

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:40000/hot
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.63ms  412.11us   9.87ms   86.12%
    Req/Sec    39.12k     1.20k   41.00k    80.00%
  Latency Distribution
     50%    1.52ms
     75%    1.80ms
     90%    2.16ms
     99%  850.00us
  311423 requests in 8.00s, 35.61MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  38926.34
Transfer/sec:      4.45MB
"""


def test_the_full_profile_is_the_design_budget() -> None:
    b = budgets.load("full")
    assert b["redirect"]["rate"] == 2000
    assert b["redirect"]["p50_ms"] == 1.5
    assert b["redirect"]["p99_ms"] == 5.0
    assert b["ceiling"]["ratio_capture_on"] == 0.6
    assert b["ceiling"]["capture_cost"] == 0.1
    assert b["ingest"]["throughput_per_s"] == 20000
    assert b["ingest"]["lag_p99_s"] == 2.0
    assert b["bulk"]["seconds"] == 1.0
    assert b["webhooks"]["deliveries_per_s"] == 1000
    assert b["webhooks"]["first_attempt_p95_s"] == 2.0
    assert b["memory"]["links"] == 100_000
    assert b["memory"]["rss_mb"] == 120
    assert b["ceiling"]["ratio_full_stack"] == 0.6
    assert b["redirect"]["edge_cpu_vs_bare"] == 1.3
    assert b["redirect"]["pipeline_us_per_click"] == 100
    assert b["redirect"]["control_fallbacks"] == 0


def test_the_smoke_profile_loosens_what_it_names_and_keeps_the_rest() -> None:
    full, smoke = budgets.load("full"), budgets.load("smoke")
    assert smoke["redirect"]["p99_ms"] > full["redirect"]["p99_ms"]
    assert smoke["redirect"]["errors"] == full["redirect"]["errors"] == 0
    assert "smoke" not in smoke


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="no profile"):
        budgets.load("nightly")


@pytest.mark.parametrize(
    ("check", "verdict"),
    [
        (Check("p99", 4.9, 5.0, "<="), "ok"),
        (Check("p99", 5.1, 5.0, "<="), "MISSED"),
        (Check("rate", 1999.0, 1940.0, ">="), "ok"),
        (Check("rate", 1000.0, 1940.0, ">="), "MISSED"),
        (Check("p99", None, 5.0, "<="), "MISSED"),
        (Check("ratio", 0.1, 0.6, ">=", judged=False, note="generator-bound"), "not judged"),
    ],
)
def test_a_check_is_met_missed_or_not_judged(check: Check, verdict: str) -> None:
    assert check.verdict == verdict
    assert check.ok is (verdict != "MISSED")


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert report.percentile(values, 0.50) == 50
    assert report.percentile(values, 0.99) == 99
    assert report.percentile(values, 1.0) == 100
    assert report.percentile([7.0], 0.99) == 7
    assert math.isnan(report.percentile([], 0.5))


def test_results_are_valid_json_without_nan_and_with_checks_as_objects() -> None:
    body = {"p": report.summary([]), "checks": [Check("errors", 0, 0, "<=")]}
    text = msgspec.json.encode(report.jsonable(body))
    decoded = msgspec.json.decode(text)
    assert decoded["p"]["p50"] is None
    assert decoded["checks"][0]["verdict"] == "ok"


def test_wrk_output_is_read_with_units_and_errors() -> None:
    got = ceiling.parse_wrk(WRK_OUTPUT)
    assert got["rps"] == 38926.34
    assert got["p50_ms"] == 1.52
    assert got["p99_ms"] == 0.85
    assert got["bad_responses"] == 5
    assert got["socket_errors"] == 3


def test_oha_json_is_read() -> None:
    out = msgspec.json.encode(
        {
            "summary": {"requestsPerSec": 1234.5},
            "latencyPercentiles": {"p50": 0.001, "p90": 0.002, "p99": 0.004},
            "statusCodeDistribution": {"302": 100, "404": 2},
            "errorDistribution": {"connection reset": 3},
        }
    ).decode()
    got = ceiling.parse_oha(out)
    assert got["rps"] == 1234.5
    assert got["p99_ms"] == pytest.approx(4.0)
    assert got["bad_responses"] == 2
    assert got["socket_errors"] == 3


def _ceiling_result(tool: str, bare_cpu: float) -> dict[str, object]:
    return {
        "tool": tool,
        "servers": {"bare": {"server_cpu": bare_cpu}},
        "ratio_capture_on": 0.5,
        "capture_cost": 0.2,
        "errors": 0.0,
    }


def test_ceiling_ratios_from_a_generator_that_could_not_load_the_bare_app_are_not_judged() -> None:
    b = budgets.load()["ceiling"]
    starved = ceiling.checks(_ceiling_result("locust", 0.4), b)  # type: ignore[arg-type]
    assert [c.verdict for c in starved[:2]] == ["not judged", "not judged"]
    saturated = ceiling.checks(_ceiling_result("wrk", 0.9), b)  # type: ignore[arg-type]
    assert [c.verdict for c in saturated[:2]] == ["MISSED", "MISSED"]


def test_a_fixed_rate_becomes_users_and_each_process_takes_its_share() -> None:
    [step] = loadgen.fixed(2000, 50, warmup_s=5, duration_s=30)
    assert (step.users, step.rate, step.until_s) == (40, 2000, 35)
    plan = loadgen.Plan("v", Path("x.py"), "http://e", 3, [step], 50)
    shares = [plan.schedule_for(n)[0][1] for n in range(3)]
    assert shares == [14, 13, 13]
    assert sum(shares) == step.users


def test_a_ramp_climbs_in_equal_steps() -> None:
    steps = loadgen.ramp(start=500, step=500, steps=4, step_s=10, per_user_rate=50)
    assert [s.rate for s in steps] == [500, 1000, 1500, 2000]
    assert [s.until_s for s in steps] == [10, 20, 30, 40]
    assert loadgen.processes_for(2000) == 2
    assert loadgen.processes_for(100) == 1


def _process_file(
    kinds: list[str], errors: list[str], rows: list[tuple[float, float, int, int]]
) -> dict[str, object]:
    return {
        "started": 100.0,
        "stopped": 110.0,
        "cpu_s": 2.0,
        "kinds": kinds,
        "errors": errors,
        "t": array("d", [r[0] for r in rows]).tobytes(),
        "ms": array("d", [r[1] for r in rows]).tobytes(),
        "kind": array("H", [r[2] for r in rows]).tobytes(),
        "err": array("H", [r[3] for r in rows]).tobytes(),
        "late": array("d", [0.0] * len(rows)).tobytes(),
    }


def test_samples_of_several_processes_merge_by_name_and_count_errors() -> None:
    samples = loadgen.Samples()
    samples.add(_process_file(["click"], [""], [(101.0, 1.0, 0, 0), (102.0, 3.0, 0, 0)]))
    samples.add(
        _process_file(
            ["bot", "click"],
            ["", "status 500"],
            [(103.0, 2.0, 1, 0), (104.0, 9.0, 0, 1), (120.0, 1.0, 1, 0)],
        )
    )
    idx = samples.window(100.0, 110.0)  # the last answer came after the window
    overall = loadgen.stats(samples, idx, 10.0)
    assert overall.requests == 4
    assert overall.rate == 0.4
    assert overall.errors == 1
    assert overall.error_kinds == {"status 500": 1}
    kinds = loadgen.by_kind(samples, idx, 10.0)
    assert kinds["click"].requests == 3
    assert kinds["bot"].errors == 1
    assert kinds["bot"].latency_ms["max"] == 9.0


def test_the_visitor_mix_keeps_its_shares_and_its_skew() -> None:
    slugs = [f"s{i}" for i in range(100)]
    mix = Mix(slugs, "go.example", zipf=1.0, unknown=0.02, qr=0.1, bots=0.05, rng=random.Random(7))
    visits = [mix.next() for _ in range(50_000)]
    kinds = Counter(v[0] for v in visits)
    assert kinds["unknown"] / len(visits) == pytest.approx(0.02, abs=0.005)
    assert kinds["qr_scan"] / len(visits) == pytest.approx(0.10, abs=0.01)
    assert kinds["bot"] / len(visits) == pytest.approx(0.05, abs=0.01)
    assert all(v[3] == (404 if v[0] == "unknown" else 302) for v in visits)
    assert all(v[1].endswith("?qr=1") for v in visits if v[0] == "qr_scan")
    assert all(v[2]["Host"] == "go.example" for v in visits)
    top = Counter(v[1] for v in visits if v[0] == "click")
    harmonic = sum(1 / r for r in range(1, 101))
    assert top["/s0"] / sum(top.values()) == pytest.approx(1 / harmonic, abs=0.02)
    assert top["/s0"] > 5 * top.get("/s9", 0)


def test_the_hot_mix_always_visits_one_path() -> None:
    mix = Mix([], "localhost", hot="/hot")
    assert {mix.next()[1] for _ in range(10)} == {"/hot"}


def test_a_running_system_needs_its_edge_control_plane_and_key_together() -> None:
    result = CliRunner().invoke(main, ["bench", "redirect", "--edge-url", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "go together" in result.output


def test_stack_settings_must_be_ricochet_variables() -> None:
    result = CliRunner().invoke(main, ["bench", "bulk", "--set", "DEBUG=1"])
    assert result.exit_code == 2
    assert "RICOCHET_NAME=VALUE" in result.output
