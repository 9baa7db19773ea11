"""many-publishers: 10 publishers burst into one group of 100 members; count what arrives."""

from __future__ import annotations

from harness.model import Contestant, Context, Metric, Suite
from harness.procs import RunningServer
from harness.suites.django_common import burst_metrics, django_contestants, run_group_client

__all__ = ["SUITE"]


def _measure(
    ctx: Context, srv: RunningServer, contestant: Contestant, case: str
) -> dict[str, float | None]:
    messages = 100 if ctx.quick else 500
    done, cpu, _wall = run_group_client(
        ctx,
        srv,
        ["many", "--members", "100", "--publishers", "10", "--messages", str(messages)],
        timeout=120,
    )
    return burst_metrics(done, cpu)


SUITE = Suite(
    name="many-publishers",
    title="Many publishers → one group of 100 (in-memory layer)",
    method=(
        "100 members join one group; 10 publisher connections each send 500 messages "
        "(quick: 100) as fast as their connection accepts them; each publisher's consumer "
        "calls `group_send` per message. Expected deliveries = publishers x messages x members "
        "(500,000; quick: 100,000). The client waits until all arrived or 2 s pass without "
        "a delivery (60 s cap). Default `InMemoryChannelLayer` settings (capacity 100): "
        "drops show where a member's channel overflowed. Server CPU per delivery = server "
        "utime+stime during the run ÷ deliveries."
    ),
    metrics=[
        Metric("deliveries_per_s", "deliveries/s", True),
        Metric("delivered", "delivered", True, compare=False),
        Metric("expected", "expected", True, compare=False),
        Metric("dropped_pct", "dropped %", False, "{:.2f}", compare=False),
        Metric("p99_ms", "p99 ms", False, "{:.1f}"),
        Metric("cpu_us", "server CPU µs/delivery", False, "{:.1f}"),
        Metric("errors", "errors", False, compare=False),
    ],
    headline="deliveries_per_s",
    case_label="publishers x msgs → members",
    cases=lambda ctx: ["10 x 100 → 100"] if ctx.quick else ["10 x 500 → 100"],
    contestants=lambda ctx: django_contestants(ctx, raw_bayou=False),
    measure=_measure,
    peers=("channels@uvicorn", "channels@daphne"),
)
