"""bench/flood.py's arithmetic (no I/O): CPU per request and the phase rows."""

from __future__ import annotations

import math

from bench.flood import Phase, _row


def test_edge_cpu_per_request_counts_visits_and_scan_answers() -> None:
    # Given a phase of 1,000 visits and 3,000 scan answers over which the edge used
    # 0.2 cores for 10 s
    phase = Phase(
        latencies=[0.001] * 1000,
        scan_statuses={404: 3000},
        cpu={"seconds": 10.0, "ours_cores": {"edge": 0.2}},
    )

    # Then each request cost 2 s / 4,000 = 500 us
    assert phase.edge_us_per_request() == 500.0


def test_without_cpu_figures_nothing_is_claimed() -> None:
    assert Phase(latencies=[0.001]).edge_us_per_request() is None
    assert Phase(cpu={"seconds": 1.0, "ours_cores": {"edge": 0.1}}).edge_us_per_request() is None


def test_a_row_shows_percentiles_in_ms_and_the_scan_answers() -> None:
    phase = Phase(latencies=[n / 1000 for n in range(1, 101)], scan_statuses={503: 2, 404: 5})
    p50, p99, top, visits, scan = _row(phase)
    assert (p50, p99, top, visits) == (50.0, 99.0, 100.0, 100)
    assert scan == "5 x 404, 2 x 503"
    assert math.isnan(_row(Phase())[0])  # type: ignore[arg-type]
