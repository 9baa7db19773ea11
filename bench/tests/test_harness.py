"""Offline checks of the harness: parsing, statistics, report rendering. No servers, no load.

Run with: .venv/bin/pytest bench/tests -q
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from clients.common import Histogram
from harness import report
from harness.model import Contestant, Context, Metric, Suite, SuiteResult, Target
from harness.procs import CpuPlan, RunningServer
from harness.redisserver import parse_commandstats
from harness.stats import median, merge_histograms, percentile_ns
from harness.suites import REDIS_SUITES, SUITES, redis_broadcast
from harness.suites.django_common import burst_metrics
from harness.suites.http import parse_wrk
from harness.suites.redis_common import BAYOU_LIST, BAYOU_PUBSUB, CHANNELS_LIST, CHANNELS_PUBSUB

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


COMMANDSTATS = (
    "# Commandstats\r\n"
    "cmdstat_evalsha:calls=100,usec=5000,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n"
    "cmdstat_rpush:calls=200,usec=300,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n"
    "cmdstat_config|resetstat:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"
)


def test_parse_commandstats_reads_calls_per_command() -> None:
    """Every ``cmdstat_<name>`` line yields its ``calls`` count, subcommands included;
    the section header is ignored."""
    assert parse_commandstats(COMMANDSTATS) == {
        "evalsha": 100,
        "rpush": 200,
        "config|resetstat": 1,
    }


def test_redis_suites_are_registered_and_start_their_own_processes() -> None:
    """The three Redis suites are selectable by name, use ``run`` (own servers + Redis)
    instead of ``measure``, compare bayou's list layer against both channels_redis
    layers, and every target names labels of the four contestants."""
    labels = {BAYOU_LIST, BAYOU_PUBSUB, CHANNELS_LIST, CHANNELS_PUBSUB}
    assert [s.name for s in REDIS_SUITES] == [
        "redis-groupsend-cost",
        "redis-broadcast",
        "redis-many-publishers",
    ]
    for suite in REDIS_SUITES:
        assert SUITES[suite.name] is suite
        assert suite.run is not None and suite.measure is None
        assert suite.subject == BAYOU_LIST
        assert set(suite.peers) == {CHANNELS_LIST, CHANNELS_PUBSUB}
        for target in suite.targets:
            assert {target.label, target.peer} <= labels
    metric_keys = {m.key for m in redis_broadcast.SUITE.metrics}
    assert {t.metric for t in redis_broadcast.SUITE.targets} == {"deliveries_per_s", "lat_p99_ms"}
    assert {t.metric for t in redis_broadcast.SUITE.targets} <= metric_keys


def _step(
    rate: float, delivered: int, expected: int, passed: bool, **extra: int | bool
) -> dict[str, Any]:
    return {
        "rate": rate,
        "delivered": delivered,
        "expected": expected,
        "passed": passed,
        "achieved_per_s": float(delivered),
        **extra,
    }


def test_redis_broadcast_summary_separates_late_from_dropped() -> None:
    """The best passing rate gives lossless deliveries/s; the first failed step reports
    in-time vs eventual delivery; the first step whose messages never all arrived is
    where the layer starts dropping (not one whose deliveries were still arriving);
    CPU is divided by every delivery counted."""
    done: dict[str, Any] = {
        "members": 1000,
        "best_rate": 10.0,
        "failed": 0,
        "disconnects": 0,
        "latency": {"delivered": 3000, "expected": 3000, "hist": {"400": 3000}},
        "ladder": [
            _step(5, 5000, 5000, True),
            _step(10, 10000, 10000, True),
            _step(15, 9000, 15000, False, eventually_delivered=15000),  # late only
            _step(20, 8000, 20000, False, eventually_delivered=19000),  # lost 1000
        ],
    }
    # Still arriving when the client stopped waiting: far behind, not known to be lost.
    still_step = _step(15, 9000, 15000, False, eventually_delivered=14000, still_arriving=True)
    still = {**done, "ladder": [*done["ladder"][:2], still_step]}
    assert redis_broadcast.summarize(still, 0.0, 0.0)["drop_rate"] is None
    m = redis_broadcast.summarize(done, server_cpu=0.5, redis_cpu=0.01)
    assert m["deliveries_per_s"] == 10_000
    assert m["failed_rate"] == 15
    assert m["failed_in_time_pct"] == pytest.approx(60.0)
    assert m["failed_eventual_pct"] == pytest.approx(100.0)
    assert m["drop_rate"] == 20
    assert m["top_rate"] == 20
    assert m["peak_lossless"] == 10_000
    assert m["cpu_us"] == pytest.approx(0.5 / 52_000 * 1e6)
    assert m["errors"] == 0


def test_redis_broadcast_summary_without_any_failure_has_no_drop_rate() -> None:
    """A ladder that passes every step reports its top rate, no failed step and no drops."""
    done = {
        "members": 1000,
        "best_rate": 5.0,
        "failed": 0,
        "disconnects": 0,
        "latency": {"delivered": 2990, "expected": 3000, "hist": {}},
        "ladder": [_step(5, 5000, 5000, True)],
    }
    m = redis_broadcast.summarize(done, server_cpu=0.0, redis_cpu=0.0)
    assert m["failed_rate"] is None and m["drop_rate"] is None
    assert m["top_rate"] == 5
    assert m["lat_p99_ms"] is None
    assert m["errors"] == 10  # latency-phase deliveries that never came


def test_report_of_a_self_starting_suite_does_not_claim_a_single_server() -> None:
    """Suites with ``run`` get the "fresh processes" sentence, not "a fresh server process"."""
    result = _fake_result(quick=True)
    result.suite.run = lambda ctx, c, case: {}
    text = report.render(result)
    assert "starts fresh processes" in text
    assert "a fresh server process" not in text


def test_burst_metrics_rate_drops_and_cpu_per_delivery() -> None:
    """many-publishers metrics: deliveries/s over the client's seconds, the missing share
    as drops, server CPU divided by deliveries, failed opens and disconnects as errors;
    nothing delivered gives no per-delivery figures instead of a division by zero."""
    done: dict[str, Any] = {
        "hist": {"400": 10},
        "delivered": 900,
        "expected": 1000,
        "seconds": 3.0,
        "failed": 1,
        "disconnects": 2,
    }
    m = burst_metrics(done, server_cpu=0.09)
    assert m["deliveries_per_s"] == pytest.approx(300.0)
    assert m["dropped_pct"] == pytest.approx(10.0)
    assert m["cpu_us"] == pytest.approx(100.0)
    assert m["p99_ms"] == pytest.approx(percentile_ns({400: 10}, 0.99) / 1e6)  # type: ignore[operator]
    assert m["errors"] == 3
    empty = burst_metrics({**done, "hist": {}, "delivered": 0}, server_cpu=0.1)
    assert empty["cpu_us"] is None and empty["p99_ms"] is None
    assert empty["dropped_pct"] == pytest.approx(100.0)
