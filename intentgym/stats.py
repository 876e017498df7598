"""Confidence intervals (95%) for every metric intentgym reports: probes, phases, reports."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats


def proportion_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Share and Wilson score interval (well-behaved near 0 and 1, unlike the normal interval)."""
    if n == 0:
        return math.nan, math.nan, math.nan
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return successes / n, float(ci.low), float(ci.high)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, math.nan
    sem = stats.sem(values)
    if sem == 0 or math.isnan(sem):
        return mean, mean, mean
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)
