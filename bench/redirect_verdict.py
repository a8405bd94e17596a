"""What a `ricochet bench redirect` run says: its budget checks, its table, and in words
what the floor, the generator's lateness and the ramp say about the measurement itself.

CPU per unit of work is read from the measured window: the cores a part of the stack used
(report.CpuWatch) over what it did per second in that window, requests for the edge and
the bare floor (the same harness at the same rate), clicks captured by the edge for ingest
+ PostgreSQL (at a steady rate ingest stores what the edge captures)."""

from __future__ import annotations

from typing import Any

from bench import api, budgets, ceiling, report
from bench.budgets import Check


def costs(result: dict[str, Any]) -> dict[str, float | None]:
    """CPU per request (edge, bare floor) and per click (ingest + PostgreSQL), in µs;
    None for what this run could not measure (no floor, or a stack not of our own)."""
    cores = result.get("cpu", {}).get("ours_cores", {})
    overall = result.get("overall")
    rate = overall["rate"] if overall else 0.0
    floor = result.get("floor") or {}
    seconds = result.get("cpu", {}).get("seconds", 0.0)
    window = result.get("window_metrics", {})
    clicks_per_s = window.get("clicks_captured", 0.0) / seconds if seconds else 0.0
    pipeline = cores.get("ingest", 0.0) + cores.get("postgres", 0.0)
    edge = cores.get("edge")
    out: dict[str, float | None] = {
        "edge_us_per_request": edge / rate * 1e6 if edge and rate else None,
        "floor_us_per_request": floor.get("cpu_us_per_request"),
        "clicks_per_s": clicks_per_s,
        "pipeline_cores": pipeline if "ingest" in cores else None,
        "pipeline_us_per_click": (
            pipeline / clicks_per_s * 1e6 if "ingest" in cores and clicks_per_s else None
        ),
    }
    e, f = out["edge_us_per_request"], out["floor_us_per_request"]
    out["edge_vs_floor"] = e / f if e and f else None
    return out


def checks(shape: str, budget: budgets.Budgets, rate: float, result: dict[str, Any]) -> list[Check]:
    b = budget["redirect"]
    cost = result.get("cpu_costs") or costs(result)
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
    if "clicks" in result:  # a stack whose database we can read
        missing = result["clicks"]["captured"] - result["clicks"]["stored"]
        found.append(Check("clicks captured, not stored", missing, b["clicks_dropped"], "<="))
    fallbacks = result["edge_metrics"].get("control_fallbacks")
    found.append(Check("control-plane look-ups", fallbacks, b["control_fallbacks"], "<="))
    if shape == "fixed":
        has_floor = cost["floor_us_per_request"] is not None
        found.append(
            Check(
                "edge CPU per request / bare floor's",
                cost["edge_vs_floor"],
                b["edge_cpu_vs_bare"],
                "<=",
                "x",
                judged=has_floor,
                note="" if has_floor else "no floor measured (--no-floor)",
            )
        )
        ours = cost["pipeline_cores"] is not None
        found.append(
            Check(
                "ingest + PostgreSQL CPU per click",
                cost["pipeline_us_per_click"],
                b["pipeline_us_per_click"],
                "<=",
                " us",
                judged=ours,
                note="" if ours else "not a stack of our own: its processes are not known",
            )
        )
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
        window = result.get("window_metrics", {})
        if window.get("not_found"):
            parts.append(
                f"  {window.get('control_fallbacks', 0) / window['not_found']:.2f} control-plane "
                f"look-ups per unknown-slug request ({window['not_found']:,.0f} answered 404 "
                "in the measured window; 0 expected while the projection is complete)"
            )
    if "clicks" in result:
        clicks = result["clicks"]
        parts.append(
            f"clicks: {clicks['captured']:,.0f} captured by the edge, {clicks['stored']:,.0f} "
            "stored in PostgreSQL after the run"
        )
    cost = result.get("cpu_costs") or {}
    if cost.get("edge_us_per_request") is not None:
        line = f"CPU per request: edge {cost['edge_us_per_request']:,.0f} us"
        if cost.get("floor_us_per_request") is not None:
            line += (
                f", bare 302 floor {cost['floor_us_per_request']:,.0f} us at the same rate "
                f"({cost['edge_vs_floor']:.2f}x)"
            )
        parts.append(line)
    if cost.get("pipeline_us_per_click") is not None:
        parts.append(
            f"CPU per click: ingest + PostgreSQL {cost['pipeline_us_per_click']:,.0f} us "
            f"({cost['pipeline_cores']:.2f} cores for {cost['clicks_per_s']:,.0f} clicks/s "
            "captured in the measured window)"
        )
    return "\n".join(parts)


def reading(result: dict[str, Any], b: dict[str, float]) -> list[str]:
    """What the numbers say about the measurement itself, in words."""
    lines = []
    overall = result.get("overall")
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
