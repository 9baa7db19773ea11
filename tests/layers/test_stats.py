"""DropReporter: rate-limited WARNING lines and the on_drop callback."""

from __future__ import annotations

import logging

import pytest

from bayou.layers.stats import DropEvent, DropReporter, LayerStats


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _event(reason: str = "full", channel: str = "c", group: str | None = "g") -> DropEvent:
    return DropEvent(reason, channel, group, {"type": "x"})  # type: ignore[arg-type]


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "bayou.layers"]


def test_first_drop_is_logged_then_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    """One WARNING for the first drop; drops inside the interval add no lines."""
    clock = FakeClock()
    reporter = DropReporter(interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="bayou.layers"):
        for _ in range(50):
            reporter.report(_event())
            clock.now += 0.1
    records = _records(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "'c'" in message and "'g'" in message and "capacity" in message


def test_suppressed_drops_are_summarised_after_the_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first drop after the interval logs how many were suppressed, by reason."""
    clock = FakeClock()
    reporter = DropReporter(interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="bayou.layers"):
        reporter.report(_event())
        for _ in range(3):
            reporter.report(_event("full"))
        for _ in range(2):
            reporter.report(_event("expired", group=None))
        clock.now = 10
        reporter.report(_event("expired", channel="late", group=None))
    records = _records(caplog)
    assert len(records) == 2
    summary = records[1].getMessage()
    assert "'late'" in summary and "expired unread" in summary
    assert "5 more dropped" in summary
    assert "2 expired, 3 full" in summary


def test_on_drop_sees_every_event() -> None:
    """on_drop is called once per reported drop, suppressed or not."""
    seen: list[DropEvent] = []
    reporter = DropReporter(on_drop=seen.append, interval=10, clock=FakeClock())
    events = [_event(channel=f"c{index}") for index in range(5)]
    for event in events:
        reporter.report(event)
    assert seen == events


def test_on_drop_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in on_drop is logged with its traceback and swallowed."""

    def broken(event: DropEvent) -> None:
        raise RuntimeError("boom")

    reporter = DropReporter(on_drop=broken, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="bayou.layers"):
        reporter.report(_event())
    errors = [record for record in _records(caplog) if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


def test_layer_stats_dropped_total() -> None:
    """LayerStats.dropped is the sum of capacity drops and expiries; defaults are zero."""
    assert LayerStats().dropped == 0
    assert LayerStats(dropped_full=2, expired=3).dropped == 5
