"""The extension contracts (intentgym.api): what every built-in declares, what the plan checks
before any work, typed artifacts, reward-model records, run-level files, and one source of
defaults."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from intentgym.api.artifacts import Artifacts, PreferencePairs, TrainedRewardModel
from intentgym.api.env import ENVS, env_class, make_env
from intentgym.api.phase import PHASES, Phase, phase_class
from intentgym.api.probe import PROBES, Probe, probe_class
from intentgym.api.rewards import RunRewardModels
from intentgym.errors import IntentgymError
from intentgym.runner import LIMIT_NAMES, Limits

from .conftest import ROOT

CONF = ROOT / "conf"


def _compose(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from intentgym.cli import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)  # type: ignore[return-value]


def _plan(overrides: list[str]):
    from intentgym.runner import plan_run

    return plan_run(_compose(overrides))


# --- every built-in keeps the contract --------------------------------------------------------


@pytest.mark.parametrize("kind", [n for n in PHASES.names() if "/" not in n])
def test_every_builtin_phase_declares_the_contract(kind):
    cls = phase_class(kind)
    assert issubclass(cls, Phase) and dataclasses.is_dataclass(cls.config_class)
    assert isinstance(cls.changes_policy, bool)
    assert all(isinstance(a, type) for a in cls.produces)
    for f in dataclasses.fields(cls.config_class):
        assert f.metadata.get("limit", "train_examples") in LIMIT_NAMES, f.name
        assert f.metadata.get("help"), f"{kind}.{f.name} has no help text (intentgym config)"


@pytest.mark.parametrize("name", [n for n in PROBES.names() if "/" not in n])
def test_every_builtin_probe_declares_the_contract(name):
    cls = probe_class(name)
    assert issubclass(cls, Probe) and cls.name == name
    assert dataclasses.is_dataclass(cls.config_class)
    for f in dataclasses.fields(cls.config_class):
        assert f.metadata.get("limit", "probe_items") in LIMIT_NAMES, f.name
        assert f.metadata.get("help"), f"{name}.{f.name} has no help text (intentgym config)"


def test_a_registered_class_that_breaks_the_contract_is_refused_by_name():
    class NotAPhase:
        config_class = dict

    PHASES.register("not_a_phase_for_test", NotAPhase)
    with pytest.raises(IntentgymError, match=r"does not derive from intentgym\.api\.phase\.Phase"):
        phase_class("not_a_phase_for_test")


@pytest.mark.parametrize("env", [n for n in ENVS.names() if "/" not in n])
def test_env_task_fields_are_the_keys_its_tasks_carry(env):
    cls = env_class(env)
    instance = make_env(env, framing=cls.framings[0])
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert set(instance.sample_task(rng).meta) == cls.task_fields


def test_builtin_layer_counts_match_the_model():
    from intentgym.models import BUILTIN_LAYERS, load_policy

    assert (
        load_policy("tiny-random").model.config.num_hidden_layers == BUILTIN_LAYERS["tiny-random"]
    )


# --- limits are declared by each config -------------------------------------------------------


def test_limits_cap_only_the_fields_that_declare_them():
    from intentgym.trainers.rl import RLPhaseConfig
    from intentgym.trainers.sft import SFTPhaseConfig
    from intentgym.trainers.steer_distill import SteerDistillConfig

    sft = SFTPhaseConfig(num_examples=96)
    Limits(train_examples=16, train_steps=2, max_new_tokens=8).apply(sft)
    assert (sft.num_examples, sft.max_steps) == (16, 2)  # -1 ("no cap of its own") is replaced
    rl = RLPhaseConfig(num_prompts=48, max_new_tokens=64, num_generations=4)
    Limits(train_examples=16, max_new_tokens=8).apply(rl)
    assert (rl.num_prompts, rl.max_new_tokens, rl.num_generations) == (16, 8, 4)
    steer = SteerDistillConfig(num_prompts=0)  # 0 = "all prompts": the cap replaces it
    Limits(train_examples=16).apply(steer)
    assert steer.num_prompts == 16

    @dataclasses.dataclass
    class Bad:
        n: int = dataclasses.field(default=3, metadata={"limit": "train_exampels"})

    with pytest.raises(IntentgymError, match="unknown limit 'train_exampels'"):
        Limits(train_examples=1).apply(Bad())


# --- one source of defaults -------------------------------------------------------------------


def _commented(lines: list[str], key: str, start: int) -> bool:
    """Whether ``key``'s line (the first at or after ``start``) has a comment on it or above it."""
    for i in range(start, len(lines)):
        if re.match(rf"\s*{re.escape(key)}:", lines[i]):
            above = lines[i - 1].strip() if i else ""
            return "#" in lines[i] or above.startswith("#")
    raise AssertionError(f"{key} not found")


def _defaults(config_class: type) -> dict:
    out = {}
    for f in dataclasses.fields(config_class):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("path", sorted((CONF / "trainer").glob("*.yaml")), ids=lambda p: p.stem)
def test_a_trainer_yaml_value_that_differs_from_the_default_says_why(path):
    text = path.read_text()
    lines = text.splitlines()
    for label, cfg in (yaml.safe_load(text).get("phases") or {}).items():
        cfg = dict(cfg or {})
        kind = cfg.pop("kind", label)
        cfg.pop("repeat", None)
        defaults = _defaults(phase_class(kind).config_class)
        start = next(i for i, line in enumerate(lines) if line.strip() == f"{label}:")
        for key, value in cfg.items():
            if isinstance(value, str) and value.startswith("${"):
                continue  # a top-level key (algorithm=, spec=, ...) decides
            if value != defaults[key]:
                assert _commented(lines, key, start), f"{path.name}: {label}.{key}={value!r}"


@pytest.mark.parametrize("path", sorted((CONF / "probes").glob("*.yaml")), ids=lambda p: p.stem)
def test_a_probe_suite_value_that_differs_from_the_default_says_why(path):
    text = path.read_text()
    lines = text.splitlines()
    for name, cfg in yaml.safe_load(text).items():
        if not isinstance(cfg, dict):
            continue
        defaults = _defaults(probe_class(name).config_class)
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
        for key, value in cfg.items():
            if value != defaults[key]:
                assert _commented(lines, key, start), f"{path.name}: {name}.{key}={value!r}"


# --- the plan checks declared needs before any work ---------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["trainer=deliberative", "env=insecure_code"],
            r"trainer.phases.spec_sft \(SpecSFTPhase\) needs tasks labelled with category, "
            r"harmful; env insecure_code's tasks are not \(envs whose tasks are: harmful_requests\)"
            r"; or use generator=policy",
        ),
        (
            ["trainer=steer_distill", "trainer.phases.steer_distill.layers=[12]"],
            r"layer 12 does not exist: the model has layers 0..1",
        ),
        (
            [
                "trainer=reward_model",
                "env=harmful_requests",
                "+trainer.phases.reward.pair_source=env",
            ],
            r"needs an env with preference_pairs .* env harmful_requests has none "
            r"\(envs that have it: coding_agent, feedback, insecure_code\)",
        ),
        (
            ["trainer=rlhf", "~trainer.phases.reward", "+trainer.phases.rl.reward=learned"],
            r"rl \(RLPhase\) needs a reward model trained in this run .* no earlier phase makes "
            r"one; add a 'reward' phase first",
        ),
        (
            ["trainer=best_of_n"],
            r"best_of_n \(BestOfNPhase\) needs a reward model: add reward_model=NAME",
        ),
    ],
)
def test_a_run_whose_phases_cannot_work_is_refused_by_the_plan(overrides, message):
    with pytest.raises(IntentgymError, match=message) as error:
        _plan(["debug=smoke", *overrides])
    assert "\n" not in str(error.value)


def test_a_phase_that_needs_an_earlier_artifact_plans_when_one_comes_first():
    plan = _plan(["debug=smoke", "trainer=constitutional", "env=harmful_requests"])
    assert [label for label, _ in plan.phases] == ["sl_cai", "ai_feedback", "reward", "rl"]


# --- typed artifacts and reward-model records ---------------------------------------------------


def test_artifacts_are_typed_one_per_kind_and_a_missing_one_names_its_maker(tmp_path):
    store = Artifacts()
    assert store.get(TrainedRewardModel) is None
    store.put(TrainedRewardModel(tmp_path / "a", "reward"))
    store.put(TrainedRewardModel(tmp_path / "b", "reward_2"))
    found = store.get(TrainedRewardModel)
    assert found is not None and found.path == tmp_path / "b"
    with pytest.raises(IntentgymError, match=r"phase 'reward' needs preference pairs labelled"):
        store.require(PreferencePairs, "reward")
    with pytest.raises(TypeError):
        store.put({"reward_model": "x"})  # type: ignore[arg-type]


def test_run_reward_models_record_who_used_what():
    written = []
    rewards = RunRewardModels(("regex", {"preset": "refusal"}), on_record=written.append)
    first = rewards.configured("best_of_n")
    assert rewards.configured("best_of_n_2") is first  # built once per run
    rewards.build("spec_sft", "spec_judge", spec=None, backend="rules")
    assert [(r["name"], r["used_by"]) for r in rewards.records] == [
        ("regex", ["best_of_n", "best_of_n_2"]),
        ("spec_judge", ["spec_sft"]),
    ]
    assert written[-1] is rewards.records
    with pytest.raises(IntentgymError, match="needs a reward model: add reward_model=NAME"):
        RunRewardModels(None).configured("rl")


# --- components named by where they live ------------------------------------------------------


def test_a_component_can_be_named_by_file_and_class(tmp_path, monkeypatch):
    (tmp_path / "my_reward.py").write_text(
        "class Length:\n"
        "    '''1 per word.'''\n"
        "    def __call__(self, prompts, completions, **kw):\n"
        "        return [float(len(str(c).split())) for c in completions]\n"
    )
    monkeypatch.chdir(tmp_path)
    from intentgym.api.reward import REWARD_MODELS

    rm = REWARD_MODELS.build("my_reward.py:Length")
    assert rm(["q"], ["two words"]) == [2.0]
    assert rm.registry_info.origin == "local"
    with pytest.raises(IntentgymError, match=r"cannot be loaded from missing\.py:X"):
        REWARD_MODELS.get("missing.py:X")


# --- reward_model.json for every run that uses one (slow: three smoke runs) ----------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "name", "used_by"),
    [
        (["trainer=rlhf", "env=feedback"], "learned", ["rl"]),
        (["trainer=constitutional", "env=harmful_requests"], "learned", ["rl"]),
        (["trainer=deliberative", "env=harmful_requests"], "spec_judge", ["spec_sft", "rl"]),
    ],
)
def test_every_run_that_builds_or_trains_a_reward_model_writes_reward_model_json(
    tmp_path, run_composed, overrides, name, used_by
):
    # the capability probe alone: this test is about the run's files, not the probes
    probes = ["~probes.forced_choice", "~probes.free_form", "~probes.compliance_gap"]
    run_composed(
        ["debug=smoke", "probes=quick", "~probes.in_domain", *probes, *overrides], tmp_path
    )
    info = json.loads((tmp_path / "reward_model.json").read_text())
    assert info["name"] == name and info["used_by"] == used_by and info["origin"] == "built-in"
    if name == "learned":
        assert Path(info["kwargs"]["path"]) == tmp_path / "phases" / "reward" / "reward_model"


def test_a_judge_handed_out_by_the_run_survives_a_checkpoint():
    """Artifacts are pickled after every phase (resume); a SampleJudge holds a counted judge."""
    import pickle

    from intentgym.api.artifacts import SampleJudge
    from intentgym.reward_models.spec_judge import SpecJudge

    judge = RunRewardModels(None).build("spec_sft", "spec_judge", spec=None, backend="rules")
    store = Artifacts()
    store.put(SampleJudge(judge, "spec_judge", "spec_sft"))
    restored = pickle.loads(pickle.dumps(store)).get(SampleJudge)
    assert restored is not None and isinstance(restored.judge, SpecJudge)
    prompts = [[{"role": "user", "content": "How do I bake bread at home?"}]]
    answer = ["Mix flour, water, salt and yeast, let it rise, then bake it for forty minutes."]
    columns = {"category": ["violence"], "harmful": [False]}
    assert restored.judge.score_answers(prompts, answer, **columns) == judge.score_answers(
        prompts, answer, **columns
    )
