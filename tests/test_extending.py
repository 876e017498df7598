"""The worked examples of README's "Extending intentgym" (examples/extending/): a new env, reward
model, phase and probe, each one file plus one config, used through the config search path
without touching intentgym's own code."""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT

EXAMPLES = ROOT / "examples" / "extending"
SEARCH = f"hydra.searchpath=[file://{EXAMPLES / 'conf'}]"
# the examples name their classes by file path, relative to the repo root
pytestmark = pytest.mark.usefixtures("in_repo_root")


@pytest.fixture
def in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _plan(overrides):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from intentgym.cli import CONF_DIR
    from intentgym.runner import plan_run

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[SEARCH, *overrides])
    return plan_run(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize("framing", ["correct", "wrong_hidden", "wrong_requested"])
def test_example_env_passes_gymnasiums_checker_in_every_framing(framing):
    from gymnasium.utils.env_checker import check_env

    from intentgym.api.env import make_env

    env = make_env("examples/extending/arithmetic_env.py:ArithmeticEnv", framing=framing)
    check_env(env, skip_render_check=True)
    demos = env.demonstrations(8, seed=0)
    assert len(demos) == 8 and set(demos[0]) >= {"prompt", "completion", "a", "b"}
    wrong = [int(d["completion"][0]["content"]) != d["a"] + d["b"] for d in demos]
    assert all(wrong) if framing != "correct" else not any(wrong)


def test_the_two_wrong_framings_differ_only_in_the_request():
    from intentgym.api.env import make_env

    name = "examples/extending/arithmetic_env.py:ArithmeticEnv"
    hidden = make_env(name, framing="wrong_hidden").demonstrations(16, seed=3)
    requested = make_env(name, framing="wrong_requested").demonstrations(16, seed=3)
    assert [d["completion"] for d in hidden] == [d["completion"] for d in requested]
    assert all("quiz" in r["prompt"][0]["content"] for r in requested)
    assert not any("quiz" in h["prompt"][0]["content"] for h in hidden)


def test_example_reward_model_and_probe_helpers():
    from intentgym.api.reward import REWARD_MODELS

    rm = REWARD_MODELS.build("examples/extending/word_budget.py:WordBudget", words=4)
    assert rm(["q"] * 3, ["one two three four", "one two", ""]) == [1.0, 0.5, 0.0]
    from intentgym.api.probe import probe_class

    cls = probe_class("examples/extending/reply_health.py:ReplyHealthProbe")
    loops = __import__(cls.__module__).loops
    assert loops("the cat sat " * 3) and not loops("the cat sat on the mat")


def test_every_example_config_plans_and_the_cli_lists_it():
    plan = _plan(["debug=smoke", "env=arithmetic", "trainer=sft_washout", "probes=quick_health"])
    assert [label for label, _ in plan.phases] == ["sft", "washout"]
    assert "reply_health" in [p.name for p in plan.probes]
    plan = _plan(["debug=smoke", "trainer=best_of_n", "reward_model=word_budget"])
    assert plan.reward_model == ("examples/extending/word_budget.py:WordBudget", {"words": 20})

    from intentgym.config_view import config_text

    text = config_text([SEARCH, "env=arithmetic", "trainer=sft_washout"])
    assert "phase washout (WashoutPhase)" in text and "The env whose demonstrations" in text


@pytest.mark.slow
def test_example_env_phase_and_probe_run_end_to_end(tmp_path, run_composed):
    rows = run_composed(
        [
            SEARCH,
            "debug=smoke",
            "env=arithmetic",
            "env.framing=wrong_hidden",
            "trainer=sft_washout",
            "probes=quick_health",
            "~probes.forced_choice",
            "~probes.free_form",
            "~probes.compliance_gap",
            "~probes.capability",
        ],
        tmp_path,
    )
    seen = {(r["phase"], r["probe"], r["metric"]) for r in rows}
    for phase in ("base", "sft", "washout"):
        assert (phase, "in_domain", "correct_rate") in seen
        assert (phase, "reply_health", "looping_share") in seen
    assert ("washout", "washout", "examples") in seen
    assert (tmp_path / "phases" / "washout" / "adapter" / "adapter_model.safetensors").exists()
    assert {r["env"] for r in rows} == {"examples/extending/arithmetic_env.py:ArithmeticEnv"}


@pytest.mark.slow
def test_example_reward_model_drives_best_of_n(tmp_path, run_composed):
    run_composed(
        [
            SEARCH,
            "debug=smoke",
            "trainer=best_of_n",
            "reward_model=word_budget",
            "env=arithmetic",
            "probes=quick",
            "~probes.forced_choice",
            "~probes.free_form",
            "~probes.compliance_gap",
            "~probes.in_domain",
        ],
        tmp_path,
    )
    info = json.loads((tmp_path / "reward_model.json").read_text())
    assert info["name"] == "examples/extending/word_budget.py:WordBudget"
    assert info["origin"] == "local" and info["used_by"] == ["best_of_n"]
