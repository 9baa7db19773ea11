"""One module per suite; SUITES lists them in the order ``run.py`` runs them by default."""

from __future__ import annotations

from harness.model import Suite
from harness.suites import (
    broadcast,
    consumer_echo,
    http,
    many_publishers,
    redis_broadcast,
    redis_groupsend_cost,
    redis_many_publishers,
    ws_echo,
    ws_idle,
)

__all__ = ["DJANGO_SUITES", "REDIS_SUITES", "SERVER_SUITES", "SUITES"]

SERVER_SUITES: list[Suite] = [http.SUITE, ws_echo.SUITE, ws_idle.SUITE]
DJANGO_SUITES: list[Suite] = [consumer_echo.SUITE, broadcast.SUITE, many_publishers.SUITE]
REDIS_SUITES: list[Suite] = [
    redis_groupsend_cost.SUITE,
    redis_broadcast.SUITE,
    redis_many_publishers.SUITE,
]
SUITES: dict[str, Suite] = {s.name: s for s in SERVER_SUITES + DJANGO_SUITES + REDIS_SUITES}
