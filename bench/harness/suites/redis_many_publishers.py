"""redis-many-publishers: 10 publishers burst into one group of 100 members, via Redis."""

from __future__ import annotations

from harness.model import Contestant, Context, Metric, Suite
from harness.suites.django_common import burst_metrics
from harness.suites.redis_common import (
    BAYOU_LIST,
    REDIS_PEERS,
    redis_contestants,
    redis_suite_unavailable,
    run_group_client_on_two,
)

__all__ = ["SUITE"]

_PUBLISHERS = 10
_MEMBERS = 100


def _messages(ctx: Context) -> int:
    return 200 if ctx.quick else 500


def _measure(ctx: Context, contestant: Contestant, case: str) -> dict[str, float | None]:
    run = run_group_client_on_two(
        ctx,
        contestant,
        ["many", "--members", str(_MEMBERS), "--publishers", str(_PUBLISHERS),
         "--messages", str(_messages(ctx))],
        timeout=150,
    )  # fmt: skip
    metrics = burst_metrics(run.done, run.server_cpu)
    delivered = run.done["delivered"]
    metrics["redis_cpu_us"] = run.redis_cpu / delivered * 1e6 if delivered else None
    return metrics


SUITE = Suite(
    name="redis-many-publishers",
    title="Many publishers → one group of 100 over Redis (2 server processes)",
    method=(
        "Private `redis-server` and two server processes per measurement, layers and "
        "pinning as in redis-broadcast. 100 members join one group (50 per process); 10 "
        "publisher connections (5 per process) each send 500 messages (quick: 200) back to "
        "back, as fast as their connection accepts them; each publisher's consumer calls "
        "`group_send` per message. Expected deliveries = 10 x messages x 100 (500,000; "
        "quick: 200,000). The client waits until all arrived or 2 s pass without a "
        "delivery (60 s cap); what is missing then was dropped (default capacity 100 per "
        "channel, expiry 60 s). deliveries/s = delivered ÷ time from the first publish to "
        "the last delivery. Server CPU µs/delivery = utime+stime of both server processes "
        "during the run ÷ deliveries; Redis CPU likewise."
    ),
    metrics=[
        Metric("deliveries_per_s", "deliveries/s", True),
        Metric("delivered", "delivered", True, compare=False),
        Metric("expected", "expected", True, compare=False),
        Metric("dropped_pct", "dropped %", False, "{:.2f}", compare=False),
        Metric("p99_ms", "p99 ms", False, "{:.1f}"),
        Metric("cpu_us", "server CPU µs/delivery", False, "{:.1f}"),
        Metric("redis_cpu_us", "Redis CPU µs/delivery", False, "{:.2f}"),
        Metric("errors", "errors", False, compare=False),
    ],
    headline="deliveries_per_s",
    case_label="publishers x msgs → members",
    cases=lambda ctx: [f"{_PUBLISHERS} x {_messages(ctx)} → {_MEMBERS}"],
    contestants=redis_contestants,
    run=_measure,
    subject=BAYOU_LIST,
    peers=REDIS_PEERS,
    available=redis_suite_unavailable,
)
