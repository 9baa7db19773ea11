"""broadcast: one publisher, one group of 1000 members on the in-memory channel layer."""

from __future__ import annotations

from harness.model import Contestant, Context, Metric, Suite
from harness.procs import RunningServer
from harness.suites.django_common import (
    broadcast_common_metrics,
    django_contestants,
    run_group_client,
)

__all__ = ["SUITE"]

_RATES_FULL = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
_RATES_QUICK = [2, 10, 50, 200, 1000]


def _measure(
    ctx: Context, srv: RunningServer, contestant: Contestant, case: str
) -> dict[str, float | None]:
    members = int(case)
    rates = _RATES_QUICK if ctx.quick else _RATES_FULL
    latency_s, step_s = (3, 1.0) if ctx.quick else (10, 2.0)
    budget = latency_s + 15 + len(rates) * (step_s + 15)
    done, _cpu, _wall = run_group_client(
        ctx,
        srv,
        ["broadcast", "--members", str(members), "--latency-seconds", str(latency_s),
         "--step-seconds", str(step_s), "--rates", ",".join(str(r) for r in rates)],
        timeout=budget,
    )  # fmt: skip
    ladder = done["ladder"]
    best = float(done["best_rate"])
    # The step that ended the ladder (if any did): its share delivered and the
    # delivery rate actually achieved show how far past its limit the server was.
    failed = ladder[-1] if ladder and ladder[-1]["rate"] != best else None
    return {
        "deliveries_per_s": best * done["members"],
        "best_rate": best,
        "failed_delivered_pct": (
            100.0 * failed["delivered"] / failed["expected"] if failed else None
        ),
        **broadcast_common_metrics(done),
    }  # fmt: skip


SUITE = Suite(
    name="broadcast",
    title="Group broadcast, 1 publisher → 1000 members (in-memory layer)",
    method=(
        "1000 WebSocket members (quick: 300) join one group through a consumer's `connect()` "
        "(`group_add`); one publisher connection's consumer calls `group_send` for every text "
        "message it receives; each member's consumer forwards the event to its client. "
        "Channel layer: each framework's `InMemoryChannelLayer` with default settings "
        "(capacity 100). Latency: 1 msg/s for 10 s (quick: 3 s), time from the publisher "
        "client's send to each member client's receipt (one clock), p50/p99 over all "
        "deliveries. Rate: publish at 1, 2, 5, 10, ... 1000, 2000 msg/s (quick: 2, 10, 50, 200, "
        "1000) "
        "for 2 s each (quick: 1 s); a step passes when every member received every message "
        "and the last delivery came at most 1 s after the last publish (a server that "
        "buffers without dropping must still keep up); the ladder stops at the first failed "
        "step. Reported: highest passing rate x members = lossless deliveries/s (if the top "
        "step passes, the true limit is higher); the share delivered at the failed step; "
        "and the peak delivery rate achieved (deliveries ÷ time from the step's first publish "
        "to its last delivery) over steps that lost nothing, late or not."
    ),
    metrics=[
        Metric("deliveries_per_s", "lossless deliveries/s", True),
        Metric("best_rate", "lossless msg/s", True),
        Metric("failed_delivered_pct", "delivered % at failed step", True, "{:.1f}", compare=False),
        Metric("peak_lossless", "peak lossless deliveries/s achieved", True),
        Metric("lat_p50_ms", "p50 ms @1 msg/s", False, "{:.2f}"),
        Metric("lat_p99_ms", "p99 ms @1 msg/s", False, "{:.2f}"),
        Metric("errors", "errors", False, compare=False),
    ],
    headline="deliveries_per_s",
    case_label="members",
    cases=lambda ctx: ["300"] if ctx.quick else ["1000"],
    contestants=lambda ctx: django_contestants(ctx, raw_bayou=False),
    measure=_measure,
    peers=("channels@uvicorn", "channels@daphne"),
)
