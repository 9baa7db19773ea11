"""consumer-echo: AsyncWebsocketConsumer echo, bayou vs Channels on uvicorn and daphne."""

from __future__ import annotations

from harness.model import Contestant, Context, Suite
from harness.procs import RunningServer
from harness.suites import ws_echo
from harness.suites.django_common import django_contestants

__all__ = ["SUITE"]


def _measure(
    ctx: Context, srv: RunningServer, contestant: Contestant, case: str
) -> dict[str, float | None]:
    url = f"ws://127.0.0.1:{srv.port}/ws/echo/"
    return ws_echo.run_echo_load(ctx, srv, url, int(case), 3.0 if ctx.quick else 10.0)


SUITE = Suite(
    name="consumer-echo",
    title="Django consumer echo (AsyncWebsocketConsumer)",
    method=(
        "The same `AsyncWebsocketConsumer` subclass (bench/djangobench/consumers.py: "
        "`receive()` → `send()`) behind `ProtocolTypeRouter`/`URLRouter`, built on bayou "
        "(served by bayou) and on channels 4.3.2 (served by uvicorn and by daphne); `raw@bayou` "
        "is the raw ASGI echo app on bayou, i.e. the cost of the consumer layer. Settings: "
        "bench/django_bayou and bench/django_channels (in-memory channel layer, no database). "
        "Load as in ws-echo: each connection loops send 32-byte text → wait for the echo, "
        "10 s window (quick: 3 s) after a warm-up, picows client pinned away from the server."
    ),
    metrics=ws_echo.SUITE.metrics,
    headline="rtps",
    case_label="conns",
    cases=lambda ctx: ["1", "50"] if ctx.quick else ["1", "50", "500"],
    contestants=lambda ctx: django_contestants(ctx, raw_bayou=True),
    measure=_measure,
    peers=("channels@uvicorn", "channels@daphne"),
)
