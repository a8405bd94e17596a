"""What a `ricochet bench redirect` run says: its budget checks, its table, and in words
what the floor, the generator's lateness and the ramp say about the measurement itself."""

from __future__ import annotations

from typing import Any

from bench import api, budgets, ceiling, report
from bench.budgets import Check


def checks(shape: str, budget: budgets.Budgets, rate: float, result: dict[str, Any]) -> list[Check]:
    b = budget["redirect"]
    found: list[Check] = []
    if shape == "fixed":
        overall = result["overall"]
        lat = overall["latency_ms"]
        short = overall["rate"] < rate * b["min_rate_fraction"]
        found += [
            Check(
                "achieved rate",
                overall["rate"],
                rate * b["min_rate_fraction"],
                ">=",
                " req/s",
                note="the generator or the machine could not offer the rate" if short else "",
            ),
            Check("p50 latency", lat["p50"], b["p50_ms"], "<=", " ms"),
            Check("p99 latency", lat["p99"], b["p99_ms"], "<=", " ms"),
            Check("errors", overall["errors"], b["errors"], "<="),
        ]
    else:
        errors = sum(step["errors"] for step in result["steps"])
        found.append(Check("errors (all steps)", errors, b["errors"], "<="))
    dropped = result["edge_metrics"].get("clicks_dropped")
    found.append(Check("clicks dropped (edge)", dropped, b["clicks_dropped"], "<="))
    if "ceiling" in result:
        found += ceiling.checks(result["ceiling"], budget["ceiling"])
    return found


def render(result: dict[str, Any]) -> str:
    parts = []
    if "ceiling" in result:
        parts.append(ceiling.render(result["ceiling"]))
        parts.append("")
    cfg = result["config"]
    if "overall" in result:
        head = (
            f"redirects at {result['target_rate']:,.0f} req/s fixed, "
            f"{result['measured_s']:.0f} s measured, {cfg['links']:,} links, "
            f"{cfg['edge_workers']} edge worker(s), {cfg['locust_processes']} locust process(es)"
        )
        rows = [report.stats_row(kind, s, result["overall"]) for kind, s in result["kinds"].items()]
        rows.append(report.stats_row("all", result["overall"], result["overall"]))
        if "floor" in result:
            rows.append(report.stats_row("floor: bare 302", result["floor"], None))
        parts.append(head)
        parts.append(report.table(["requests", *report.STATS_HEADERS], rows))
    if "steps" in result:
        parts.append("redirects, step ramp (each step after a short settle)")
        parts.append(
            report.table(
                [
                    "target req/s",
                    "req/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    "errors",
                    "late p99",
                ],
                [
                    [
                        f"{s['target_rate']:,.0f}",
                        s["rate"],
                        s["latency_ms"]["p50"],
                        s["latency_ms"]["p95"],
                        s["latency_ms"]["p99"],
                        s["latency_ms"]["max"],
                        s["errors"],
                        s["late_ms"]["p99"],
                    ]
                    for s in result["steps"]
                ],
            )
        )
    if "integrators" in result:
        parts.append("")
        parts.append("integrators alongside (management API)")
        parts.append(api.table(result["integrators"]))
    gen = ", ".join(f"{c:.0%}" for c in result.get("generator_cpu", []))
    parts.append(f"locust processes' CPU (of one core each): {gen}")
    metrics = result.get("edge_metrics", {})
    if metrics:
        hits, misses = metrics.get("cache_hits", 0), metrics.get("cache_misses", 0)
        parts.append(
            f"edge during the run: {metrics.get('redirects', 0):,.0f} redirects, "
            f"{metrics.get('not_found', 0):,.0f} not found, cache hit ratio "
            f"{hits / max(hits + misses, 1):.2%}, {metrics.get('control_fallbacks', 0):,.0f} "
            f"control-plane look-ups, {metrics.get('clicks_dropped', 0):,.0f} clicks dropped"
        )
    return "\n".join(parts)


def reading(result: dict[str, Any], b: dict[str, float]) -> list[str]:
    """What the numbers say about the measurement itself, in words."""
    lines = []
    edge_cores = result.get("cpu", {}).get("ours_cores", {}).get("edge")
    overall = result.get("overall")
    if overall and edge_cores:
        per = edge_cores / max(overall["rate"], 1) * 1e6
        result["edge_cpu_us_per_request"] = per
        line = f"the edge used {edge_cores:.2f} cores: {per:,.0f} us of CPU per request"
        if result.get("floor", {}).get("cpu_us_per_request"):
            line += (
                f" (the bare 302 at the same rate: {result['floor']['cpu_us_per_request']:,.0f} us)"
            )
        lines.append(line)
    floor = result.get("floor")
    if overall and floor:
        f50, f99 = floor["latency_ms"]["p50"], floor["latency_ms"]["p99"]
        e50, e99 = overall["latency_ms"]["p50"], overall["latency_ms"]["p99"]
        lines.append(
            f"floor: a bare 302 timed the same way at the same rate answers p50 {f50:.2f} / "
            f"p99 {f99:.2f} ms; the edge with its stack adds p50 {e50 - f50:+.2f} / "
            f"p99 {e99 - f99:+.2f} ms"
        )
        if f50 > b["p50_ms"] or f99 > b["p99_ms"]:
            lines.append(
                "  the floor itself is over the latency budget: this machine, as busy as it "
                "was, cannot confirm the budget; read the edge against the floor"
            )
    steps = result.get("steps")
    if steps:
        within = [
            s["target_rate"]
            for s in steps
            if s["rate"] >= s["target_rate"] * b["min_rate_fraction"]
            and s["latency_ms"]["p50"] <= b["p50_ms"]
            and s["latency_ms"]["p99"] <= b["p99_ms"]
            and not s["errors"]
        ]
        best = f"{max(within):,.0f} req/s" if within else "none"
        lines.append(f"highest step delivered within the latency budget: {best}")
    if overall and overall["late_ms"]["p99"] > b["p99_ms"]:
        lines.append(
            f"the generator sent 1 % of requests over {overall['late_ms']['p99']:.0f} ms late: "
            "it or the machine was saturated at times, and latencies include that"
        )
    return lines
