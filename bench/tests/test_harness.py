"""Offline checks of the harness: parsing, statistics, report rendering. No servers, no load.

Run with: .venv/bin/pytest bench/tests -q
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from clients.common import Histogram
from harness import report
from harness.model import Contestant, Context, Metric, Suite, SuiteResult, Target
from harness.procs import CpuPlan, RunningServer
from harness.stats import median, merge_histograms, percentile_ns
from harness.suites.http import parse_wrk

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:1234/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.39ms  216.03us   4.82ms   86.21%
    Req/Sec    36.36k     1.53k   38.87k    80.00%
  Latency Distribution
     50%    1.35ms
     75%    1.45ms
     90%    1.59ms
     99%  850.00us
  108542 requests in 3.00s, 13.46MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  36179.24
Transfer/sec:      4.49MB
"""


def test_parse_wrk_reads_rate_p99_and_every_error_kind() -> None:
    """Requests/sec and the 99% line are read (us converted to ms); socket errors and
    non-2xx responses add up into ``errors``."""
    result = parse_wrk(WRK_OUTPUT)
    assert result["rps"] == pytest.approx(36179.24)
    assert result["p99_ms"] == pytest.approx(0.85)
    assert result["requests"] == 108542
    assert result["errors"] == 7


def test_parse_wrk_rejects_output_without_a_rate() -> None:
    """Output that lacks the figures (wrk failed to connect) is an error, not a zero."""
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_histogram_percentiles_are_within_bucket_resolution() -> None:
    """Percentiles computed from the clients' 2 % log buckets, merged over two client
    processes, land within 2 % of the exact values."""
    values = [1_000 * (i + 1) for i in range(1000)]  # 1 µs .. 1 ms
    a, b = Histogram(), Histogram()
    for i, v in enumerate(values):
        (a if i % 2 else b).add(v)
    merged = merge_histograms([a.to_json(), b.to_json()])
    assert sum(merged.values()) == 1000
    for fraction, exact in ((0.5, 500_000), (0.99, 990_000)):
        got = percentile_ns(merged, fraction)
        assert got is not None
        assert math.isclose(got, exact, rel_tol=0.025)


def test_percentile_of_an_empty_histogram_is_none_and_median_skips_missing() -> None:
    """No samples give no percentile; medians ignore missing values."""
    assert percentile_ns({}, 0.99) is None
    assert median([None, 3.0, 1.0, float("nan"), 2.0]) == 2.0
    assert median([None]) is None


def _no_measure(
    ctx: Context, srv: RunningServer, contestant: Contestant, case: str
) -> dict[str, float | None]:
    return {}


def _fake_result(quick: bool) -> SuiteResult:
    suite = Suite(
        name="fake",
        title="Fake",
        method="Method text.",
        metrics=[Metric("rate", "rate", True), Metric("cost", "cost", False, "{:.1f}")],
        headline="rate",
        case_label="conns",
        cases=lambda ctx: ["1"],
        contestants=lambda ctx: [],
        measure=_no_measure,
        targets=[Target("rate ≥ 2x uvicorn", "rate", "bayou", "uvicorn", ">=", 2.0)],
    )
    result = SuiteResult(
        suite=suite,
        quick=quick,
        rounds=3,
        started="2026-01-02 03:04 UTC",
        contestants=[Contestant("bayou", "bayou", "x:y"), Contestant("uvicorn", "uvicorn", "x:y")],
        cases=["1"],
    )
    result.samples[("1", "bayou")] = [{"rate": r, "cost": 1.0} for r in (300.0, 100.0, 200.0)]
    result.samples[("1", "uvicorn")] = [{"rate": r, "cost": 4.0} for r in (90.0, 100.0, 110.0)]
    return result


def test_report_shows_medians_ratios_rounds_and_target_verdict() -> None:
    """The rendered report carries the median (200), the ratio to uvicorn (2.00x), every
    round's value, and a 'met' verdict for a 2x target."""
    text = report.render(_fake_result(quick=False))
    row = next(line for line in text.splitlines() if line.startswith("| 1 | **bayou**"))
    assert "| 200 |" in row
    assert "2.00x" in row
    assert "300 / 100 / 200" in row
    assert "| rate ≥ 2x uvicorn | conns 1: 2.00x | met |" in text
    assert "| 1 | cost | 0.25x | lower |" in text


def test_result_files_prefer_full_runs_over_quick_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docs pick the newest full run of a suite, and a quick run only when no full
    run exists; the generated block is replaced, the text around it kept."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "2026-01-01-http.md").write_text("# http: full old\n")
    (results / "2026-01-05-http-quick.md").write_text("# http: quick new\n")
    (results / "2026-01-03-ws-echo-quick.md").write_text("# ws-echo: quick\n")
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"intro\n{report._BEGIN}\nold\n{report._END}\noutro\n")
    monkeypatch.setattr(report, "RESULTS", results)
    monkeypatch.setattr(report, "DOCS", docs)
    monkeypatch.setattr(report, "REPO", tmp_path)
    report.update_docs(["http", "ws-echo"])
    text = docs.read_text()
    assert "\n### http: full old" in text
    assert "quick new" not in text
    assert "\n### ws-echo: quick" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "\nold\n" not in text


def test_context_is_constructible_without_wrk() -> None:
    """Suites other than http run without wrk (Context.wrk defaults to None)."""
    ctx = Context(
        quick=True, rounds=1, cpus=CpuPlan.default(), python="python", client_procs=1, log=print
    )
    assert ctx.wrk is None
