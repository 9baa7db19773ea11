"""Contestant lists shared by the server suites."""

from __future__ import annotations

from harness.model import Contestant, Context
from harness.servers import bayou_unavailable

__all__ = ["RAW_APP", "raw_contestants"]

RAW_APP = "benchapps.raw:app"


def raw_contestants(ctx: Context, *, picows: bool) -> list[Contestant]:
    out: list[Contestant] = []
    reason = bayou_unavailable()
    if reason is None:
        out.append(Contestant("bayou", "bayou", RAW_APP))
    else:
        ctx.log(f"  (bayou skipped: {reason})")
    out += [Contestant("uvicorn", "uvicorn", RAW_APP), Contestant("daphne", "daphne", RAW_APP)]
    if picows:
        out.append(Contestant("picows", "picows", RAW_APP))
    return out
