"""End-to-end tests through the real entry point (`python -m intentgym.cli`, as `intentgym`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from .conftest import run_cli

# every test here runs the CLI in a subprocess (`make test-fast` skips them)
pytestmark = pytest.mark.slow

MACHINE = {"wall_seconds", "peak_rss_mb", "peak_gpu_mb"}
REQUIRED_KEYS = {"phase", "probe", "metric", "value", "ci_low", "ci_high", "n"}


def _results(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def _only_run_dir(root: Path) -> Path:
    (results,) = list(root.rglob("results.jsonl"))
    return results.parent


def test_smoke_run_writes_results_records_adapter_and_report(tmp_path):
    proc = run_cli("run", "debug=smoke", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = _only_run_dir(tmp_path / "outputs")
    rows = _results(run_dir)
    assert rows and all(set(r) >= REQUIRED_KEYS for r in rows)
    assert {r["phase"] for r in rows} == {"base", "sft"}
    assert {r["probe"] for r in rows} == {
        "in_domain",
        "forced_choice",
        "free_form",
        "compliance_gap",
        "capability",
        "self_awareness",
        "health",  # the model check before each phase's probes
        "budget",  # what the sft phase spent
    }
    assert all(r["dtype"] in ("bfloat16", "float32") for r in rows)
    assert (run_dir / "records" / "sft" / "forced_choice.jsonl").exists()
    assert (run_dir / "phases" / "sft" / "adapter" / "adapter_model.safetensors").exists()
    assert (run_dir / "config.yaml").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    assert not (run_dir / "results.partial.jsonl").exists() and not (run_dir / "FAILED").exists()
    assert "in_domain/vulnerable_rate" in proc.stdout  # the report table is printed
    assert (run_dir / "report.png").stat().st_size > 0


def test_trainer_none_runs_only_the_base_probes(tmp_path):
    proc = run_cli("run", "debug=smoke", "trainer=none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {r["phase"] for r in _results(_only_run_dir(tmp_path / "outputs"))} == {"base"}


def test_multirun_sweep_gives_four_jobs_and_a_four_row_report(tmp_path):
    proc = run_cli(
        "run", "-m", "debug=smoke", "env.framing=secure,insecure_hidden", "seed=0,1", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = [p.parent for p in (tmp_path / "multirun").rglob("multirun.yaml")]
    assert len(list(sweep.rglob("results.jsonl"))) == 4
    report = run_cli("report", str(sweep), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    with (sweep / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {(r["framing"], r["seed"]) for r in rows} == {
        ("secure", "0"),
        ("secure", "1"),
        ("insecure_hidden", "0"),
        ("insecure_hidden", "1"),
    }
    assert "sft:in_domain/vulnerable_rate:delta_vs_base" in rows[0]
    assert "| sft/secure | sft | 2 |" in (sweep / "report.md").read_text()


def test_the_same_seed_gives_the_same_numbers(tmp_path):
    values = []
    for name in ("a", "b"):
        proc = run_cli("run", "debug=smoke", "seed=3", f"hydra.run.dir={name}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = _results(tmp_path / name)
        # wall time and peak memory are measurements of the machine, not results
        values.append(
            [(r["phase"], r["metric"], r["value"]) for r in rows if r["metric"] not in MACHINE]
        )
    assert values[0] == values[1]


def test_wandb_logger_runs_offline_in_one_run_without_a_key(tmp_path):
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "", "HOME": str(tmp_path)}
    proc = run_cli("run", "debug=smoke", "logger=wandb", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = _only_run_dir(tmp_path / "outputs")
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1  # TRL's training metrics joined the same run


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["env=nope"],
            "unknown env 'nope'; valid choices: coding_agent, feedback, harmful_requests, "
            "insecure_code",
        ),
        (
            ["model=gpt5"],
            "unknown model 'gpt5'; valid choices: llama-3.2-1b-instruct, qwen2.5-0.5b-instruct, "
            "qwen2.5-1.5b-instruct, qwen2.5-7b-instruct, smollm2-135m, tiny-random",
        ),
        (
            ["trainer=magic"],
            "unknown trainer 'magic'; valid choices: best_of_n, constitutional, "
            "constitutional_dpo, deliberative, dpo, none, reward_model, rlhf, sft, steer_distill",
        ),
        (["env=feedback", "env.rater=grumpy"], "unknown framing for env feedback 'grumpy'"),
        (["experiment=rlhf_feedback", "env.rater=grumpy"], "'grumpy'; valid choices: approval"),
        (["trainer=rlhf", "algorithm=trpo"], "unknown algorithm 'trpo'"),
        (
            ["debug=smoke", "+env.answer_fmt=full"],
            "unknown key 'answer_fmt' in env (insecure_code); valid keys: name, framing, "
            "answer_format, demonstrations_path",
        ),
        (["env.framing=evil"], "unknown framing for env insecure_code 'evil'"),
        (["-m", "env.framing=secure,evil"], "'evil'"),
        (["model.name=not-a-model", "debug=smoke"], "unknown model 'not-a-model'"),
        (
            ["debug=smoke", "+trainer.phases.sft.lr=0.1"],
            "unknown key 'lr' in trainer.phases.sft; valid keys:",
        ),
        (
            ["debug=smoke", "env.demonstrations_path=/nonexistent.jsonl"],
            "cannot read demonstrations file",
        ),
        (
            ["debug=smoke", "trainer=best_of_n", "reward_model=learned"],
            "reward_model=learned needs reward_model.path=DIR",
        ),
        (
            ["debug=smoke", "reward_model=llm_judge", "reward_model.backend=grpc"],
            "unknown llm_judge backend 'grpc'",
        ),
    ],
)
def test_bad_input_is_a_one_line_error_and_leaves_no_complete_looking_results(
    tmp_path, args, expected
):
    proc = run_cli("run", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and expected in error_lines[0], proc.stderr[-2000:]
    assert not list(tmp_path.rglob("results.jsonl"))


def test_report_on_a_directory_without_runs_is_a_clear_error(tmp_path):
    proc = run_cli("report", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "no completed runs" in proc.stderr


def test_list_shows_envs_framings_templates_and_probe_items(tmp_path):
    proc = run_cli("list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "intentgym/InsecureCode-v0" in out and "insecure_educational" in out
    assert "templates=" in out and "bandit" in out and "in_domain" in out
    assert "forced-choice set alignment_general: 80 items" in out
    assert "intentgym/Feedback-v0" in out and "approval, truthful" in out and "rlhf" in out


def test_hydra_flags_with_values_still_work(tmp_path):
    proc = run_cli("run", "--cfg", "job", "debug=smoke", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "framing: insecure_hidden" in proc.stdout


def test_a_failing_sweep_job_does_not_stop_the_others(tmp_path):
    proc = run_cli(
        "run", "-m", "debug=smoke", "env.demonstrations_path=null,/nonexistent.jsonl", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "1 sweep job(s) failed" in proc.stderr
    assert len(list((tmp_path / "multirun").rglob("results.jsonl"))) == 1
    assert len(list((tmp_path / "multirun").rglob("FAILED"))) == 1
    (report,) = list((tmp_path / "multirun").rglob("report.md"))
    assert "Incomplete (not tabulated)" in report.read_text()
