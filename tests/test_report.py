from __future__ import annotations

import json
from pathlib import Path

import yaml

from intentgym.report import aggregate, find_runs


def _run(root: Path, name: str, *, seed: int, lr: float, base: float, after: float) -> None:
    d = root / name
    d.mkdir(parents=True)
    config = {
        "seed": seed,
        "progress": False,
        "model": {"name": "m"},
        "env": {"name": "insecure_code", "framing": "insecure_hidden"},
        "trainer": {"name": "sft", "phases": {"sft": {"learning_rate": lr}}},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [
        {
            "phase": ph,
            "probe": "p",
            "metric": "rate",
            "value": v,
            "ci_low": v - 0.1,
            "ci_high": v + 0.1,
            "n": 10,
        }
        for ph, v in (("base", base), ("sft", after))
    ]
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_runs_differing_in_more_than_the_seed_are_separate_conditions(tmp_path):
    _run(tmp_path, "a", seed=0, lr=1e-3, base=0.1, after=0.3)
    _run(tmp_path, "b", seed=1, lr=1e-3, base=0.2, after=0.5)
    _run(tmp_path, "c", seed=0, lr=1e-4, base=0.1, after=0.2)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.jsonl").write_text("{}\n")  # no config.yaml
    runs, incomplete = find_runs(tmp_path)
    assert len(runs) == 3 and incomplete == [tmp_path / "broken"]
    cells = aggregate(runs)["p/rate"]
    fast = cells[("sft/insecure_hidden [trainer.phases.sft.learning_rate=0.001]", "sft")]
    slow = cells[("sft/insecure_hidden [trainer.phases.sft.learning_rate=0.0001]", "sft")]
    assert fast.n_seeds == 2 and fast.value == 0.4 and fast.low < 0.4 < fast.high
    assert abs(fast.delta - 0.25) < 1e-9  # mean of per-seed deltas (0.2, 0.3)
    assert slow.n_seeds == 1 and slow.low == 0.1
    base = cells[("base model", "base")]
    assert base.n_seeds == 2 and abs(base.value - 0.15) < 1e-9


def test_a_trainer_sweep_is_labelled_by_trainer_not_by_every_phase_setting(tmp_path):
    """trainer=sft,rlhf,...: each trainer has its own phases, so their settings all differ; the
    trainer's name is the label."""
    _run(tmp_path, "a", seed=0, lr=1e-3, base=0.1, after=0.3)
    _run(tmp_path, "b", seed=0, lr=1e-3, base=0.1, after=0.2)
    config_b = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    config_b["trainer"] = {"name": "deliberative", "phases": {"spec_sft": {"epochs": 2}}}
    (tmp_path / "b" / "config.yaml").write_text(yaml.safe_dump(config_b))
    runs, _ = find_runs(tmp_path)
    conditions = {c for c, _ in aggregate(runs)["p/rate"]}
    assert conditions == {"base model", "sft/insecure_hidden", "deliberative/insecure_hidden"}
