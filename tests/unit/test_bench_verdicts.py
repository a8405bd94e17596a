"""What the memory, ceiling and redirect benches conclude from their figures: the pure
arithmetic and checks behind each verdict (no process is started, nothing is timed)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from bench import budgets, ceiling, memory, report
from bench import redirect_verdict as verdict
from bench.stack import parse_edge_metrics
from ricochet.cli import main
from shared.records import LinkRecord

METRICS_PAGE = """# HELP ricochet_edge_redirects_total Redirects answered (any 3xx)
# TYPE ricochet_edge_redirects_total counter
ricochet_edge_redirects_total 1234.0
ricochet_edge_control_fallbacks_total 4.0
ricochet_edge_cached_links 100000.0
ricochet_edge_clicks_buffered 0.0
python_gc_objects_collected_total{generation="0"} 5.0
"""


def test_the_edge_metrics_page_is_read_without_prefix_or_suffix() -> None:
    got = parse_edge_metrics(METRICS_PAGE)
    assert got == {
        "redirects": 1234.0,
        "control_fallbacks": 4.0,
        "cached_links": 100_000.0,
        "clicks_buffered": 0.0,
    }


# -- memory ----------------------------------------------------------------------------------


def test_memory_bench_projects_records_as_the_relay_does() -> None:
    messages = memory.upsert_messages("r1", 10, 3)
    assert [m["key"] for m in messages] == [
        "l:localhost/mr1-10",
        "l:localhost/mr1-11",
        "l:localhost/mr1-12",
    ]
    assert {m["op"] for m in messages} == {"upsert"}
    record = msgspec.convert(messages[0]["record"], LinkRecord)
    assert record.version == messages[0]["version"] == 1
    assert record.destination == "https://brand0.example/launch?ref=10"
    assert record.utm == {
        "utm_source": "channel-0",
        "utm_medium": "cpc",
        "utm_campaign": "brand0-q2",
    }
    assert len({msgspec.convert(m["record"], LinkRecord).link_id for m in messages}) == 3


def test_the_cache_footprint_grows_with_the_records_cached() -> None:
    small = memory.cache_footprint_mb(memory.upsert_messages("r", 0, 200))
    large = memory.cache_footprint_mb(memory.upsert_messages("r", 0, 2000))
    assert 0 < small < large


def _memory_result(links: int, warm_rss: float, loaded_rss: float) -> dict[str, Any]:
    visits = {"errors": 0, "per_second": 1000.0, "statuses": {"302": links}}
    return memory.summarise(
        links,
        {"rss_mb": 50.0, "peak_mb": 50.0},
        {"rss_mb": warm_rss, "peak_mb": warm_rss},
        {"rss_mb": loaded_rss, "peak_mb": loaded_rss + 1},
        {"rss_mb": 35.0, "peak_mb": 35.0},
        visits,
        visits,
        {"cached_links": float(links), "clicks_captured": float(links)},
        1.0,
        links // 100,
    )


def test_memory_growth_is_per_thousand_links_visited_after_the_warm_point() -> None:
    result = _memory_result(100_000, warm_rss=51.0, loaded_rss=150.0)
    assert result["mb_per_1000_links"] == pytest.approx(99.0 / 99)
    assert result["rss_mb"]["loaded"] == 150.0
    assert "1.000 MB per 1,000 links" in memory.render(result)


def test_the_memory_budget_holds_against_the_worker_rss() -> None:
    b = budgets.load()["memory"]
    over = memory.checks(_memory_result(100_000, 51.0, 150.0), b)
    assert [c.verdict for c in over] == ["MISSED", "ok", "ok"]
    within = memory.checks(_memory_result(100_000, 51.0, 110.0), b)
    assert budgets.all_ok(within)


def test_a_memory_run_with_fewer_links_than_the_budget_is_not_judged() -> None:
    found = memory.checks(_memory_result(2000, 51.0, 200.0), budgets.load()["memory"])
    assert found[0].verdict == "not judged"
    assert "fewer links" in found[0].note


def test_a_memory_run_missing_links_in_the_cache_fails() -> None:
    result = _memory_result(100_000, 51.0, 110.0)
    result["cached_links"] = 99_000.0
    assert not budgets.all_ok(memory.checks(result, budgets.load()["memory"]))


# -- ceiling: the full-stack row -------------------------------------------------------------


def _round(rps: float, **extra: float) -> dict[str, float]:
    return {
        "rps": rps,
        "p50_ms": 1.0,
        "p99_ms": 3.0,
        "bad_responses": 0.0,
        "socket_errors": 0.0,
        "server_cpu": 1.0,
        "cpu_us_per_request": 1e6 / rps,
        **extra,
    }


def _ceiling_rounds(full_stack_rps: list[float]) -> dict[str, list[dict[str, float]]]:
    full = {
        "pipeline_cpu_us_per_click": 40.0,
        "drain_s": 2.0,
        "round_clicks": 1e5,
        "stack_cpu_us_per_request": 80.0,
    }
    return {
        "bare": [_round(50_000), _round(60_000), _round(55_000)],
        "edge_capture_on": [_round(36_000)] * 3,
        "edge_capture_off": [_round(38_000)] * 3,
        ceiling.FULL_STACK: [_round(r, **full) for r in full_stack_rps],
    }


def test_the_full_stack_row_is_a_median_ratio_to_the_bare_app_of_the_same_run() -> None:
    result = ceiling.summarise(
        ceiling.Config(), "wrk", _ceiling_rounds([20_000, 22_000, 30_000]), {}
    )
    assert result["ratio_full_stack"] == pytest.approx(22_000 / 55_000)
    assert result["servers"][ceiling.FULL_STACK]["pipeline_cpu_us_per_click"] == 40.0
    assert result["cpu_ratio_full_stack"] == pytest.approx((1e6 / 55_000) / 80.0)
    result["full_stack_clicks"] = {"captured": 10.0, "stored": 10.0, "dropped": 0.0}
    found = {c.name: c for c in ceiling.checks(result, budgets.load()["ceiling"])}
    assert found["full stack / bare"].verdict == "MISSED"
    assert found["full stack: clicks captured, not stored"].verdict == "ok"
    text = ceiling.render(result)
    assert "full stack / bare = 0.40x" in text
    assert text.splitlines()[6].startswith(
        "full stack "
    )  # a row of the table beside the isolated ones


def test_a_full_stack_click_never_stored_misses_the_budget() -> None:
    result = ceiling.summarise(ceiling.Config(), "wrk", _ceiling_rounds([40_000] * 3), {})
    result["full_stack_clicks"] = {"captured": 10.0, "stored": 9.0, "dropped": 0.0}
    found = {c.name: c for c in ceiling.checks(result, budgets.load()["ceiling"])}
    assert found["full stack / bare"].verdict == "ok"
    assert found["full stack: clicks captured, not stored"].verdict == "MISSED"


def test_without_the_full_stack_row_the_isolated_checks_stand_alone() -> None:
    rounds = _ceiling_rounds([1.0])
    del rounds[ceiling.FULL_STACK]
    result = ceiling.summarise(ceiling.Config(full_stack=False), "wrk", rounds, {})
    names = [c.name for c in ceiling.checks(result, budgets.load()["ceiling"])]
    assert "full stack / bare" not in names
    assert "full stack" not in ceiling.render(result)


# -- redirect: CPU per unit of work ----------------------------------------------------------


def _stats(p50: float, p99: float) -> dict[str, Any]:
    return {
        "rate": 2000.0,
        "requests": 60_000,
        "errors": 0,
        "error_kinds": {},
        "latency_ms": report.summary([p50, p99]),
        "late_ms": report.summary([0.5]),
    }


def _redirect_result(**over: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "overall": _stats(1.0, 4.0),
        "cpu": {"seconds": 30.0, "ours_cores": {"edge": 0.30, "ingest": 0.10, "postgres": 0.06}},
        "floor": {**_stats(0.5, 2.0), "cpu_us_per_request": 100.0},
        "window_metrics": {"clicks_captured": 59_400.0, "not_found": 600.0},
        "edge_metrics": {"clicks_dropped": 0.0, "control_fallbacks": 0.0},
    }
    result.update(over)
    return result


def test_cpu_per_request_and_per_click_come_from_the_measured_window() -> None:
    cost = verdict.costs(_redirect_result())
    assert cost["edge_us_per_request"] == pytest.approx(150.0)
    assert cost["edge_vs_floor"] == pytest.approx(1.5)
    assert cost["clicks_per_s"] == pytest.approx(1980.0)
    assert cost["pipeline_us_per_click"] == pytest.approx(0.16 / 1980 * 1e6)


def _checks(result: dict[str, Any]) -> dict[str, str]:
    found = verdict.checks("fixed", budgets.load(), 2000, result)
    return {c.name: c.verdict for c in found}


def test_the_redirect_verdict_judges_cpu_against_the_floor_and_per_click() -> None:
    got = _checks(_redirect_result())
    assert got["edge CPU per request / bare floor's"] == "MISSED"  # 1.5x > 1.3x
    assert got["ingest + PostgreSQL CPU per click"] == "ok"  # 81 us <= 100 us
    assert got["control-plane look-ups"] == "ok"


def test_without_a_floor_or_our_own_stack_cpu_is_shown_but_not_judged() -> None:
    result = _redirect_result(floor={}, cpu={"seconds": 30.0, "ours_cores": {"edge": 0.3}})
    del result["floor"]
    got = _checks(result)
    assert got["edge CPU per request / bare floor's"] == "not judged"
    assert got["ingest + PostgreSQL CPU per click"] == "not judged"


def test_unknown_slugs_reaching_the_control_plane_miss_the_budget() -> None:
    result = _redirect_result(edge_metrics={"clicks_dropped": 0.0, "control_fallbacks": 1200.0})
    result["window_metrics"]["control_fallbacks"] = 1200.0
    assert _checks(result)["control-plane look-ups"] == "MISSED"
    result["config"] = {"links": 10, "edge_workers": 1, "locust_processes": 2}
    result.update(target_rate=2000.0, measured_s=30.0, kinds={})
    result["cpu_costs"] = verdict.costs(result)
    text = verdict.render(result)
    assert "2.00 control-plane look-ups per unknown-slug request" in text
    assert "CPU per request: edge 150 us, bare 302 floor 100 us" in text


def test_a_captured_click_missing_from_postgresql_fails_the_redirect_bench() -> None:
    result = _redirect_result(clicks={"captured": 100.0, "stored": 99.0})
    assert _checks(result)["clicks captured, not stored"] == "MISSED"


def test_bench_memory_and_the_ceilings_full_stack_row_are_commands() -> None:
    runner = CliRunner()
    memory_help = runner.invoke(main, ["bench", "memory", "--help"])
    assert memory_help.exit_code == 0
    assert "--links" in memory_help.output
    ceiling_help = runner.invoke(main, ["bench", "ceiling", "--help"])
    assert "--full-stack / --no-full-stack" in ceiling_help.output
    redirect_help = runner.invoke(main, ["bench", "redirect", "--help"])
    assert "--ceiling-full-stack" in redirect_help.output


def test_ratios_are_not_judged_when_the_bare_app_was_not_the_bottleneck() -> None:
    rounds = _ceiling_rounds([10_000] * 3)
    for r in rounds["bare"]:
        r["server_cpu"] = 0.6  # wrk had its core, the bare app did not get the other
    result = ceiling.summarise(ceiling.Config(), "wrk", rounds, {})
    result["full_stack_clicks"] = {"captured": 10.0, "stored": 10.0, "dropped": 0.0}
    found = {c.name: c for c in ceiling.checks(result, budgets.load()["ceiling"])}
    assert found["full stack / bare"].verdict == "not judged"
    assert "short of CPU" in found["full stack / bare"].note
    assert "CPU-bound, full stack / bare" in ceiling.render(result)
