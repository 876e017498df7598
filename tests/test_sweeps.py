"""Every shipped config composes and passes plan-time validation, without training or loading a
model: each experiment and every job of its sweep, every trainer x env under debug=smoke, every
probes suite and every model option. In the spirit of lightning-hydra-template's
tests/test_sweeps.py, at the config level only (``plan_run`` validates a whole config in well under
a second). Options are found by glob, so a new YAML file is covered without editing this file."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from intentgym.cli import CONF_DIR, register_plugin_configs
from intentgym.errors import IntentgymError
from intentgym.runner import plan_run


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


EXPERIMENTS = _options("experiment")
TRAINERS = _options("trainer")
ENVS = _options("env")
PROBES = _options("probes")
MODELS = _options("model")

# (trainer, env) combinations the plan refuses by design (the trainer needs something the env
# lacks), each with the start of the one-line refusal (plain text, not a regex). Every other
# combination must plan.
_NEEDS_LABELS = "trainer.phases.spec_sft (SpecSFTPhase) needs tasks labelled with category, harmful"
EXPECTED_REFUSALS: dict[tuple[str, str], str] = {
    (
        "deliberative",
        "coding_agent",
    ): "trainer.phases.spec_sft (SpecSFTPhase) needs tasks labelled with harmful",
    ("deliberative", "feedback"): _NEEDS_LABELS,
    ("deliberative", "insecure_code"): _NEEDS_LABELS,
}
# Trainers that need more than a trainer and an env to run (best_of_n: a reward model to rank by).
TRAINER_EXTRA: dict[str, list[str]] = {"best_of_n": ["reward_model=regex"]}


@pytest.fixture(scope="module", autouse=True)
def _plugin_configs() -> None:
    # plugin reward models have no YAML file; this puts them in Hydra's ConfigStore (idempotent)
    register_plugin_configs()


def _compose(overrides: list[str], *, hydra_config: bool = False) -> Any:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra_config)


def _plan(overrides: list[str]) -> Any:
    return plan_run(OmegaConf.to_container(_compose(overrides), resolve=True))


def _sweep_params(experiment: str) -> dict[str, str]:
    """hydra.sweeper.params as the experiment's YAML writes them ({} when it does not sweep)."""
    data = yaml.safe_load((CONF_DIR / "experiment" / f"{experiment}.yaml").read_text()) or {}
    params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    return {str(k): str(v) for k, v in params.items()}


def _sweep_jobs(params: dict[str, str]) -> list[list[str]]:
    """Each job's overrides, expanded as Hydra's basic sweeper does (cartesian product)."""
    parser = OverridesParser.create()
    axes = []
    for override in parser.parse_overrides([f"{k}={v}" for k, v in params.items()]):
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        axes.append([f"{override.key_or_group}={v}" for v in values])
    return [list(job) for job in itertools.product(*axes)]


EXPERIMENT_JOBS = [
    pytest.param(name, job, id=f"{name}[{','.join(job)}]" if job else name)
    for name in EXPERIMENTS
    for job in _sweep_jobs(_sweep_params(name))
]


def test_options_are_found():
    assert "emergent_misalignment" in EXPERIMENTS and "sft" in TRAINERS
    assert "insecure_code" in ENVS and "quick" in PROBES and "tiny-random" in MODELS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_sweep_params_are_the_ones_expanded_here(experiment):
    """The jobs below are expanded from the YAML; check Hydra composes the same sweep."""
    cfg = _compose([f"experiment={experiment}"], hydra_config=True)
    composed = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
    assert {str(k): str(v) for k, v in composed.items()} == _sweep_params(experiment)
    if composed:
        assert str(cfg.hydra.mode).endswith("MULTIRUN")


@pytest.mark.parametrize(("experiment", "job"), EXPERIMENT_JOBS)
def test_every_experiment_job_plans(experiment, job, monkeypatch):
    """Each job plans; an experiment for a hub model that is not cached here (e.g. the GPU one)
    plans with tiny-random in its place -- everything but the model's availability, which
    test_every_model_option_plans checks."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = str(_compose([f"experiment={experiment}", *job]).model.name)
    swap = ["model=tiny-random"] if "/" in model and not _hub_model_cached(model) else []
    plan = _plan([f"experiment={experiment}", *job, *swap])
    assert plan.phases or plan.trainer_name == "none"


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_name_is_its_file_name(trainer):
    data = yaml.safe_load((CONF_DIR / "trainer" / f"{trainer}.yaml").read_text())
    assert data["name"] == trainer


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_trainer_plans_on_every_env(trainer, env):
    overrides = ["debug=smoke", f"trainer={trainer}", f"env={env}", *TRAINER_EXTRA.get(trainer, [])]
    expected = EXPECTED_REFUSALS.get((trainer, env))
    if expected is not None:
        with pytest.raises(IntentgymError, match=re.escape(expected)) as refused:
            _plan(overrides)
        assert "\n" not in str(refused.value)
        return
    plan = _plan(overrides)
    assert plan.trainer_name == trainer and plan.env.name == env


@pytest.mark.parametrize("probes", PROBES)
def test_every_probes_suite_plans(probes):
    plan = _plan(["debug=smoke", f"probes={probes}"])
    assert plan.probes


def _hub_model_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_option_plans(model, monkeypatch):
    """Built-in models plan; a hub model plans where it is cached and is otherwise refused in one
    line that says how to fetch it (offline here, so no network is tried)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = yaml.safe_load((CONF_DIR / "model" / f"{model}.yaml").read_text())["name"]
    if "/" in name and not _hub_model_cached(name):
        with pytest.raises(IntentgymError, match=rf"^model '{re.escape(name)}' is not in the Hug"):
            _plan(["debug=smoke", f"model={model}"])
        return
    plan = _plan(["debug=smoke", f"model={model}"])
    assert plan.model.name == name
