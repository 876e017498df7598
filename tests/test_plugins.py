"""The reward-model registry: entry-point plugins, name collisions, lazy imports, CLI selection."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from intentgym.errors import IntentgymError
from intentgym.registry import Registry
from tests.conftest import run_cli

PLUGIN = "intentgym_fixture_plugin"
PLUGIN_DIST = "intentgym-fixture-plugin"


def _require_plugin() -> None:
    if importlib.util.find_spec(PLUGIN) is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install tests/fixtures/plugin (make test does)")
        pytest.skip("fixture plugin not installed: pip install ./tests/fixtures/plugin")


def _fake_entry_points(monkeypatch, eps):
    import intentgym.registry as registry_module

    def entry_points(group: str):
        return [
            SimpleNamespace(name=n, value=v, dist=SimpleNamespace(name=d))
            for (n, v, d) in eps
            if group == "test.group"
        ]

    monkeypatch.setattr(registry_module.importlib.metadata, "entry_points", entry_points)


def test_plugins_are_found_lazily_and_collisions_need_qualified_names(monkeypatch):
    _fake_entry_points(
        monkeypatch,
        [
            ("judge", "json:JSONDecoder", "pkg-a"),
            ("judge", "json:JSONEncoder", "Pkg_B"),
            ("solo", "json:JSONDecoder", "pkg-a"),
            ("builtin", "json:JSONEncoder", "pkg-a"),
        ],
    )
    registry: Registry[object] = Registry("thing", "test.group")
    registry.register("builtin", dict)
    assert registry.get("builtin") is dict  # a hit never reads the entry points
    assert not registry._plugins_loaded
    assert registry.get("solo").__name__ == "JSONDecoder"  # a miss does
    assert registry.origin("solo") == "pkg-a"
    with pytest.raises(
        IntentgymError, match="several plugins; choose one of: pkg-a/judge, pkg-b/judge"
    ):
        registry.get("judge")
    assert registry.get("pkg-b/judge").__name__ == "JSONEncoder"
    # A plugin never takes a built-in's name; it stays reachable by its qualified name.
    assert registry.get("builtin") is dict
    assert registry.get("pkg-a/builtin").__name__ == "JSONEncoder"
    with pytest.raises(
        IntentgymError, match="unknown thing 'nope'; valid choices: builtin, pkg-a/builtin"
    ):
        registry.get("nope")


def test_uninstalled_plugin_is_absent(monkeypatch):
    _fake_entry_points(monkeypatch, [])
    registry: Registry[object] = Registry("thing", "test.group")
    registry.register("builtin", dict)
    assert registry.names() == ["builtin"]


def test_constructor_arguments_are_checked_and_recorded():
    from intentgym.reward_models import REWARD_MODELS

    regex = REWARD_MODELS.build("regex", patterns=["forbidden"], preset=None)
    assert regex.registry_info.as_dict() == {
        "name": "regex",
        "origin": "built-in",
        "kwargs": {"patterns": ["forbidden"], "preset": None},
    }
    with pytest.raises(
        IntentgymError,
        match="unknown argument 'pattern' for reward model 'regex'; valid arguments: ignore_case, negate, patterns, preset",
    ):
        REWARD_MODELS.build("regex", pattern="x")


def test_importing_intentgym_imports_no_backend_or_plugin():
    code = (
        "import sys, intentgym, intentgym.reward_models as r; r.REWARD_MODELS.names();"
        "print(sorted(m for m in ('sentence_transformers', 'sklearn', 'httpx', "
        f"'{PLUGIN}', 'intentgym.reward_models.llm_judge') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.slow
def test_list_shows_builtins_and_the_installed_plugin(tmp_path):
    _require_plugin()
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("\nreward models:\n", 1)[1].split("\nprobes:\n")[0]
    for name in (
        "bandit",
        "composite",
        "embedding_classifier",
        "insecure_code_task",
        "learned",
        "llm_judge",
        "regex",
    ):
        assert f"  {name} " in section
    assert "short_answer" in section and f"[plugin: {PLUGIN_DIST}" in section


@pytest.mark.slow
def test_a_run_selects_the_plugin_by_name(tmp_path):
    _require_plugin()
    out = run_cli(
        "run",
        "debug=smoke",
        "trainer=best_of_n",
        "reward_model=short_answer",
        "+reward_model.target_words=5",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "run"
    assert json.loads((run / "reward_model.json").read_text()) == {
        "name": "short_answer",
        "origin": PLUGIN_DIST,
        "kwargs": {"target_words": 5},
        "used_by": ["best_of_n"],
    }
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    kept = next(r for r in rows if r["metric"] == "mean_reward_kept")
    every = next(r for r in rows if r["metric"] == "mean_reward_all")
    assert kept["phase"] == "best_of_n" and kept["value"] >= every["value"]
    samples = [json.loads(line) for line in (run / "phases/best_of_n/samples.jsonl").open()]
    assert all(s["reward"] <= 0 for s in samples) and any(s["kept"] for s in samples)
    assert (run / "phases/best_of_n/adapter/adapter_model.safetensors").exists()


@pytest.mark.slow
def test_unknown_reward_model_and_argument_fail_clearly(tmp_path):
    out = run_cli("run", "debug=smoke", "reward_model=nope", cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown reward_model 'nope'; valid choices:" in out.stderr and "llm_judge" in out.stderr
    out = run_cli("run", "debug=smoke", "reward_model=regex", "+reward_model.bogus=1", cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown argument 'bogus' for reward model 'regex'" in out.stderr


@pytest.mark.slow
def test_best_of_n_without_a_reward_model_fails_clearly(tmp_path):
    out = run_cli("run", "debug=smoke", "trainer=best_of_n", cwd=tmp_path)
    assert out.returncode == 2
    assert (
        "trainer.phases.best_of_n (BestOfNPhase) needs a reward model: add reward_model=NAME"
        in out.stderr
    )
    assert not list(tmp_path.rglob("results*.jsonl"))  # refused by the plan, before any work


@pytest.mark.slow
def test_reward_model_arguments_reach_the_wandb_config(tmp_path):
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "", "HOME": str(tmp_path)}
    out = run_cli(
        "run",
        "debug=smoke",
        "logger=wandb",
        "reward_model=regex",
        "reward_model.patterns=[sorry]",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # Offline, W&B keeps config updates only in its binary run log (protobuf records with the
    # values as JSON strings); wandb 0.31 has no public reader for it, so look for the JSON.
    (log,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    data = log.read_bytes()
    assert b'{"name":"regex","origin":"built-in","kwargs":{' in data
    assert b'"patterns":["sorry"]' in data


def test_registry_reward_models_drop_into_trl_grpo(tiny_policy, tmp_path):
    """The interface claim: a registry reward model (or plugin) is a valid TRL reward function."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from intentgym.reward_models import REWARD_MODELS

    funcs = [
        REWARD_MODELS.build("regex", patterns=["a"], preset=None),
        REWARD_MODELS.build("bandit"),
    ]
    if importlib.util.find_spec(PLUGIN) is not None:
        funcs.append(REWARD_MODELS.build("short_answer", target_words=3))
    data = Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": f"Write line {i}"}], "topic": str(i)}
            for i in range(4)
        ]
    )
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=tiny_policy.model,
        reward_funcs=funcs,
        args=args,
        train_dataset=data,
        processing_class=tiny_policy.tokenizer,
    )
    trainer.train()
    logged = trainer.state.log_history[0]
    for func in funcs:
        assert f"rewards/{type(func).__name__}/mean" in logged
