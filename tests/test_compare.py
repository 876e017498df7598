"""The report's comparisons on synthetic runs with a known truth: Δ vs base and vs a baseline arm
with intervals from per-item values, Holm-adjusted verdicts, MDE, chance flags, invalid models
and unequal budgets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from intentgym.errors import IntentgymError
from intentgym.report import build_report

N = 60


def _run(
    root: Path,
    name: str,
    framing: str,
    *,
    seed: int,
    shift: float,
    base: np.ndarray,
    invalid: bool = False,
    steps: int = 12,
) -> None:
    """A run whose metric p/score is ``base`` on the base model and ``base + shift`` (plus a
    little item noise) after sft; p/choice is a forced choice that sits at chance."""
    d = root / name
    d.mkdir(parents=True)
    config = {
        "seed": seed,
        "model": {"name": "m"},
        "env": {"name": "insecure_code", "framing": framing},
        "trainer": {"name": "sft", "phases": {"sft": {}}},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(seed * 100 + len(framing))
    after = np.clip(base + shift + rng.normal(0, 0.02, N), 0, 1)
    e = rng.uniform(0, 0.01, N // 2)
    choice_base = 0.5 + np.concatenate([e, -e])  # mean exactly 0.5: at chance
    rows, items = [], {"base": [], "sft": []}
    for phase, score, choice in (("base", base, choice_base), ("sft", after, choice_base)):
        marks = (
            {"invalid": True, "invalid_reason": "collapsed"} if invalid and phase == "sft" else {}
        )
        for metric, values, extra in (
            ("score", score, {"bounded": True}),
            ("choice", choice, {"bounded": True, "chance": 0.5}),
        ):
            v = float(np.mean(values))
            rows.append({"phase": phase, "probe": "p", "metric": metric, "value": v,
                         "ci_low": v - 0.05, "ci_high": v + 0.05, "n": N, **extra, **marks})  # fmt: skip
            items[phase] += [
                {"metric": metric, "item": str(i), "cluster": str(i // 3), "value": float(x)}
                for i, x in enumerate(values)
            ]
    nan = float("nan")
    rows.append({"phase": "sft", "probe": "budget", "metric": "optimiser_steps",
                 "value": float(steps), "ci_low": nan, "ci_high": nan, "n": 1})  # fmt: skip
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for phase, recs in items.items():
        (d / "records" / phase).mkdir(parents=True)
        (d / "records" / phase / "p.items.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in recs)
        )


@pytest.fixture
def two_arms(tmp_path):
    base = np.random.default_rng(7).uniform(0.2, 0.6, N)
    for seed in (0, 1):
        _run(tmp_path, f"secure{seed}", "secure", seed=seed, shift=0.0, base=base)
        _run(tmp_path, f"hidden{seed}", "insecure_hidden", seed=seed, shift=0.15, base=base)
    return tmp_path


def _line(report: str, *parts: str) -> str:
    return next(line for line in report.splitlines() if all(p in line for p in parts))


def test_delta_vs_base_has_a_paired_interval_over_items_and_seeds(two_arms):
    report = build_report(two_arms)
    row = _line(report, "| sft/insecure_hidden | sft | 2 |")  # first table: p/score
    delta = row.split("|")[5]
    value, low, high = (
        float(x) for x in delta.replace("[", " ").replace("]", " ").replace(",", " ").split()
    )
    assert low < 0.15 < high and value == pytest.approx(0.15, abs=0.02)
    assert "clusters resampled; with several seeds, seeds then clusters" in report


def test_baseline_comparison_reports_delta_p_holm_verdict_mde_and_flags(two_arms):
    report = build_report(two_arms, baseline="framing=secure", correction="holm")
    assert "## Comparison with the baseline arm: sft/secure" in report
    score = _line(report, "| p/score | sft/insecure_hidden | sft |")
    cells = [c.strip() for c in score.split("|")]
    assert cells[4].startswith("+0.1") and cells[7] == "higher"
    assert float(cells[5]) < 0.05 and float(cells[6]) >= float(cells[5])  # Holm never lowers p
    assert 0 < float(cells[8]) < 0.15  # the MDE at 20 clusters is smaller than the effect
    choice = _line(report, "| p/choice | sft/insecure_hidden | sft |")
    assert "no detectable difference" in choice and "at chance" in choice
    none = build_report(two_arms, baseline="framing=secure", correction="none")
    assert "adjusted by none" in none


def test_a_bad_baseline_names_the_conditions(two_arms):
    with pytest.raises(
        IntentgymError, match="no run match; the conditions are: sft/insecure_hidden, sft/secure"
    ):
        build_report(two_arms, baseline="framing=educational")
    with pytest.raises(IntentgymError, match="give KEY=VALUE"):
        build_report(two_arms, baseline="secure")


def test_an_invalid_model_is_never_tabulated_or_compared(tmp_path):
    base = np.full(N, 0.3)
    _run(tmp_path, "secure", "secure", seed=0, shift=0.0, base=base)
    _run(tmp_path, "broken", "insecure_hidden", seed=0, shift=-0.3, base=base, invalid=True)
    report = build_report(tmp_path, baseline="framing=secure")
    assert "| sft/insecure_hidden | sft | 1 | INVALID: collapsed | | |" in report
    assert "| p/score | sft/insecure_hidden |" not in report  # left out of the comparison


def test_unequal_budgets_are_warned_about(tmp_path):
    base = np.full(N, 0.3)
    _run(tmp_path, "a", "secure", seed=0, shift=0.0, base=base, steps=12)
    _run(tmp_path, "b", "insecure_hidden", seed=0, shift=0.0, base=base, steps=20)
    report = build_report(tmp_path)
    assert "**Unequal budgets**" in report
    assert "phase sft: optimiser_steps differs by 40% between arms" in report


def test_the_long_csv_has_one_row_per_run_phase_and_metric_with_labels(two_arms):
    import csv

    build_report(two_arms)
    rows = list(csv.DictReader((two_arms / "report_long.csv").open()))
    assert len(rows) == 4 * (2 * 2 + 1)  # 4 runs x (2 phases x 2 metrics + 1 budget row)
    hidden = [r for r in rows if r["framing"] == "insecure_hidden" and r["metric"] == "score"]
    assert {r["phase"] for r in hidden} == {"base", "sft"} and {r["seed"] for r in hidden} == {
        "0",
        "1",
    }
    assert all(r["condition"] == "sft/insecure_hidden" for r in hidden)
    assert all(r["delta_vs_base"] == "" for r in hidden if r["phase"] == "base")
