"""`ricochet bench`: the benchmarks in bench/, judged against bench/budgets.toml.

Each command starts what it needs on embedded servers (or uses a running system given by
--dev-json or URLs), prints a table and the budget checks, writes JSON to bench/results/
and exits 1 when a budget is missed (2: it could not run). The bench code lives in the
repository's bench/ folder, not in the installed package, and is imported only when a
bench runs, so the other commands never pay for locust.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[1]
_PROFILES = click.Choice(["full", "smoke"])


def _need_bench() -> None:
    """Make bench/ importable, or stop with what to install."""
    if not (ROOT / "bench" / "budgets.toml").exists():
        click.echo(
            "ricochet bench: bench/ not found; run it from a checkout of the repository",
            err=True,
        )
        sys.exit(2)
    missing = [m for m in ("locust", "psutil") if importlib.util.find_spec(m) is None]
    if missing:
        click.echo(
            f"ricochet bench: {', '.join(missing)} missing; install the dev extras "
            "(pip install -e '.[dev]', which ./dev does)",
            err=True,
        )
        sys.exit(2)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _settings(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.startswith("RICOCHET_"):
            raise click.BadParameter(f"{value!r}: expected RICOCHET_NAME=VALUE", param_hint="--set")
        out[name] = setting
    return out


def _target(
    dev_json: Path | None, edge_url: str | None, control_url: str | None, api_key: str | None
) -> Any:
    from bench.stack import Target

    if dev_json is not None:
        return Target.from_dev_json(dev_json)
    if edge_url is None and control_url is None:
        return None
    if not (edge_url and control_url and api_key):
        raise click.UsageError("--edge-url, --control-url and --api-key go together")
    return Target(edge_url=edge_url, control_url=control_url, api_key=api_key)


_profile_option = click.option(
    "--profile",
    type=_PROFILES,
    default="full",
    show_default=True,
    help="Budgets: full (design.md) or smoke (loose bounds for CI).",
)
_results_option = click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / "bench" / "results",
    help="Where the JSON result goes [bench/results].",
)


def _common(kw: dict[str, Any], *, urls: bool = True) -> dict[str, Any]:
    """The Config fields every bench with `target_options` shares."""
    return {
        "profile": kw["profile"],
        "settings": _settings(kw["settings"]),
        "target": _target(
            kw["dev_json"],
            kw["edge_url"] if urls else None,
            kw["control_url"] if urls else None,
            kw["api_key"] if urls else None,
        ),
        "results_dir": kw["results_dir"],
    }


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where to run: a stack of the bench's own (default) or a running one."""
    options = [
        click.option(
            "--dev-json",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Use the system this dev.json describes (e.g. a running `ricochet up`) "
            "instead of starting one.",
        ),
        click.option("--edge-url", help="Use this running edge (with --control-url, --api-key)."),
        click.option("--control-url", help="The running control plane to seed links through."),
        click.option("--api-key", envvar="RICOCHET_BENCH_API_KEY", help="[RICOCHET_BENCH_API_KEY]"),
        click.option(
            "--set",
            "settings",
            multiple=True,
            metavar="RICOCHET_NAME=VALUE",
            help="A setting for the bench's own stack (repeatable), e.g. "
            "RICOCHET_CAPTURE_FLUSH_MS=20.",
        ),
        _profile_option,
        _results_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def bench() -> None:
    """Benchmarks against the performance budget (needs the dev extras: locust)."""


@bench.command("redirect")
@click.option("--rate", type=click.FloatRange(min=1), help="Visits/s, fixed [budget: 2,000].")
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds measured (fixed rate).",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds of load before measuring.",
)
@click.option(
    "--shape",
    type=click.Choice(["fixed", "ramp"]),
    default="fixed",
    show_default=True,
    help="A fixed rate, or a step ramp to find the knee.",
)
@click.option(
    "--ramp-start",
    type=click.FloatRange(min=1),
    default=500.0,
    show_default=True,
    help="Ramp: visits/s of the first step.",
)
@click.option(
    "--ramp-step",
    type=click.FloatRange(min=0),
    default=500.0,
    show_default=True,
    help="Ramp: visits/s added at each step.",
)
@click.option(
    "--ramp-steps",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Ramp: number of steps.",
)
@click.option(
    "--step-seconds",
    type=click.FloatRange(min=2),
    default=10.0,
    show_default=True,
    help="Ramp: seconds each step lasts.",
)
@click.option(
    "--links",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    help="Links seeded and visited.",
)
@click.option(
    "--zipf",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Popularity skew s: rank r is visited in proportion to 1/r^s.",
)
@click.option(
    "--unknown",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Share of visits to slugs that do not exist.",
)
@click.option(
    "--qr",
    type=click.FloatRange(0, 1),
    default=0.10,
    show_default=True,
    help="Share of QR scans (?qr=1).",
)
@click.option(
    "--bots",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of crawlers and link expanders.",
)
@click.option(
    "--per-user-rate",
    type=click.FloatRange(min=0.1),
    default=50.0,
    show_default=True,
    help="Visits/s of each simulated user.",
)
@click.option(
    "--locust-processes",
    type=click.IntRange(0),
    default=0,
    help="Load generator processes [one per 1,000 req/s].",
)
@click.option(
    "--edge-workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Granian workers of the edge (and of the bare app it is compared with).",
)
@click.option(
    "--integrators",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="API requests/s from integrators alongside the visitors.",
)
@click.option(
    "--ceiling/--no-ceiling",
    default=True,
    show_default=True,
    help="Measure the edge against a bare ASGI 302 first.",
)
@click.option(
    "--ceiling-tool",
    type=click.Choice(["auto", "wrk", "oha", "locust"]),
    default="auto",
    show_default=True,
    help="auto: wrk, else oha, else locust.",
)
@click.option("--ceiling-rounds", type=click.IntRange(1), default=3, show_default=True)
@click.option("--ceiling-seconds", type=click.FloatRange(min=1), default=5.0, show_default=True)
@click.option(
    "--connections",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Connections of the ceiling's generator.",
)
@click.option(
    "--ceiling-full-stack/--no-ceiling-full-stack",
    default=False,
    show_default=True,
    help="Add the ceiling's full-stack row (a second stack of its own; slower).",
)
@click.option(
    "--floor/--no-floor",
    default=True,
    show_default=True,
    help="Also time a bare ASGI 302 with the same harness and rate.",
)
@target_options
def bench_redirect(**kw: Any) -> None:
    """Visitors at a fixed rate against the edge, full stack running: p50/p95/p99,
    throughput, errors, next to ceilings measured in the same run."""
    _need_bench()
    from bench import ceiling, redirect

    cfg = redirect.Config(
        rate=kw["rate"],
        duration_s=kw["duration"],
        warmup_s=kw["warmup"],
        shape=kw["shape"],
        ramp_start=kw["ramp_start"],
        ramp_step=kw["ramp_step"],
        ramp_steps=kw["ramp_steps"],
        step_s=kw["step_seconds"],
        links=kw["links"],
        mix=redirect.Mix(kw["zipf"], kw["unknown"], kw["qr"], kw["bots"]),
        per_user_rate=kw["per_user_rate"],
        locust_processes=kw["locust_processes"],
        edge_workers=kw["edge_workers"],
        integrators=kw["integrators"],
        with_ceiling=kw["ceiling"],
        ceiling_cfg=ceiling.Config(
            rounds=kw["ceiling_rounds"],
            seconds=kw["ceiling_seconds"],
            connections=kw["connections"],
            tool=kw["ceiling_tool"],
            full_stack=kw["ceiling_full_stack"],
        ),
        with_floor=kw["floor"],
        **_common(kw),
    )
    sys.exit(redirect.run(cfg, click.echo))


@bench.command("ceiling")
@click.option(
    "--tool",
    type=click.Choice(["auto", "wrk", "oha", "locust"]),
    default="auto",
    show_default=True,
    help="auto: wrk, else oha, else locust.",
)
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=1), default=8.0, show_default=True)
@click.option("--connections", type=click.IntRange(1), default=64, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Granian workers of each server.",
)
@click.option(
    "--full-stack/--no-full-stack",
    default=True,
    show_default=True,
    help="Also saturate the edge of a whole `ricochet up` (ingest storing clicks).",
)
@_profile_option
@_results_option
def bench_ceiling(
    tool: str,
    rounds: int,
    seconds: float,
    connections: int,
    workers: int,
    full_stack: bool,
    profile: str,
    results_dir: Path,
) -> None:
    """The edge (cache-hot, capture on and off; and with the whole stack running) against a
    bare ASGI 302, as ratios."""
    _need_bench()
    from bench import budgets, ceiling

    cfg = ceiling.Config(rounds, seconds, connections, workers, tool, full_stack=full_stack)
    sys.exit(ceiling.measure(cfg, budgets.load(profile)["ceiling"], results_dir))


@bench.command("memory")
@click.option(
    "--links",
    type=click.IntRange(1),
    help="Links projected and visited [budget: 100,000].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Connections visiting the links.",
)
@_profile_option
@_results_option
def bench_memory(links: int | None, concurrency: int, profile: str, results_dir: Path) -> None:
    """RSS of one real Granian edge worker with every link of the projection cached."""
    _need_bench()
    from bench import memory

    cfg = memory.Config(
        links=links, concurrency=concurrency, profile=profile, results_dir=results_dir
    )
    sys.exit(memory.run(cfg, click.echo))


@bench.command("flood")
@click.option(
    "--slugs",
    type=click.IntRange(1),
    default=20_000,
    show_default=True,
    help="Distinct unknown slugs in the scan.",
)
@click.option(
    "--hosts",
    type=click.IntRange(0),
    default=2_000,
    show_default=True,
    help="Random unknown Host names in the scan.",
)
@click.option(
    "--flood-rate",
    type=click.FloatRange(min=1),
    default=2000.0,
    show_default=True,
    help="Scan requests a second.",
)
@click.option(
    "--visit-rate",
    type=click.FloatRange(min=1),
    default=400.0,
    show_default=True,
    help="Visitors' requests a second to known links, throughout.",
)
@target_options
def bench_flood(**kw: Any) -> None:
    """A scan of unknown slugs and hosts while visitors follow links, then FLUSHALL."""
    _need_bench()
    from bench import flood

    if kw["edge_url"] or kw["control_url"]:
        raise click.UsageError("the flood bench needs --dev-json (it flushes that Redis)")
    cfg = flood.Config(
        slugs=kw["slugs"],
        hosts=kw["hosts"],
        flood_rate=kw["flood_rate"],
        visit_rate=kw["visit_rate"],
        **_common(kw, urls=False),
    )
    sys.exit(flood.run(cfg, click.echo))


@bench.command("ingest")
@click.option(
    "--clicks",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="Backlog for the throughput phase.",
)
@click.option(
    "--lag-rate", type=click.FloatRange(min=1), help="Clicks/s for the lag phase [budget: 2,000]."
)
@click.option("--lag-seconds", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option(
    "--flush-ms",
    type=click.FloatRange(min=1),
    default=50.0,
    show_default=True,
    help="The edge flush interval imitated in the lag phase.",
)
@target_options
def bench_ingest(**kw: Any) -> None:
    """Click ingest into PostgreSQL: lag at a fixed rate, throughput from a backlog."""
    _need_bench()
    from bench import ingest

    if kw["edge_url"] or kw["control_url"]:
        raise click.UsageError("the ingest bench needs --dev-json (database and Redis URLs)")
    cfg = ingest.Config(
        clicks=kw["clicks"],
        lag_rate=kw["lag_rate"],
        lag_seconds=kw["lag_seconds"],
        flush_ms=kw["flush_ms"],
        **_common(kw, urls=False),
    )
    sys.exit(ingest.run(cfg, click.echo))


@bench.command("bulk")
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True)
@click.option("--size", type=click.IntRange(1, 1000), help="Links a call [budget: 1,000].")
@target_options
def bench_bulk(**kw: Any) -> None:
    """Bulk create: one call of 1,000 links, timed over HTTP (median of the rounds)."""
    _need_bench()
    from bench import bulk_create

    cfg = bulk_create.Config(
        rounds=kw["rounds"],
        size=kw["size"],
        **_common(kw),
    )
    sys.exit(bulk_create.run(cfg, click.echo))


@bench.command("webhooks")
@click.option(
    "--events", type=click.IntRange(1), default=5000, show_default=True, help="Events in the burst."
)
@click.option(
    "--paced-rate",
    type=click.FloatRange(min=1),
    help="Events/s while timing first attempts [half the backlog's rate, at most 100].",
)
@click.option("--paced-seconds", type=click.FloatRange(min=1), default=20.0, show_default=True)
@target_options
def bench_webhooks(**kw: Any) -> None:
    """Webhook deliveries/s to a fast local receiver; event -> first attempt latency."""
    _need_bench()
    from bench import webhooks

    cfg = webhooks.Config(
        events=kw["events"],
        paced_rate=kw["paced_rate"],
        paced_seconds=kw["paced_seconds"],
        **_common(kw),
    )
    sys.exit(webhooks.run(cfg, click.echo))


@bench.command("api")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=50.0,
    show_default=True,
    help="API requests/s, fixed.",
)
@click.option("--duration", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--warmup", type=click.FloatRange(min=0), default=5.0, show_default=True)
@click.option(
    "--links",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Links seeded first, for reads and analytics.",
)
@target_options
def bench_api(**kw: Any) -> None:
    """Integrators on the management API: single and bulk creates, reads, analytics."""
    _need_bench()
    from bench import api

    cfg = api.Config(
        rate=kw["rate"],
        duration_s=kw["duration"],
        warmup_s=kw["warmup"],
        links=kw["links"],
        **_common(kw),
    )
    sys.exit(api.run(cfg, click.echo))


@bench.command("all")
@_profile_option
@_results_option
def bench_all(profile: str, results_dir: Path) -> None:
    """Every bench with its defaults, one after another (each on a stack of its own),
    then one line per bench: what the budget says about this machine."""
    _need_bench()
    from bench import api, bulk_create, ceiling, ingest, memory, redirect, webhooks

    runs: list[tuple[str, Callable[[], int]]] = [
        (
            "redirect",
            lambda: redirect.run(
                redirect.Config(
                    profile=profile,
                    results_dir=results_dir,
                    ceiling_cfg=ceiling.Config(full_stack=True),  # the full-stack row too
                ),
                click.echo,
            ),
        ),
        (
            "ingest",
            lambda: ingest.run(ingest.Config(profile=profile, results_dir=results_dir), click.echo),
        ),
        (
            "bulk",
            lambda: bulk_create.run(
                bulk_create.Config(profile=profile, results_dir=results_dir), click.echo
            ),
        ),
        (
            "webhooks",
            lambda: webhooks.run(
                webhooks.Config(profile=profile, results_dir=results_dir), click.echo
            ),
        ),
        ("api", lambda: api.run(api.Config(profile=profile, results_dir=results_dir), click.echo)),
        (
            "memory",
            lambda: memory.run(memory.Config(profile=profile, results_dir=results_dir), click.echo),
        ),
    ]
    codes = {}
    for name, go in runs:
        click.echo(f"\n=== ricochet bench {name} ===")
        try:
            codes[name] = go()
        except Exception as exc:  # one broken bench must not hide the others' results
            click.echo(f"ricochet bench {name} could not run: {exc}", err=True)
            codes[name] = 2
    click.echo("\n=== summary ===")
    words = {0: "every budget met", 1: "BUDGET MISSED", 2: "COULD NOT RUN"}
    for name, code in codes.items():
        click.echo(f"  {name:<9} {words.get(code, code)}")
    sys.exit(max(codes.values()))
