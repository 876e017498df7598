"""The rl phase (GRPO and RLOO through TRL, our PPO) and the rlhf trainer, end to end."""

from __future__ import annotations

import json

import pytest

from intentgym.api.rewards import RunRewardModels
from intentgym.cli import precheck
from intentgym.envs import make_env
from intentgym.errors import IntentgymError
from intentgym.reward_models import completion_text
from intentgym.trainers import PhaseContext
from intentgym.trainers.rl import CURVES, RLPhase, RLPhaseConfig


def letter_share(prompts, completions, **_):
    """A reward that varies between a random model's samples (so advantages are non-zero)."""
    texts = [completion_text(c) for c in completions]
    return [sum(ch.isalpha() for ch in t) / max(len(t), 1) for t in texts]


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_rl_phase_trains_the_policy_and_logs_its_curves(algorithm, tiny_policy, tmp_path):
    env = make_env("insecure_code", framing="secure")
    config = RLPhaseConfig(
        algorithm=algorithm,
        reward="run",
        num_prompts=4,
        num_generations=2,
        batch_size=4,
        max_steps=2,
        max_new_tokens=8,
        learning_rate=1e-2,
        finetune="lora",
    )
    before = {k: v.clone() for k, v in tiny_policy.model.state_dict().items()}
    ctx = PhaseContext(
        tmp_path, seed=0, progress=False, rewards=RunRewardModels(None, instance=letter_share)
    )
    policy = RLPhase(config).run(tiny_policy, env, ctx)
    after = policy.model.state_dict()
    assert set(after) == set(before)  # the adapter is merged back into a plain model
    assert any(not after[k].equal(before[k]) for k in before)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert set(CURVES) <= set(row)
        assert {"rewards/reward_model", "rewards/env_reward"} <= set(row)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert (tmp_path / "adapter").is_dir()
    metrics = {r["metric"] for r in ctx.results}
    assert {"reward_start", "reward_end", "kl_end", "env_reward_end"} <= metrics


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "a2c"}, "a2c"),
        ({"reward": "gold"}, "gold"),
        ({"num_generations": 1}, "num_generations must be >= 2"),
        ({"batch_size": 6, "num_generations": 4}, "multiple of num_generations"),
        ({"algorithm": "ppo", "use_vllm": True}, "use_vllm"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_rl_config_errors_name_the_bad_value(kwargs, message):
    with pytest.raises(IntentgymError, match=message):
        RLPhaseConfig(**kwargs)


def test_rl_without_any_reward_fails_clearly(tiny_policy, tmp_path):
    env = make_env("insecure_code", framing="secure")
    with pytest.raises(IntentgymError, match="needs a reward model"):
        RLPhase(RLPhaseConfig(max_steps=1)).run(
            tiny_policy, env, PhaseContext(tmp_path, seed=0, progress=False)
        )


def test_unknown_algorithm_is_rejected_before_hydra_starts():
    with pytest.raises(IntentgymError, match=r"algorithm .trpo.; valid choices: grpo, ppo, rloo"):
        precheck(["trainer=rlhf", "algorithm=trpo"])


@pytest.mark.slow
def test_rlhf_on_the_feedback_env_end_to_end(tmp_path, run_composed):
    """sft -> reward (pairs from the policy's samples, ranked by the rater) -> ppo, probes after
    each phase that changes the policy, curves saved with the run."""
    rows = run_composed(
        [
            "debug=smoke",
            "trainer=rlhf",
            "env=feedback",
            "env.rater=truthful",
            "algorithm=ppo",
            "probes=quick",
            "trainer.phases.reward.min_margin=0",
            "trainer.phases.reward.samples_per_prompt=2",
            "trainer.phases.rl.batch_size=4",
            "trainer.phases.rl.num_prompts=4",
        ],
        tmp_path,
    )
    seen = {(r["phase"], r["probe"]) for r in rows}
    for phase in ("base", "sft", "rl"):
        assert (phase, "in_domain") in seen and (phase, "forced_choice") in seen
    assert ("reward", "forced_choice") not in seen  # the reward phase leaves the policy alone
    metrics = {(r["phase"], r["metric"]) for r in rows}
    assert ("reward", "pairwise_accuracy") in metrics
    assert ("reward", "paired_prompt_share") in metrics
    assert ("rl", "learned_reward_end") in metrics and ("rl", "kl_end") in metrics
    assert ("base", "sycophancy_rate") in metrics
    assert all(r["framing"] == "truthful" for r in rows)
    assert (tmp_path / "phases/rl/curves.png").is_file()
    assert (tmp_path / "phases/reward/samples.jsonl").is_file()
