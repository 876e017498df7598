"""Comparisons a reviewer accepts: effect sizes with intervals, corrected tests, chance floors,
invalid models and budgets, from the per-item values every run writes.

Every probe writes, per metric, the value of each item it averages
(``records/<phase>/<probe>.items.jsonl``: item, cluster, value). The same items are scored on
the base model, after every phase and in every arm (eval items do not depend on the framing), so

* **Δ vs base** pairs each item's value after a phase with its value on the base model of the
  same run (same seed), and
* **Δ vs a baseline arm** (``intentgym report DIR --baseline framing=secure``) pairs each item's
  value in an arm with its value in the baseline arm, seed by seed;

both by :func:`intentgym.stats.hierarchical_difference`: clusters (the samples of one question,
the tasks of one template) are resampled as units; with several seeds, seed-level and shared
item-level variation are combined as that function's docstring describes (every seed scores the
same items). p-values come from sign-flip tests (at the seed level from 6 seeds on); ``--correction holm|bh|none`` adjusts them across every comparison in the report, and the
verdict (higher / lower / no detectable difference) uses the adjusted p. The minimum detectable
effect (80% power, two-sided 5%) at each comparison's number of units says when a probe is too
small to show anything.

Flags: a metric is **at chance** when the base model's interval contains its chance level (a
forced choice at 0.5: the model does not discriminate, so a change cannot be read as alignment),
and **no discrimination** when every base item scores the same (e.g. a judge that gives every
answer one score). Rows of a model the health check found broken are **invalid**: never
compared, never read as aligned. Arms of one comparison whose budgets (optimiser steps, trained
and generated tokens, reward-model items) differ by more than 10% are warned about.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intentgym.stats import (
    Estimate,
    adjust,
    bootstrap_mean,
    hierarchical_difference,
    minimum_detectable_effect,
    verdict,
)

CORRECTIONS = ("holm", "bh", "none")
BUDGET_KEYS = ("optimiser_steps", "trained_tokens", "generated_tokens", "reward_items")
BUDGET_TOLERANCE = 0.10


@dataclass
class RunItems:
    """A run's per-item values: (phase, probe/metric) -> item -> value, and clusters."""

    values: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    clusters: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    bounded: dict[str, bool] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    #: phase -> why its rows are invalid
    invalid: dict[str, str] = field(default_factory=dict)
    budget: dict[tuple[str, str], float] = field(default_factory=dict)


def load_items(run: Any) -> RunItems:
    """Read a run's item files and the flags of its results rows (a missing file: no items)."""
    out = RunItems()
    for row in run.rows:
        metric = f"{row['probe']}/{row['metric']}"
        if "chance" in row:
            out.chance[metric] = float(row["chance"])
        if "bounded" in row:
            out.bounded[metric] = bool(row["bounded"])
        if row.get("invalid"):
            out.invalid.setdefault(row["phase"], str(row.get("invalid_reason") or "invalid"))
        if row["probe"] == "budget":
            out.budget[(row["phase"], row["metric"])] = float(row["value"])
    records = Path(run.path) / "records"
    for path in sorted(records.glob("*/*.items.jsonl")) if records.is_dir() else []:
        phase, probe = path.parent.name, path.name.removesuffix(".items.jsonl")
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                key = (phase, f"{probe}/{r['metric']}")
                out.values.setdefault(key, {})[str(r["item"])] = float(r["value"])
                out.clusters.setdefault(key, {})[str(r["item"])] = str(r["cluster"])
            except (ValueError, KeyError, TypeError):
                continue  # a damaged item file only costs its own comparisons
    return out


def _pairs(
    before: list[tuple[int, RunItems, str]], after: list[tuple[int, RunItems, str]], metric: str
) -> tuple[list[tuple[dict[str, float], dict[str, float]]], dict[str, str]]:
    """Per seed present on both sides: (before items, after items); the clusters."""
    by_seed_b = {seed: (items, phase) for seed, items, phase in before}
    pairs, clusters = [], {}
    for seed, items, phase in after:
        if seed not in by_seed_b:
            continue
        b_items, b_phase = by_seed_b[seed]
        b = b_items.values.get((b_phase, metric))
        a = items.values.get((phase, metric))
        if b and a:
            pairs.append((b, a))
            clusters.update(items.clusters.get((phase, metric), {}))
    return pairs, clusters


def difference(
    before: list[tuple[int, RunItems, str]],
    after: list[tuple[int, RunItems, str]],
    metric: str,
    *,
    seed: int = 0,
) -> Estimate | None:
    """Δ = after - before for ``metric``, paired on items within each seed (None: no items)."""
    pairs, clusters = _pairs(before, after, metric)
    if not pairs:
        return None
    bounded = any(items.bounded.get(metric, False) for _, items, _ in after)
    return hierarchical_difference(pairs, clusters or None, bounded=bounded, seed=seed)


def mde(
    before: list[tuple[int, RunItems, str]], after: list[tuple[int, RunItems, str]], metric: str
) -> float | None:
    """The minimum detectable effect of a paired comparison on these items (80% power)."""
    pairs, clusters = _pairs(before, after, metric)
    if not pairs:
        return None
    b, a = pairs[0]
    by_cluster: dict[str, list[float]] = defaultdict(list)
    for key in set(a) & set(b):
        by_cluster[clusters.get(key, key)].append(a[key] - b[key])
    diffs = [sum(v) / len(v) for v in by_cluster.values()]
    if len(diffs) < 2:
        return None
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    bounded = any(items.bounded.get(metric, False) for _, items, _ in after)
    return minimum_detectable_effect(sd, len(diffs), bounded_p=0.5 if bounded else None)


def floor_flag(base: list[RunItems], metric: str) -> str:
    """'at chance' / 'no discrimination' when the base model cannot show this metric moving."""
    values: list[float] = []
    clusters: list[str] = []
    for items in base:
        got = items.values.get(("base", metric), {})
        values += list(got.values())
        clusters += [items.clusters.get(("base", metric), {}).get(k, k) for k in got]
    if len(values) < 2:
        return ""
    if max(values) - min(values) == 0:
        return "no discrimination (every base item scores the same: a floor, a ceiling or a constant judge)"
    chance = next((i.chance[metric] for i in base if metric in i.chance), None)
    if chance is None:
        return ""
    bounded = any(i.bounded.get(metric, False) for i in base)
    est = bootstrap_mean(values, clusters, bounded=bounded)
    if est.low <= chance <= est.high:
        return (
            f"at chance (base {est.value:.3f} [{est.low:.3f}, {est.high:.3f}] contains {chance:g})"
        )
    return ""


def budget_warnings(groups: dict[str, list[RunItems]]) -> list[str]:
    """Phases where the arms' budgets differ by more than BUDGET_TOLERANCE."""
    per_phase: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for condition, runs in groups.items():
        sums: dict[tuple[str, str], list[float]] = defaultdict(list)
        for items in runs:
            for (phase, key), value in items.budget.items():
                if key in BUDGET_KEYS:
                    sums[(phase, key)].append(value)
        for k, vs in sums.items():
            per_phase[k][condition] = sum(vs) / len(vs)
    out = []
    for (phase, key), by_condition in sorted(per_phase.items()):
        if len(by_condition) < 2:
            continue
        low, high = min(by_condition.values()), max(by_condition.values())
        if high > 0 and (high - low) / max(high, 1e-12) > BUDGET_TOLERANCE:
            shown = ", ".join(f"{c}: {v:,.0f}" for c, v in by_condition.items())
            out.append(
                f"phase {phase}: {key} differs by {(high - low) / high:.0%} between arms ({shown})"
            )
    return out


@dataclass
class Comparison:
    arm: str
    phase: str
    metric: str
    estimate: Estimate
    mde: float | None
    flag: str
    p_adjusted: float | None = None
    decision: str = ""


def compare_to_baseline(
    groups: dict[str, list[tuple[int, RunItems]]],
    baseline: str,
    correction: str = "holm",
    alpha: float = 0.05,
) -> list[Comparison]:
    """Every other arm vs ``baseline`` at every phase they share, on every metric with items;
    p-values adjusted across the whole family."""
    from intentgym.errors import invalid_choice

    if correction not in CORRECTIONS:
        raise invalid_choice("correction", correction, CORRECTIONS)
    base_runs = groups[baseline]
    base_items = [items for _, items in base_runs]
    comparisons: list[Comparison] = []
    for arm, runs in groups.items():
        if arm == baseline:
            continue
        phases = sorted(
            {p for _, items in runs for p, _ in items.values if p != "base"}
            & {p for _, items in base_runs for p, _ in items.values if p != "base"}
        )
        for phase in phases:
            if any(phase in items.invalid for _, items in [*runs, *base_runs]):
                continue  # a broken model is never compared
            metrics = sorted({m for _, items in runs for p, m in items.values if p == phase})
            for metric in metrics:
                before = [(s, items, phase) for s, items in base_runs]
                after = [(s, items, phase) for s, items in runs]
                est = difference(before, after, metric)
                if est is None:
                    continue
                comparisons.append(
                    Comparison(
                        arm, phase, metric, est, mde(before, after, metric),
                        floor_flag(base_items, metric),
                    )
                )  # fmt: skip
    adjusted = adjust([c.estimate.p for c in comparisons], correction)
    for c, p in zip(comparisons, adjusted, strict=True):
        c.p_adjusted = p
        c.decision = verdict(c.estimate, p, alpha)
    return comparisons


def comparison_markdown(comparisons: list[Comparison], baseline: str, correction: str) -> str:
    lines = [
        f"## Comparison with the baseline arm: {baseline}\n",
        "Δ = arm - baseline, paired on the same items within each seed (clusters resampled; "
        f"seed and item variation combined with several seeds); p from sign-flip tests, adjusted by "
        f"{correction} across the {len(comparisons)} comparisons below; MDE = the smallest Δ "
        "this many units would detect with 80% power.\n",
        "| metric | arm | phase | Δ [95% CI] | p | p adj. | verdict | MDE | units | flags |",
        "|---|---|---|---|---:|---:|---|---:|---:|---|",
    ]
    for c in comparisons:
        e = c.estimate
        interval = f"{'+' if e.value >= 0 else ''}{_f(e.value)} [{_f(e.low)}, {_f(e.high)}]"
        note = f"{c.flag}; {e.note}".strip("; ") if e.note else c.flag
        lines.append(
            f"| {c.metric} | {c.arm} | {c.phase} | {interval} | {_p(e.p)} | {_p(c.p_adjusted)} "
            f"| {c.decision} | {_f(c.mde)} | {e.n} | {note} |"
        )
    return "\n".join(lines) + "\n"


def _f(x: float | None) -> str:
    """Three decimals, or two significant digits for a smaller non-zero number."""
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:.3f}" if x == 0 or abs(x) >= 0.001 else f"{x:.2g}"


def _p(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")
