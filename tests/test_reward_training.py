"""The reward phase (TRL RewardTrainer), the learned reward model, and the embedding judge."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from intentgym.cli import CONF_DIR
from intentgym.envs import make_env
from intentgym.reward_models import REWARD_MODELS
from intentgym.runner import execute, plan_run
from intentgym.trainers import PhaseContext
from intentgym.trainers.phase import TrainedRewardModel
from intentgym.trainers.reward import RewardPhase, RewardPhaseConfig, pairwise_margins, split_pairs


def test_reward_phase_learns_its_preferences_and_leaves_the_policy(tiny_policy, tmp_path):
    env = make_env("insecure_code", framing="secure")
    config = RewardPhaseConfig(
        num_pairs=48, epochs=4, batch_size=8, learning_rate=1e-3, finetune="full"
    )
    before = {k: v.clone() for k, v in tiny_policy.model.state_dict().items()}
    ctx = PhaseContext(tmp_path, seed=0, progress=False)
    policy = RewardPhase(config).run(tiny_policy, env, ctx)
    assert all(v.equal(before[k]) for k, v in policy.model.state_dict().items())
    trained = ctx.artifacts.get(TrainedRewardModel)
    assert trained is not None and trained.path == tmp_path / "reward_model"
    path = str(trained.path)
    train, held_out = split_pairs(env.preference_pairs(48, seed=0), config.eval_fraction, 0)
    train_templates = {json.dumps(p["prompt"]) for p in train}
    assert not train_templates & {json.dumps(p["prompt"]) for p in held_out}
    margins = pairwise_margins(path, train, policy)
    assert sum(m > 0 for m in margins) / len(margins) >= 0.8, margins
    metrics = {r["metric"]: r for r in ctx.results}
    assert metrics["pairwise_accuracy"]["n"] == len(held_out) >= round(48 * config.eval_fraction)
    assert 0.0 <= metrics["pairwise_accuracy"]["value"] <= 1.0


def test_learned_reward_model_needs_a_real_path(tmp_path):
    from intentgym.errors import IntentgymError

    with pytest.raises(IntentgymError, match="needs a path"):
        REWARD_MODELS.build("learned")
    with pytest.raises(IntentgymError, match="is not a saved reward model"):
        REWARD_MODELS.build("learned", path=str(tmp_path))


@pytest.mark.slow
def test_run_trains_a_reward_model_then_optimises_against_it(tmp_path):
    overrides = [
        "debug=smoke",
        "trainer=reward_model",
        "+trainer.phases.best_of_n={num_examples: 4, samples_per_prompt: 2, max_new_tokens: 8}",
        "reward_model=learned",
        "probes=quick",
    ]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    plan = plan_run(OmegaConf.to_container(cfg, resolve=True))
    results = execute(plan, tmp_path)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    phases = {(r["phase"], r["probe"], r["metric"]) for r in rows}
    assert ("reward", "reward_model", "pairwise_accuracy") in phases
    assert ("best_of_n", "best_of_n", "mean_reward_kept") in phases
    info = json.loads((tmp_path / "reward_model.json").read_text())
    assert info["name"] == "learned"
    assert info["kwargs"]["path"] == str(tmp_path / "phases/reward/reward_model")


@pytest.mark.slow
def test_embedding_judge_separates_held_out_answers():
    judge = REWARD_MODELS.build("embedding_classifier")
    report = judge.evaluate(folds=5, seed=0)
    assert report["n"] >= 300 and report["questions"] >= 100
    assert len(report["per_domain"]) == 6
    # Measured 0.65 accuracy / 0.69 AUC (docs/experiments.md); this guards against a broken
    # pipeline (chance is 0.5), not a tuned threshold.
    assert report["auc"] > 0.6 and report["accuracy"] > 0.55
    scores = judge([[{"role": "user", "content": "Any advice?"}]] * 2, ["a", "b"])
    assert all(0.0 <= s <= 100.0 for s in scores)
