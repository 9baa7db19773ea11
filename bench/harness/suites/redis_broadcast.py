"""redis-broadcast: 1 publisher → 1000 WebSocket subscribers on 2 server processes, via Redis."""

from __future__ import annotations

from typing import Any

from harness.model import Contestant, Context, Metric, Suite, Target
from harness.suites.django_common import broadcast_common_metrics
from harness.suites.redis_common import (
    BAYOU_LIST,
    CHANNELS_LIST,
    CHANNELS_PUBSUB,
    REDIS_PEERS,
    redis_contestants,
    redis_suite_unavailable,
    run_group_client_on_two,
)

__all__ = ["SUITE", "summarize"]

# About 1.5x apart: Redis layers at 1000 members sit in the low tens of msg/s or
# below, where a coarse ladder could not resolve a 10-20x ratio.
_RATES_FULL = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000]
_RATES_QUICK = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500]
_MEMBERS = 1000


def _measure(ctx: Context, contestant: Contestant, case: str) -> dict[str, float | None]:
    members = int(case)
    rates = _RATES_QUICK if ctx.quick else _RATES_FULL
    latency_s, step_s, drain_s, overload = (3, 1.0, 5.0, 2) if ctx.quick else (10, 2.0, 20.0, 4)
    budget = latency_s + 15 + len(rates) * (step_s + 12) + (overload + 1) * drain_s
    run = run_group_client_on_two(
        ctx,
        contestant,
        ["broadcast", "--members", str(members), "--latency-seconds", str(latency_s),
         "--step-seconds", str(step_s), "--drain-seconds", str(drain_s),
         "--overload-steps", str(overload),
         "--rates", ",".join(str(r) for r in rates)],
        timeout=budget,
    )  # fmt: skip
    return summarize(run.done, run.server_cpu, run.redis_cpu)


def summarize(done: dict[str, Any], server_cpu: float, redis_cpu: float) -> dict[str, float | None]:
    """The suite's metrics from the broadcast client's DONE report and the CPU seconds."""
    ladder = done["ladder"]
    best = float(done["best_rate"])
    subscribers = int(done["members"])
    failed = next((s for s in ladder if not s["passed"]), None)
    # Lost for good: some never arrived, and none were still arriving when the client
    # stopped waiting (a step that was merely far behind is not counted as dropping).
    lossy = next(
        (
            s
            for s in ladder
            if s.get("eventually_delivered", s["delivered"]) < s["expected"]
            and not s.get("still_arriving", False)
        ),
        None,
    )
    eventually: int | None = None
    if failed is not None:
        eventually = int(failed.get("eventually_delivered", failed["delivered"]))
    delivered_total = done["latency"]["delivered"] + sum(
        s.get("eventually_delivered", s["delivered"]) for s in ladder
    )
    return {
        "deliveries_per_s": best * subscribers,
        "best_rate": best,
        "failed_rate": float(failed["rate"]) if failed else None,
        "failed_in_time_pct": (
            100.0 * failed["delivered"] / failed["expected"] if failed else None
        ),
        "failed_eventual_pct": (
            100.0 * eventually / failed["expected"] if failed and eventually is not None else None
        ),
        # The rate at which messages were lost for good (not merely late), if the
        # ladder found one; otherwise none was lost up to the highest rate tried.
        "drop_rate": float(lossy["rate"]) if lossy else None,
        "top_rate": float(ladder[-1]["rate"]) if ladder else None,
        "cpu_us": server_cpu / delivered_total * 1e6 if delivered_total else None,
        "redis_cpu_us": redis_cpu / delivered_total * 1e6 if delivered_total else None,
        **broadcast_common_metrics(done),
    }  # fmt: skip


SUITE = Suite(
    name="redis-broadcast",
    title="Group broadcast over Redis, 1 publisher → 1000 subscribers on 2 server processes",
    method=(
        "A private `redis-server` (no persistence, 127.0.0.1, free port) is started for every "
        "measurement, with two fresh server processes of the contestant on it: bayou's server "
        "with `bayou.layers.redis.RedisChannelLayer` (bayou-redis) or `RedisPubSubChannelLayer` "
        "(bayou-pubsub), or Channels on uvicorn with `channels_redis.core.RedisChannelLayer` "
        "(channels_redis) or `channels_redis.pubsub.RedisPubSubChannelLayer` "
        "(channels_redis-pubsub); layer CONFIG is `hosts` only, every other option default. "
        "Both server processes are pinned to the server CPU, Redis and the load client to the "
        "other. 1000 WebSocket subscribers join one group through a consumer's `connect()`, "
        "500 on each process; one publisher connection (on the first process) has its "
        "consumer call `group_send` per text message; each member consumer forwards the event. "
        "Latency: 1 msg/s for 10 s (quick: 3 s), publisher client send → member client "
        "receipt (one clock), p50/p99 over all deliveries. Rate ladder (the broadcast suite's "
        "rule): 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, ... msg/s, about 1.5x apart (quick: "
        "up to 500), 2 s per step (quick: 1 s); a step passes when every subscriber received "
        "every message and the last delivery came at most 1 s after the last publish; the "
        "ladder stops at the first failed step. Lossless deliveries/s = highest passing rate "
        "x subscribers. To find where a layer *starts dropping*, the ladder then goes on for "
        "up to 4 more steps (quick: 2); after every failed step the client waits up to 20 s "
        "(quick: 5 s) for late deliveries before the next step (*delivered % in time* vs "
        "*eventually* at the first failed step), and stops at the first step whose messages "
        "never all arrive: *drops from msg/s* (`-`: nothing lost up to *highest msg/s tried*, "
        "only late; a step whose deliveries were still arriving when that wait ran out also "
        "ends the ladder, without counting as a drop). Server CPU µs/delivery: utime+stime of "
        "both server processes over the whole run (latency phase + ladder) ÷ deliveries; "
        "Redis CPU likewise for redis-server."
    ),
    metrics=[
        Metric("deliveries_per_s", "lossless deliveries/s", True),
        Metric("best_rate", "lossless msg/s", True),
        Metric("lat_p50_ms", "p50 ms @1 msg/s", False, "{:.2f}"),
        Metric("lat_p99_ms", "p99 ms @1 msg/s", False, "{:.2f}"),
        Metric("failed_rate", "failed at msg/s", True, "{:,.0f}", compare=False),
        Metric("failed_in_time_pct", "delivered % in time", True, "{:.1f}", compare=False),
        Metric("failed_eventual_pct", "delivered % eventually", True, "{:.1f}", compare=False),
        Metric("drop_rate", "drops from msg/s", True, "{:,.0f}", compare=False),
        Metric("top_rate", "highest msg/s tried", True, "{:,.0f}", compare=False),
        Metric("peak_lossless", "peak lossless deliveries/s achieved", True),
        Metric("cpu_us", "server CPU µs/delivery", False, "{:.1f}"),
        Metric("redis_cpu_us", "Redis CPU µs/delivery", False, "{:.2f}"),
        Metric("errors", "errors", False, compare=False),
    ],
    headline="deliveries_per_s",
    case_label="subscribers",
    cases=lambda ctx: [str(_MEMBERS)],
    contestants=redis_contestants,
    run=_measure,
    targets=[
        Target(
            "bayou-redis lossless deliveries/s ≥ 20x channels_redis RedisChannelLayer",
            "deliveries_per_s",
            BAYOU_LIST,
            CHANNELS_LIST,
            ">=",
            20.0,
        ),
        Target(
            "bayou-redis lossless deliveries/s ≥ 10x channels_redis RedisPubSubChannelLayer",
            "deliveries_per_s",
            BAYOU_LIST,
            CHANNELS_PUBSUB,
            ">=",
            10.0,
        ),
        Target(
            "bayou-redis p99 @1 msg/s ≤ 1/10 of channels_redis RedisChannelLayer's",
            "lat_p99_ms",
            BAYOU_LIST,
            CHANNELS_LIST,
            "<=",
            0.1,
        ),
        Target(
            "bayou-redis p99 @1 msg/s ≤ 1/10 of channels_redis RedisPubSubChannelLayer's",
            "lat_p99_ms",
            BAYOU_LIST,
            CHANNELS_PUBSUB,
            "<=",
            0.1,
        ),
    ],
    subject=BAYOU_LIST,
    peers=REDIS_PEERS,
    available=redis_suite_unavailable,
)
