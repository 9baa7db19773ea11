"""What a suite is, what it measured, and what a target asks of the results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.procs import CpuPlan, RunningServer

__all__ = ["Contestant", "Context", "Metric", "Suite", "SuiteResult", "Target"]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    fmt: str = "{:,.0f}"
    compare: bool = True  # False: diagnostic only, left out of the ratio table

    def format(self, value: float | None) -> str:
        return "-" if value is None else self.fmt.format(value)


@dataclass(frozen=True)
class Contestant:
    """One column of a comparison: a server running an application."""

    label: str
    server: str  # key of harness.servers.SERVERS
    app: str  # "module:attr", imported with cwd=bench/
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """``metric`` of ``label`` ÷ ``peer`` must satisfy ``op`` (">=" or "<=") ``ratio``."""

    description: str
    metric: str
    label: str
    peer: str
    op: str
    ratio: float
    case: str | None = None  # None: every case must meet it

    def met(self, value: float) -> bool:
        return value >= self.ratio if self.op == ">=" else value <= self.ratio


@dataclass
class Context:
    quick: bool
    rounds: int
    cpus: CpuPlan
    python: str  # the bench venv's interpreter
    client_procs: int
    log: Callable[[str], None]
    wrk: str | None = None


@dataclass
class Suite:
    name: str
    title: str
    method: str  # markdown paragraph(s)
    metrics: list[Metric]
    headline: str
    case_label: str
    cases: Callable[[Context], list[str]]
    contestants: Callable[[Context], list[Contestant]]
    # Called with a fresh server already running (the usual case) ...
    measure: Callable[[Context, RunningServer, Contestant, str], dict[str, float | None]] | None = (
        None
    )
    # ... or, for suites that start their own processes (several servers, a
    # redis-server), called instead of starting one.
    run: Callable[[Context, Contestant, str], dict[str, float | None]] | None = None
    targets: list[Target] = field(default_factory=list)
    # Ratios are printed of this label against every other contestant.
    subject: str = "bayou"
    # Labels the main table shows ratio columns against (when present).
    peers: tuple[str, ...] = ("uvicorn", "daphne")
    available: Callable[[], str | None] = lambda: None  # reason the suite can't run, or None


@dataclass
class SuiteResult:
    suite: Suite
    quick: bool
    rounds: int
    started: str
    contestants: list[Contestant]
    cases: list[str]
    samples: dict[tuple[str, str], list[dict[str, float | None]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
