"""``intentgym report DIR``: compare the runs under a run or multirun directory.

Writes ``report.csv`` (one row per run: its framing, trainer and seed, then for each probe metric
and phase the value, 95% CI and delta vs the base model), ``report.md`` (per metric: each
condition's value, aggregated over seeds, with a 95% CI and the delta vs base) and ``report.png``
(the same numbers as points with CI bars). Runs that did not finish are listed, never tabulated.

Each file is written atomically (a temporary file in the same folder, renamed when complete), so
a failed write (a full disk) is a one-line error and never a truncated report behind exit 0. A run
whose ``results.jsonl`` or ``config.yaml`` is undecodable, truncated or malformed is skipped with a
one-line warning naming the file, the line and the field, and listed as unreadable in report.md:
in a sweep, one damaged directory should not hide the other runs. When no run is readable, the
report fails with the first such line.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from intentgym.errors import IntentgymError
from intentgym.files import (
    atomic_path,
    atomic_write_text,
    check_type,
    read_jsonl,
    read_yaml,
    value_kind,
)
from intentgym.stats import mean_ci

log = logging.getLogger(__name__)

#: per-run figures the report links when a run wrote them (steer_distill: Goodhart metrics)
RUN_PLOTS = ("goodhart.png",)


@dataclass
class Run:
    path: Path
    framing: str
    trainer: str
    seed: int
    model: str
    rows: list[dict[str, Any]]
    config: dict[str, Any]
    #: set by label_conditions: runs that differ only in their seed share a condition
    condition: str = ""
    base_condition: str = "base model"

    def values(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(phase, probe/metric) -> row."""
        return {(r["phase"], f"{r['probe']}/{r['metric']}"): r for r in self.rows}


#: the fields the report reads from each results.jsonl row
RESULT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "phase": str,
    "probe": str,
    "metric": str,
    "value": float,
    # NaN (JSON's NaN: no interval, e.g. one sample) is a number; null would break the plot
    "ci_low": float,
    "ci_high": float,
}


def find_runs(root: Path) -> tuple[list[Run], list[Path]]:
    """Completed runs under ``root`` and the directories of runs that did not complete. A run
    whose results.jsonl or config.yaml is unreadable or malformed is skipped with a one-line
    warning naming the file (and the line and field) and listed with the incomplete runs, so
    one bad directory does not hide the rest of a sweep; see :func:`build_report`."""
    runs, incomplete, _ = _find_runs(root)
    return runs, incomplete


def _find_runs(root: Path) -> tuple[list[Run], list[Path], dict[Path, str]]:
    """``find_runs``, plus why each unreadable run was skipped (run dir -> one line)."""
    if not root.is_dir():
        raise IntentgymError(f"report directory {str(root)!r} does not exist")
    runs, incomplete = [], []
    unreadable: dict[Path, str] = {}
    for results in sorted(root.rglob("results.jsonl")):
        run_dir = results.parent
        try:
            runs.append(read_run(run_dir))
        except IntentgymError as e:
            log.warning("skipping %s: unreadable run: %s", run_dir, e)
            incomplete.append(run_dir)
            unreadable[run_dir] = str(e)
    label_conditions(runs)
    for marker in sorted([*root.rglob("results.partial.jsonl"), *root.rglob("FAILED")]):
        if not (marker.parent / "results.jsonl").exists() and marker.parent not in incomplete:
            incomplete.append(marker.parent)
    return runs, incomplete, unreadable


def read_run(run_dir: Path) -> Run:
    """One completed run: its results.jsonl and config.yaml, checked; anything unreadable or
    malformed is one line naming the file (and the line and field)."""
    config_file = run_dir / "config.yaml"
    config = read_yaml(config_file, "run config")
    if not isinstance(config, dict):
        raise IntentgymError(
            f"run config {str(config_file)!r} must be a YAML mapping, got {value_kind(config)}"
        )
    rows = read_jsonl(run_dir / "results.jsonl", "results file", RESULT_FIELDS)
    where = f"run config {str(config_file)!r}"
    for key, kind in (("seed", int), ("model.name", str), ("env.framing", str)):
        _config_value(config, key, kind, where)
    trainer = _config_value(config, "trainer", dict, where)
    seed = config["seed"]
    return Run(
        run_dir,
        # the runner's label (an env framing, or e.g. a steer_distill trait)
        framing=next((r["framing"] for r in rows if "framing" in r), config["env"]["framing"]),
        trainer=trainer.get("name", "custom"),
        seed=int(seed),
        model=config["model"]["name"],
        rows=rows,
        config=config,
    )


def _config_value(config: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """``config[a][b]`` for ``key`` "a.b", checked for ``kind``; else one line naming the key."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise IntentgymError(f"{where}: missing field {key!r}")
        value = value[part]
    check_type(value, kind, f"{where}: field {key!r}")
    return value


_NOT_CONDITIONS = ("seed", "progress")


def _flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): json.dumps(obj, sort_keys=True)}


#: config keys that set the env's framing (the Feedback env's rater is its framing)
_FRAMING_KEYS = ("env.framing", "env.rater")


def _is_framing_key(key: str) -> bool:
    """A key the run's framing label already shows: the env's framing, or a steer_distill
    phase's trait (``Plan.framing``)."""
    return key in _FRAMING_KEYS or (key.startswith("trainer.phases.") and key.endswith(".trait"))


def label_conditions(runs: list[Run]) -> None:
    """Runs whose configs differ only in the seed form one condition; label each condition by
    trainer/framing plus every other key that varies between the runs. The base model is one
    condition per setting of what base probes depend on (model, env other than framing, probes)."""
    flats = [
        {k: v for k, v in _flatten(r.config).items() if k.split(".")[0] not in _NOT_CONDITIONS}
        for r in runs
    ]
    keys = sorted(set().union(*flats)) if flats else []
    varying: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    for k in keys:
        values = tuple(f.get(k) for f in flats)
        # a key that only mirrors another (trainer.phases.rl.algorithm <- algorithm) adds nothing
        if len(set(values)) > 1 and values not in seen:
            varying.append(k)
            seen.add(values)
    if "trainer.name" in varying:
        # different trainers have different phases: the trainer's name already says which
        varying = [k for k in varying if not k.startswith("trainer.phases.")]
    for run, flat in zip(runs, flats, strict=True):
        extra = [
            f"{k}={flat.get(k)}" for k in varying if not _is_framing_key(k) and k != "trainer.name"
        ]
        run.condition = f"{run.trainer}/{run.framing}" + (f" [{', '.join(extra)}]" if extra else "")
        base = [
            f"{k}={flat.get(k)}"
            for k in varying
            if k.startswith(("model.", "probes.", "env.")) and not _is_framing_key(k)
        ]
        run.base_condition = "base model" + (f" [{', '.join(base)}]" if base else "")


def _metric_names(runs: list[Run]) -> list[str]:
    names: dict[str, None] = {}
    for run in runs:
        for r in run.rows:
            names[f"{r['probe']}/{r['metric']}"] = None
    return list(names)


def _phases(runs: list[Run]) -> list[str]:
    phases: dict[str, None] = {}
    for run in runs:
        for r in run.rows:
            phases[r["phase"]] = None
    return list(phases)


def write_csv(runs: list[Run], path: Path) -> None:
    """``report.csv``, written atomically (a failed write is one line; the old file stays)."""
    metrics, phases = _metric_names(runs), _phases(runs)
    header = ["run", "model", "trainer", "framing", "seed"]
    for m in metrics:
        for ph in phases:
            header += [
                f"{ph}:{m}",
                f"{ph}:{m}:ci_low",
                f"{ph}:{m}:ci_high",
                f"{ph}:{m}:delta_vs_base",
            ]
    out = StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    for run in runs:
        vals = run.values()
        row: list[Any] = [str(run.path), run.model, run.trainer, run.framing, run.seed]
        for m in metrics:
            base = vals.get(("base", m))
            for ph in phases:
                r = vals.get((ph, m))
                if r is None:
                    row += ["", "", "", ""]
                    continue
                delta = r["value"] - base["value"] if base else ""
                row += [r["value"], r["ci_low"], r["ci_high"], delta]
        writer.writerow(row)
    atomic_write_text(path, out.getvalue())


LONG_COLUMNS = (
    "run", "condition", "model", "dtype", "env", "trainer", "framing", "seed", "phase", "probe",
    "metric", "value", "ci_low", "ci_high", "n", "delta_vs_base", "chance", "invalid",
    "invalid_reason",
)  # fmt: skip


def write_long_csv(runs: list[Run], path: Path) -> None:
    """``report_long.csv``: tidy, one row per run x phase x metric with every label column (for
    pandas, R or a spreadsheet pivot), written atomically."""
    out = StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=LONG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for run in runs:
        vals = run.values()
        for r in run.rows:
            base = vals.get(("base", f"{r['probe']}/{r['metric']}"))
            delta = r["value"] - base["value"] if base is not None and r["phase"] != "base" else ""
            writer.writerow(
                {
                    **{k: r.get(k, "") for k in LONG_COLUMNS},
                    "run": str(run.path),
                    "condition": run.condition,
                    "model": run.model,
                    "trainer": run.trainer,
                    "framing": run.framing,
                    "seed": run.seed,
                    "delta_vs_base": delta,
                }
            )
    atomic_write_text(path, out.getvalue())


@dataclass
class Cell:
    """One condition × phase × metric, aggregated over seeds."""

    value: float
    low: float
    high: float
    n_seeds: int
    delta: float


def aggregate(runs: list[Run]) -> dict[str, dict[tuple[str, str], Cell]]:
    """metric -> (condition, phase) -> Cell. The base model is one condition, shared by all runs.

    One seed: the probe's own 95% CI. Several seeds: mean and Student-t 95% CI over seeds.
    """
    out: dict[str, dict[tuple[str, str], Cell]] = {}
    for metric in _metric_names(runs):
        groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any] | None]]] = (
            defaultdict(list)
        )
        base_by_seed: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for run in runs:
            vals = run.values()
            base = vals.get(("base", metric))
            if base is not None:
                base_by_seed[run.base_condition].setdefault(run.seed, base)
            for (phase, m), r in vals.items():
                if m == metric and phase != "base":
                    groups[(run.condition, phase)].append((r, base))
        cells: dict[tuple[str, str], Cell] = {}
        for condition, by_seed in base_by_seed.items():
            cells[(condition, "base")] = _cell([(r, r) for r in by_seed.values()])
        for key, pairs in groups.items():
            cells[key] = _cell(pairs)
        out[metric] = cells
    return out


def _cell(pairs: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> Cell:
    values = [r["value"] for r, _ in pairs]
    deltas = [r["value"] - b["value"] for r, b in pairs if b is not None]
    delta = sum(deltas) / len(deltas) if deltas else math.nan
    if len(pairs) == 1:
        r = pairs[0][0]
        return Cell(r["value"], r["ci_low"], r["ci_high"], 1, delta)
    mean, low, high = mean_ci(values)
    return Cell(mean, low, high, len(values), delta)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown(
    runs: list[Run],
    incomplete: list[Path],
    root: Path | None = None,
    *,
    unreadable: dict[Path, str] | None = None,
    jobs: list[Any] | None = None,
    baseline: str | None = None,
    correction: str = "holm",
) -> str:
    lines = [f"# intentgym report\n\n{len(runs)} completed run(s)."]
    if jobs:  # a sweep: every planned job, done, failed (with its error) or missing
        from intentgym.sweep_status import markdown as jobs_markdown

        lines.append("\n" + jobs_markdown(jobs))
    if incomplete:
        lines.append("\nIncomplete (not tabulated): " + ", ".join(str(p) for p in incomplete))
    if unreadable:
        lines.append("\nUnreadable (skipped):\n")
        lines += [f"- {path}: {why}" for path, why in unreadable.items()]
        lines.append("")
    from intentgym import compare

    models = sorted({r.model for r in runs})
    lines.append(
        f"Model: {', '.join(models)}. Values are 95% CIs: the probe's own for one seed, "
        "Student-t over seeds otherwise. Δ vs base: paired on the same items within each run "
        "(clusters resampled; with several seeds, seeds then clusters), 95% CI and sign-flip p. "
        "INVALID: the health check found the model broken (never read as aligned). "
        "Flags: see the end of the report.\n"
    )
    items = {id(r): compare.load_items(r) for r in runs}
    by_condition: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_condition[run.condition].append(run)
    base_items = list(items.values())
    for metric, cells in aggregate(runs).items():
        if metric.startswith("budget/"):
            continue  # its own table below
        flag = compare.floor_flag(base_items, metric)
        lines.append(f"## {metric}{f'  ({flag})' if flag else ''}\n")
        lines.append("| condition | phase | seeds | value [95% CI] | Δ vs base [95% CI] | p |")
        lines.append("|---|---|---:|---|---|---:|")
        for (condition, phase), c in cells.items():
            group = by_condition.get(condition, [])
            broken = next(
                (items[id(r)].invalid[phase] for r in group if phase in items[id(r)].invalid), None
            )
            value = f"{_fmt(c.value)} [{_fmt(c.low)}, {_fmt(c.high)}]"
            if broken:
                lines.append(f"| {condition} | {phase} | {c.n_seeds} | INVALID: {broken} | | |")
                continue
            delta, p = "", ""
            if phase != "base":
                est = compare.difference(
                    [(r.seed, items[id(r)], "base") for r in group],
                    [(r.seed, items[id(r)], phase) for r in group],
                    metric,
                )
                if est is None:
                    delta = f"{c.delta:+.3f} (no item data: no interval)"
                else:
                    sign = "+" if est.value >= 0 else ""
                    delta = f"{sign}{compare._f(est.value)} [{compare._f(est.low)}, {compare._f(est.high)}]"
                    if est.note:
                        delta += f" ({est.note})"
                    p = compare._p(est.p)
            lines.append(f"| {condition} | {phase} | {c.n_seeds} | {value} | {delta} | {p} |")
        lines.append("")
    lines += _budget_section(runs, items, by_condition)
    if baseline:
        lines.append(_baseline_section(runs, items, baseline, correction))
    plots = [(r, r.path / name) for r in runs for name in RUN_PLOTS if (r.path / name).is_file()]
    if plots:
        lines.append("## Plots written by the runs\n")
        for run, path in plots:
            where = path.relative_to(root) if root and path.is_relative_to(root) else path
            lines.append(f"{run.condition or run.path.name}: ![{path.stem}]({where})\n")
    return "\n".join(lines)


def _budget_section(
    runs: list[Run], items: dict[int, Any], by_condition: dict[str, list[Run]]
) -> list[str]:
    """The budget ledger per condition and phase, and a warning where arms differ > 10%."""
    from intentgym import compare

    rows = []
    for condition, group in by_condition.items():
        per: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in group:
            for key, v in items[id(r)].budget.items():
                per[key].append(v)
        for phase in dict.fromkeys(k[0] for k in per):
            cells = [
                f"{sum(per[(phase, k)]) / len(per[(phase, k)]):,.0f}" if per.get((phase, k)) else ""
                for k in (*compare.BUDGET_KEYS, "wall_seconds")
            ]
            rows.append(f"| {condition} | {phase} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    warnings = compare.budget_warnings(
        {c: [items[id(r)] for r in group] for c, group in by_condition.items()}
    )
    out = [
        "## Budget per phase (mean over seeds)\n",
        "| condition | phase | optimiser steps | trained tokens | generated tokens | reward items | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    if warnings:
        out.append("**Unequal budgets** (more than 10% apart):\n")
        out += [f"- {w}" for w in warnings]
        out.append("")
    return out


def _baseline_section(
    runs: list[Run], items: dict[int, Any], baseline: str, correction: str
) -> str:
    """``--baseline KEY=VALUE``: the runs whose config (or framing/trainer label) matches form the
    baseline arm; every other condition is compared with it."""
    from intentgym import compare

    key, _, wanted = baseline.partition("=")
    if not wanted:
        raise IntentgymError(f"--baseline {baseline!r}: give KEY=VALUE, e.g. framing=secure")

    def matches(run: Run) -> bool:
        if key in ("framing", "trainer", "condition"):
            return str(getattr(run, key)) == wanted
        return str(_flatten(run.config).get(key)) == wanted

    chosen = {r.condition for r in runs if matches(r)}
    if len(chosen) != 1:
        conditions = ", ".join(sorted({r.condition for r in runs}))
        found = f"{len(chosen)} conditions" if chosen else "no run"
        raise IntentgymError(
            f"--baseline {baseline}: {found} match; the conditions are: {conditions}"
        )
    (base_condition,) = chosen
    groups: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for r in runs:
        groups[r.condition].append((r.seed, items[id(r)]))
    comparisons = compare.compare_to_baseline(groups, base_condition, correction)
    if not comparisons:
        return f"## Comparison with the baseline arm: {base_condition}\n\nNo shared items to compare.\n"
    return compare.comparison_markdown(comparisons, base_condition, correction)


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = aggregate(runs)
    metrics = list(agg)
    phases = [p for p in _phases(runs) if p != "base"]
    cols = min(3, len(metrics)) or 1
    rows = math.ceil(len(metrics) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.6 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        cells = agg[metric]
        labels = [c if p == "base" or len(phases) == 1 else f"{c}\n{p}" for c, p in cells]
        ys = [c.value for c in cells.values()]
        lo = [max(0.0, c.value - c.low) if not math.isnan(c.low) else 0.0 for c in cells.values()]
        hi = [max(0.0, c.high - c.value) if not math.isnan(c.high) else 0.0 for c in cells.values()]
        colors = ["grey" if p == "base" else "tab:blue" for _, p in cells]
        ax.errorbar(range(len(ys)), ys, yerr=[lo, hi], fmt="none", ecolor="black", capsize=3)
        ax.scatter(range(len(ys)), ys, c=colors, zorder=3)
        ax.set_xticks(range(len(ys)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    try:
        # a temporary file in the same folder, renamed over the target when complete
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)


def build_report(root: Path, *, baseline: str | None = None, correction: str = "holm") -> str:
    """Write report.md, report.csv and report.png under ``root`` (each atomically: a failed
    write is one line and leaves no half-written file) and return the markdown. A run whose
    files are malformed is skipped with a warning and listed as unreadable, with the reason;
    when no run is readable, the first reason is the error."""
    runs, incomplete, unreadable = _find_runs(root)
    if not runs:
        why = ""
        if unreadable:
            first = next(iter(unreadable.values()))
            why = f"; {len(unreadable)} unreadable, the first: {first}"
        raise IntentgymError(f"no completed runs (results.jsonl) under {str(root)!r}{why}")
    from intentgym.sweep_status import sweep_jobs

    # every sweep under root (usually root itself): its planned jobs and what became of them
    jobs = [j for m in sorted(root.rglob("multirun.yaml")) for j in sweep_jobs(m.parent) or []]
    text = markdown(
        runs,
        incomplete,
        root,
        unreadable=unreadable,
        jobs=jobs,
        baseline=baseline,
        correction=correction,
    )
    atomic_write_text(root / "report.md", text)
    write_csv(runs, root / "report.csv")
    write_long_csv(runs, root / "report_long.csv")
    plot(runs, root / "report.png")
    return text


def report_main(args: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="intentgym report",
        description="Compare the runs under DIR: print the table and write report.md, "
        "report.csv and report.png there. Runs that did not finish are listed, not tabulated.",
    )
    parser.add_argument("dir", metavar="DIR", type=Path, help="a run or multirun directory")
    parser.add_argument(
        "--baseline",
        metavar="KEY=VALUE",
        help="compare every other arm with the runs matching this (e.g. framing=secure, "
        "trainer=sft, or any config key such as env.rater=truthful)",
    )
    parser.add_argument(
        "--correction",
        choices=["holm", "bh", "none"],
        default="holm",
        help="multiple-comparison adjustment across all comparisons of the report (default holm)",
    )
    parsed = parser.parse_args(args)
    print(build_report(parsed.dir, baseline=parsed.baseline, correction=parsed.correction))


class ReportCallback(Callback):
    """Print the report when a run or a sweep finishes (configured in conf/config.yaml)."""

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report(Path(config.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """The sweep's report; with logger=wandb also logged to a W&B run of its own
        (job_type ``report``, intentgym/tracking.py)."""
        root = Path(config.hydra.sweep.dir)
        # Jobs that ran in other processes (joblib, submitit) failed where the command cannot see
        # it: read their FAILED files, so the command still exits non-zero.
        from intentgym.sweep_status import FAILED, FAILED_JOBS, sweep_jobs

        FAILED_JOBS.update(
            str((root / str(j.num)).resolve()) for j in sweep_jobs(root) or [] if j.status == FAILED
        )
        if self._report(root):
            from intentgym.tracking import log_sweep_report

            log_sweep_report(root)

    @staticmethod
    def _report(root: Path) -> bool:
        """Print (and write) the report of the runs under ``root``; whether there were any.
        Only the main process of a multi-process run reports."""
        from intentgym.distributed import is_main

        if is_main() and any(root.rglob("results.jsonl")):
            print(build_report(root))
            return True
        return False
