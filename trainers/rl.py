"""The ``rl`` phase: online RL against a reward model with a KL penalty to the reference policy.

``algorithm``:

- ``grpo``: TRL's ``GRPOTrainer`` (group-normalised advantages; KL to the reference in the loss);
- ``rloo``: TRL's ``RLOOTrainer`` (REINFORCE with a leave-one-out baseline; KL in the reward);
- ``ppo``: :mod:`intentgym.trainers.ppo` (value head, GAE, clipped surrogate; KL in the reward),
  ours because TRL no longer ships PPO.

The reward (``reward``): ``auto`` = the model this run's ``reward`` phase trained when there is
one, else the run's ``reward_model``; ``learned`` / ``run`` force one of them. Every step also
logs the env's own reward (its rater, e.g. ``truthful_rater``) with weight 0 — tracked, never
optimised — so the run shows whether the learned proxy and the rater it stands in for move
together (reward over-optimisation, Gao et al. 2022).

With LoRA (default) the reference policy is the adapter-disabled base: no second model copy.
All three see the same budget: ``batch_size`` completions per optimiser step (GRPO/RLOO:
``batch_size / num_generations`` prompts with ``num_generations`` samples each; PPO:
``batch_size`` prompts, one sample each).

Writes ``log.jsonl`` (one row per logged step: reward, kl, entropy, completion_length,
``rewards/<name>``), ``curves.png``, the adapter or weights, and summary rows (first and last
quarter of steps) under probe ``rl`` in results.jsonl. ``use_vllm`` and the ``vllm_*`` settings
go to TRL as they are (GRPO/RLOO on GPUs).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from intentgym.api.artifacts import SampleJudge, SystemPrompt, TrainedRewardModel
from intentgym.api.env import Task, TextEnv, task_columns
from intentgym.api.phase import Phase, PhaseContext, register_phase
from intentgym.api.requirements import Requirements
from intentgym.api.reward import completion_text
from intentgym.api.rewards import REWARD_SOURCES
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.models import Policy, merge_adapter
from intentgym.stats import mean_ci
from intentgym.trainers.sft import (
    TrainingSettings,
    _remove_checkpoints,
    lora_config,
    run_trainer,
    training_arguments,
)

log = logging.getLogger(__name__)

ALGORITHMS = ("grpo", "rloo", "ppo")
#: the columns every algorithm's log.jsonl has
CURVES = ("reward", "kl", "entropy", "completion_length")


@dataclass
class RLPhaseConfig(TrainingSettings):
    """Settings of the ``rl`` phase (plus the shared optimiser and LoRA settings)."""

    algorithm: str = field(default="grpo", metadata={"help": "grpo | rloo | ppo."})
    reward: str = field(
        default="auto",
        metadata={
            "help": "auto (this run's learned reward model, else the judge an earlier phase used, "
            "else reward_model) | learned | judge | run | env (the env's own reward: on a "
            "multi-turn env, each whole episode's)."
        },
    )
    num_prompts: int = field(
        default=48,
        metadata={
            "min": 0,
            "limit": "train_examples",
            "unset": 0,
            "help": "Env prompts in the RL dataset.",
        },
    )
    # RL's own defaults for two shared settings: a smaller step than supervised phases (the
    # policy's own samples are noisy targets) and 16 completions per optimiser step
    learning_rate: float = field(
        default=5e-4, metadata={"gt": 0, "help": "Peak learning rate (constant schedule)."}
    )
    batch_size: int = field(
        default=16,
        metadata={
            "min": 1,
            "help": "Completions per optimiser step (GRPO/RLOO: a multiple of the group).",
        },
    )
    num_generations: int = field(
        default=4, metadata={"min": 1, "help": "GRPO/RLOO: samples per prompt (the group)."}
    )
    max_new_tokens: int = field(
        default=64, metadata={"min": 1, "limit": "max_new_tokens", "help": "Completion length cap."}
    )
    temperature: float = field(
        default=1.0, metadata={"min": 0, "help": "Sampling temperature (> 0)."}
    )
    top_p: float = field(
        default=1.0, metadata={"gt": 0, "max": 1, "help": "Nucleus sampling threshold."}
    )
    beta: float = field(
        default=0.05, metadata={"min": 0, "help": "KL coefficient to the reference policy."}
    )
    update_epochs: int = field(
        default=1,
        metadata={
            "min": 1,
            "help": "Optimisation passes per batch of samples (TRL: num_iterations).",
        },
    )
    clip_epsilon: float = field(default=0.2, metadata={"gt": 0, "help": "Ratio clipping range."})
    track_env_reward: bool = field(
        default=True, metadata={"help": "Log the env's own reward (weight 0) next to the proxy."}
    )
    logging_steps: int = field(
        default=1, metadata={"min": 1, "help": "Log (and plot) every N steps."}
    )
    # PPO only
    vf_coef: float = field(default=0.1, metadata={"min": 0, "help": "PPO: value-loss coefficient."})
    clip_value: float = field(default=0.2, metadata={"gt": 0, "help": "PPO: value clipping range."})
    gamma: float = field(default=1.0, metadata={"min": 0, "max": 1, "help": "PPO: discount."})
    lam: float = field(default=0.95, metadata={"min": 0, "max": 1, "help": "PPO: GAE lambda."})
    minibatch_size: int = field(
        default=8, metadata={"min": 1, "help": "PPO: completions per update."}
    )
    # TRL's vLLM generation (GRPO/RLOO, GPU)
    use_vllm: bool = field(default=False, metadata={"help": "GRPO/RLOO: generate with vLLM."})
    vllm_mode: str = field(default="colocate", metadata={"help": "TRL vllm_mode: colocate|server."})
    vllm_server_base_url: str | None = field(default=None, metadata={"help": "vLLM server URL."})
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"gt": 0, "max": 1, "help": "colocate share."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.algorithm not in ALGORITHMS:
            raise invalid_choice("algorithm", self.algorithm, ALGORITHMS)
        if self.reward not in (*REWARD_SOURCES, "env"):
            raise invalid_choice("rl reward", self.reward, (*REWARD_SOURCES, "env"))
        if self.temperature <= 0:
            raise IntentgymError(f"temperature must be > 0 to sample, got {self.temperature}")
        if self.num_prompts < 1:
            raise IntentgymError(f"num_prompts must be >= 1, got {self.num_prompts}")
        if self.beta < 0:
            raise IntentgymError(f"beta must be >= 0, got {self.beta}")
        if self.algorithm != "ppo":
            if self.num_generations < 2:
                raise IntentgymError(
                    f"num_generations must be >= 2 for {self.algorithm} (it needs a group to "
                    f"compare), got {self.num_generations}"
                )
            if self.batch_size % self.num_generations:
                raise IntentgymError(
                    f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                    f"({self.num_generations}) for {self.algorithm}"
                )
        elif self.use_vllm:
            raise IntentgymError("use_vllm is for algorithm=grpo|rloo (TRL); ppo generates with HF")


class EnvReward:
    """The env's own reward (``score_one``) with TRL's reward-function signature."""

    def __init__(self, env: TextEnv) -> None:
        self.env = env
        self.__name__ = "env_reward"

    def __call__(self, prompts: Any, completions: Any, **columns: Any) -> list[float | None]:
        if columns.get("episode_reward") is not None:  # a multi-turn rollout scored its episodes
            return [float(r) for r in columns["episode_reward"]]
        # dataset columns are per-item lists; TRL also passes helpers (trainer_state, ...)
        keys = [
            k
            for k, v in columns.items()
            if isinstance(v, list | tuple) and len(v) == len(prompts) and k != "completion_ids"
        ]
        out: list[float | None] = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            meta = {k: columns[k][i] for k in keys}
            task = Task(tuple(prompt) if not isinstance(prompt, str) else (), meta)
            out.append(self.env.score_one(task, completion_text(completion))[0])
        return out


#: an episode's ``info`` flags logged during multi-turn RL (TRL: ``rewards/<flag>/mean``)
EPISODE_FLAGS = ("hacked", "correct")


class _EpisodeColumn:
    """A column the multi-turn rollout adds (e.g. ``hacked``), as a zero-weight reward."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.__name__ = key

    def __call__(self, prompts: Any, completions: Any, **columns: Any) -> list[float | None]:
        values = columns.get(self.key)
        return [None] * len(prompts) if values is None else [float(v) for v in values]


class _Named:
    """A reward function under a fixed name (TRL logs ``rewards/<name>/mean``)."""

    def __init__(self, fn: Any, name: str) -> None:
        self.fn = fn
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@register_phase("rl")
class RLPhase(Phase[RLPhaseConfig]):
    """Online RL (GRPO, RLOO or PPO) against a reward model, KL-regularised to the reference."""

    config_class = RLPhaseConfig

    def requirements(self) -> Requirements:
        trained = Requirements(artifacts=(TrainedRewardModel,), hint="add a 'reward' phase first")
        judge = Requirements(artifacts=(SampleJudge,))
        configured = Requirements(reward_model=True)
        source = {
            "learned": trained,
            "judge": judge,
            "run": configured,
            "env": Requirements(),
            "auto": Requirements(any_of=(trained, judge, configured)),
        }[self.config.reward]
        if self.config.algorithm == "grpo":
            return source  # multi-turn envs too: whole episodes through TRL's rollout_func
        return Requirements(
            any_of=(source,),
            single_turn=True,
            hint=f"algorithm={self.config.algorithm} scores one reply; use algorithm=grpo",
        )

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        if c.reward == "env":
            proxy, proxy_name = EnvReward(env), "env_reward"
        else:
            proxy, proxy_name = self._reward(policy, ctx)
        funcs, weights = [_Named(proxy, proxy_name)], [1.0]
        if c.track_env_reward and c.reward != "env":
            funcs.append(_Named(EnvReward(env), "env_reward"))
            weights.append(0.0)
        if env.multi_turn:  # logged, not optimised: how often episodes set each flag
            for key in EPISODE_FLAGS:
                funcs.append(_Named(_EpisodeColumn(key), key))
                weights.append(0.0)
        rng = np.random.default_rng(ctx.seed)
        tasks = [env.sample_task(rng) for _ in range(c.num_prompts)]
        system = ctx.artifacts.get(SystemPrompt)
        if system:  # an earlier phase trained under a system prompt (e.g. spec_sft): keep it
            head = ({"role": "system", "content": system.text},)
            tasks = [Task((*head, *t.messages), t.meta) for t in tasks]
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        if c.algorithm == "ppo":
            rows = self._ppo(policy, tasks, funcs, weights, ctx)
        else:
            rows = self._trl(policy, env, tasks, funcs, weights, ctx)
        _save_curves(rows, ctx.output_dir, proxy_name)
        ctx.results += summary_rows(rows, [f"rewards/{f.__name__}" for f in funcs])
        policy.model.save_pretrained(
            ctx.output_dir / ("adapter" if c.finetune == "lora" else "model")
        )
        merge_adapter(policy)
        _remove_checkpoints(ctx.output_dir / "trainer")
        ctx.output_dir.joinpath("phase_config.json").write_text(json.dumps(asdict(c), indent=2))
        return policy

    def _reward(self, policy: Policy, ctx: PhaseContext) -> tuple[Any, str]:
        """The reward to optimise, resolved by the run (``ctx.rewards``), and its log name."""
        return ctx.rewards.resolve(
            ctx.label or "rl",
            self.config.reward,
            ctx.artifacts,
            dtype=str(policy.compute_dtype).removeprefix("torch."),
            device=str(policy.device),
        )

    # --- TRL: GRPO and RLOO ------------------------------------------------------------------
    def _trl(
        self,
        policy: Policy,
        env: TextEnv,
        tasks: list[Task],
        funcs: list[Any],
        weights: list[float],
        ctx: PhaseContext,
    ) -> list[dict[str, float]]:
        from datasets import Dataset

        c = self.config
        if c.algorithm == "grpo":
            from trl import GRPOConfig as Config
            from trl import GRPOTrainer as Trainer
        else:
            from trl import RLOOConfig as Config  # type: ignore[assignment]
            from trl import RLOOTrainer as Trainer  # type: ignore[assignment]
        base = training_arguments(c, policy, ctx)
        accepted = {f.name for f in fields(Config)}
        settings = {
            **{k: v for k, v in base.items() if k in accepted},
            "num_generations": c.num_generations,
            "max_completion_length": c.max_new_tokens,
            "temperature": c.temperature,
            "top_p": c.top_p,
            "beta": c.beta,
            "num_iterations": c.update_epochs,
            "epsilon": c.clip_epsilon,
            "reward_weights": weights,
            "use_vllm": c.use_vllm,
            "vllm_mode": c.vllm_mode,
            "vllm_gpu_memory_utilization": c.vllm_gpu_memory_utilization,
            "lr_scheduler_type": "constant",
        }
        if c.vllm_server_base_url:
            settings["vllm_server_base_url"] = c.vllm_server_base_url
        columns = task_columns(tasks)
        data = Dataset.from_dict({"prompt": [list(t.messages) for t in tasks], **columns})
        extra: dict[str, Any] = {}
        if env.multi_turn:  # whole episodes: TRL's rollout_func hook (intentgym.rollout)
            from intentgym.rollout import grpo_rollout_func

            user = {t.messages[-1]["content"]: str(t.meta["task_id"]) for t in tasks}
            extra["rollout_func"] = grpo_rollout_func(
                env,
                user,
                max_new_tokens=c.max_new_tokens,
                temperature=c.temperature,
                top_p=c.top_p,
                seed=ctx.seed,
                batch_size=c.batch_size,
                info_keys=EPISODE_FLAGS,
            )
            # an episode of several turns is longer than one reply
            settings["max_completion_length"] = c.max_new_tokens * env.max_turns * 3
        trainer = Trainer(
            model=policy.model,
            reward_funcs=funcs,
            args=Config(**settings),
            train_dataset=data,
            processing_class=policy.tokenizer,
            peft_config=lora_config(c, "CAUSAL_LM") if c.finetune == "lora" else None,
            **extra,
        )
        run_trainer(trainer, ctx)
        policy.model = trainer.model
        rows = []
        for entry in trainer.state.log_history:
            if "reward" not in entry:
                continue
            row = {
                "step": float(entry["step"]),
                "reward": entry["reward"],
                "kl": entry.get("kl", math.nan),
                "entropy": entry.get("entropy", math.nan),
                "completion_length": entry.get("completions/mean_length", math.nan),
            }
            for f in funcs:
                row[f"rewards/{f.__name__}"] = entry.get(f"rewards/{f.__name__}/mean", math.nan)
            rows.append(row)
        return rows

    # --- ours: PPO ---------------------------------------------------------------------------
    def _ppo(
        self,
        policy: Policy,
        tasks: list[Task],
        funcs: list[Any],
        weights: list[float],
        ctx: PhaseContext,
    ) -> list[dict[str, float]]:
        from peft import get_peft_model

        from intentgym.trainers.ppo import PPOSettings, PPOTrainer

        c = self.config
        if c.max_steps > 0:
            iterations = c.max_steps
        else:
            iterations = max(
                1, math.ceil(c.epochs * c.num_prompts * c.num_generations / c.batch_size)
            )
        if c.finetune == "lora":
            policy.model = get_peft_model(policy.model, lora_config(c, "CAUSAL_LM"))
        settings = PPOSettings(
            iterations=iterations,
            rollout_batch_size=c.batch_size,
            minibatch_size=min(c.minibatch_size, c.batch_size),
            update_epochs=c.update_epochs,
            learning_rate=c.learning_rate,
            max_new_tokens=c.max_new_tokens,
            temperature=c.temperature,
            top_p=c.top_p,
            beta=c.beta,
            clip_epsilon=c.clip_epsilon,
            vf_coef=c.vf_coef,
            clip_value=c.clip_value,
            gamma=c.gamma,
            lam=c.lam,
            seed=ctx.seed,
        )
        log_wandb = _wandb_logger() if ctx.report_to == "wandb" else None
        trainer = PPOTrainer(
            policy,
            [list(t.messages) for t in tasks],
            funcs,
            settings,
            reward_weights=weights,
            reward_names=[f.__name__ for f in funcs],
            columns=task_columns(tasks),
            on_log=log_wandb,
            desc="rl: ppo" if ctx.progress else None,
        )
        return trainer.train()


def _wandb_logger() -> Any:
    import wandb

    def log_row(row: dict[str, float]) -> None:
        if wandb.run is not None:
            wandb.log({f"train/{k}": v for k, v in row.items() if k != "step"})

    return log_row


def summary_rows(rows: list[dict[str, float]], reward_keys: list[str]) -> list[dict[str, Any]]:
    """Mean (with a t CI over steps) of each curve in the first and the last quarter of steps."""
    if not rows:
        raise IntentgymError("the rl phase logged no steps (max_steps or epochs too small?)")
    q = max(1, len(rows) // 4)
    out = []
    for key in (*CURVES, *reward_keys):
        for part, chunk in (("start", rows[:q]), ("end", rows[-q:])):
            vals = [r[key] for r in chunk if key in r and not math.isnan(r[key])]
            if not vals:
                continue
            value, low, high = mean_ci(vals) if len(vals) > 1 else (vals[0], math.nan, math.nan)
            name = key.removeprefix("rewards/")
            out.append(
                {
                    "probe": "rl",
                    "metric": f"{name}_{part}",
                    "value": value,
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(vals),
                }
            )
    return out


def _save_curves(rows: list[dict[str, float]], out: Path, proxy: str) -> None:
    """``log.jsonl`` and ``curves.png``: reward (proxy and env), KL, entropy, length per step."""
    with (out / "log.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    panels = [
        ("reward", [f"rewards/{proxy}", "rewards/env_reward"]),
        ("KL to reference", ["kl"]),
        ("entropy / token", ["entropy"]),
        ("completion length", ["completion_length"]),
    ]
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            ys = [r.get(key, math.nan) for r in rows]
            if all(math.isnan(y) for y in ys):
                continue
            ax.plot(steps, ys, marker=".", label=key.removeprefix("rewards/"))
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(keys) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
