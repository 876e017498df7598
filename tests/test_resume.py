"""Runs that survive kills: unique run dirs, no silent reuse of a used dir, resume after kill -9
(phase level and step level), SIGTERM that leaves FAILED and a checkpoint, sweeps that isolate
a failing job."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest

from intentgym.errors import IntentgymError

from .conftest import run_cli

# a small smoke run: SFT plus the probes that read choices, the capability and in-domain checks
QUICK = ["debug=smoke", "probes=quick", "~probes.free_form", "~probes.compliance_gap"]
# four optimiser steps, a training checkpoint after each
STEPS = [
    "limits.train_examples=48",
    "limits.train_steps=4",
    "trainer.phases.sft.num_examples=48",
    "+trainer.phases.sft.checkpoint_steps=1",
]


def _rows(run_dir: Path) -> list[dict]:
    """The results without what measures the machine (seconds, wall time, peak memory)."""
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    machine = {"wall_seconds", "peak_rss_mb", "peak_gpu_mb"}
    return [
        {k: v for k, v in r.items() if k != "seconds"} for r in rows if r["metric"] not in machine
    ]


def _same(a: list[dict], b: list[dict]) -> bool:
    def norm(rows: list[dict]) -> str:
        return json.dumps(
            [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
             for r in rows],
            sort_keys=True,
        )  # fmt: skip

    return norm(a) == norm(b)


def test_a_used_run_dir_is_refused_unless_resumed_or_overwritten(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from intentgym.cli import CONF_DIR
    from intentgym.runner import execute, plan_run

    def plan(*extra: str):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=["debug=smoke", "trainer=none", *extra])
        return plan_run(OmegaConf.to_container(cfg, resolve=True))

    (tmp_path / "results.jsonl").write_text("{}\n")
    with pytest.raises(
        IntentgymError, match=r"already holds a run \(results\.jsonl\); pass resume"
    ):
        execute(plan(), tmp_path)  # refused before any model is loaded
    assert execute(plan("resume=true"), tmp_path) == tmp_path / "results.jsonl"  # complete
    with pytest.raises(IntentgymError, match="contradict each other"):
        plan("resume=true", "overwrite=true")


def test_default_run_dirs_are_unique_per_run():
    from hydra import compose, initialize_config_dir

    from intentgym.cli import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    run_dir = cfg.hydra.run.dir
    assert "%f" in str(cfg.hydra.run._get_node("dir")._value())  # microseconds
    assert run_dir.rsplit("-", 1)[1].isalnum() and len(run_dir.rsplit("-", 1)[1]) == 8


@pytest.mark.slow
def test_kill_9_mid_sft_then_resume_gives_the_uninterrupted_results(tmp_path):
    whole = run_cli("run", *QUICK, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = run_cli(
        "run", *QUICK, f"hydra.run.dir={tmp_path / 'killed'}", cwd=tmp_path,
        env={"INTENTGYM_FAULT": "kill@sft:1"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "results.jsonl").exists()
    assert json.loads((tmp_path / "killed" / "checkpoint.json").read_text())["completed"] == [
        "base"
    ]
    # a plain rerun into the dir is refused; resume=true continues after the base probes
    again = run_cli("run", *QUICK, f"hydra.run.dir={tmp_path / 'killed'}", cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    resumed = run_cli(
        "run", *QUICK, f"hydra.run.dir={tmp_path / 'killed'}", "resume=true", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    logs = resumed.stdout + resumed.stderr
    assert "resuming" in logs and "after: base" in logs
    assert _same(_rows(tmp_path / "whole"), _rows(tmp_path / "killed"))
    assert not (tmp_path / "killed" / "checkpoint.json").exists()


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_resume_continues_from_that_step(tmp_path):
    whole = run_cli("run", *QUICK, *STEPS, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    run = tmp_path / "stopped"
    stopped = run_cli(
        "run", *QUICK, *STEPS, f"hydra.run.dir={run}", cwd=tmp_path,
        env={"INTENTGYM_FAULT": "term@sft:2"},
    )  # fmt: skip
    assert stopped.returncode == 130
    assert (run / "FAILED").read_text() == "interrupted by SIGTERM in phase sft at step 2\n"
    assert (run / "phases" / "sft" / "trainer" / "checkpoint-2").is_dir()
    resumed = run_cli("run", *QUICK, *STEPS, f"hydra.run.dir={run}", "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    logs = resumed.stdout + resumed.stderr
    assert "resuming sft from" in logs and "checkpoint-2" in logs
    # measured identical on CPU (the trainer restores optimiser, scheduler and RNG state)
    assert _same(_rows(tmp_path / "whole"), _rows(run))
    assert not (run / "FAILED").exists() and not (run / "phases" / "sft" / "trainer").exists()


@pytest.mark.slow
def test_a_sweep_with_one_failing_arm_runs_the_others_and_reports_it(tmp_path):
    out = run_cli("run", "-m", *QUICK, "trainer.phases.sft.epochs=1.0,0.5,0.25,0", cwd=tmp_path)
    assert out.returncode == 2
    (sweep,) = [p.parent for p in (tmp_path / "multirun").rglob("multirun.yaml")]
    done = sorted(p.parent.name for p in sweep.rglob("results.jsonl"))
    assert done == ["0", "1", "2"]
    assert "epochs must be > 0, got 0.0" in (sweep / "3" / "FAILED").read_text()
    report = (sweep / "report.md").read_text()
    assert "failed" in report and "trainer.phases.sft.epochs=0" in report
    # the base probes ran once: the other arms read them from the sweep's cache
    assert len(list((sweep / ".base_cache").glob("*.json"))) == 1


def test_a_sweeps_base_probes_are_shared_through_its_disk_cache(tmp_path, run_composed):
    """Jobs in other processes (joblib, submitit) read the base probes the first job wrote."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from intentgym import runner
    from intentgym.cli import CONF_DIR

    def plan(framing: str):
        overrides = [*QUICK, "~probes.forced_choice", "trainer=none", f"env.framing={framing}"]
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        return runner.plan_run(OmegaConf.to_container(cfg, resolve=True))

    cache = tmp_path / ".base_cache"
    runner._BASE_RESULTS.clear()
    first = runner.execute(plan("secure"), tmp_path / "0", base_cache=cache)
    (written,) = cache.glob("*.json")
    assert len(first.read_text().splitlines()) > 0
    # mark the cached rows: the second job must read them from disk, not recompute them
    data = json.loads(written.read_text())
    for row in data["rows"]:
        row["value"] = 0.123
    written.write_text(json.dumps(data))
    runner._BASE_RESULTS.clear()  # as in a fresh process
    second = runner.execute(plan("insecure_hidden"), tmp_path / "1", base_cache=cache)
    rows = [json.loads(line) for line in second.read_text().splitlines()]
    rows = [r for r in rows if r["probe"] != "health"]  # checked in every run, never cached
    assert rows and {r["value"] for r in rows} == {0.123}
    assert {r["framing"] for r in rows} == {"insecure_hidden"}  # labelled as the second job
