"""Medians over rounds and percentiles from the clients' merged log-scale histograms."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping

__all__ = ["median", "merge_histograms", "percentile_ms", "percentile_ns"]

_BUCKET = 1.02  # must match clients.common.Histogram


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def merge_histograms(hists: Iterable[Mapping[str, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for hist in hists:
        for key, count in hist.items():
            b = int(key)
            merged[b] = merged.get(b, 0) + count
    return merged


def percentile_ns(hist: Mapping[int, int], fraction: float) -> float | None:
    """The ``fraction`` quantile (e.g. 0.99) in ns, at the bucket's geometric centre."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return float(_BUCKET ** (b + 0.5))
    return float(_BUCKET ** (max(hist) + 0.5))


def percentile_ms(hist: Mapping[int, int], fraction: float) -> float | None:
    """:func:`percentile_ns` in ms; None for an empty histogram."""
    ns = percentile_ns(hist, fraction)
    return None if ns is None else ns / 1e6
