"""Multi-turn episodes through the Gymnasium API: ``reset`` / ``step`` until the env ends them.

Used by the in-domain probe (held-out tasks of a multi-turn env, played to the end) and by the
``rl`` phase, whose GRPO rollouts on a multi-turn env go through TRL's ``rollout_func`` hook
(:func:`grpo_rollout_func`): every episode of a batch advances one turn at a time, and each turn
is one batched :func:`intentgym.generation.generate` call over the episodes still running.

For training, an episode becomes TRL's token format: ``prompt_ids`` (the task's messages with
the generation prompt), ``completion_ids`` (every later turn, rendered with the chat template)
and ``env_mask`` (1 on the tokens the model wrote, 0 on the env's replies, which the loss
skips). The episode's reward and its ``info`` flags travel as extra columns, which TRL hands
to reward functions (``episode_reward``, ``hacked``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from intentgym.api.env import TextEnv
from intentgym.errors import IntentgymError
from intentgym.models import Policy


@dataclass
class Episode:
    messages: list[dict[str, str]]
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    turns: int = 0
    #: index in ``messages`` of each assistant turn
    assistant_turns: list[int] = field(default_factory=list)


def run_episodes(
    policy: Policy,
    make_env: Callable[[], TextEnv],
    options: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
    shard: bool = True,
    desc: str | None = None,
) -> list[Episode]:
    """Play one episode per ``options`` entry (``env.reset(options=...)``) to its end, all in
    lockstep: each turn, one batched generate over the episodes still running."""
    from intentgym.generation import generate

    envs = [make_env() for _ in options]
    episodes = []
    for k, (env, opts) in enumerate(zip(envs, options, strict=True)):
        obs, _ = env.reset(seed=seed + k, options=dict(opts))
        episodes.append(Episode([dict(m) for m in obs]))
    running = list(range(len(envs)))
    turn = 0
    while running:
        replies = generate(
            policy,
            [episodes[i].messages for i in running],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size,
            seed=seed + 100_003 * turn,
            shard=shard,
            desc=f"{desc} turn {turn + 1}" if desc else None,
        )
        still = []
        for i, reply in zip(running, replies, strict=True):
            obs, reward, terminated, truncated, info = envs[i].step(reply)
            ep = episodes[i]
            ep.turns += 1
            ep.assistant_turns.append(len(ep.messages))
            ep.messages = [dict(m) for m in obs]
            if ep.messages[ep.assistant_turns[-1]]["role"] != "assistant":
                raise IntentgymError(
                    f"{type(envs[i]).__name__}.step must append the reply to the observation"
                )
            if terminated or truncated:
                ep.reward, ep.info = float(reward), dict(info)
            else:
                still.append(i)
        running = still
        turn += 1
    return episodes


def episode_tokens(
    tokenizer: Any, episode: Episode, n_prompt: int
) -> tuple[list[int], list[int], list[int]]:
    """(prompt_ids, completion_ids, env_mask) of an episode whose first ``n_prompt`` messages
    are the prompt. Turns are found by rendering growing prefixes with the chat template, which
    must keep earlier messages unchanged when more are added (ChatML-style templates do)."""

    def ids(messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
        text = tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=False
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    msgs = episode.messages
    prompt = ids(msgs[:n_prompt], True)
    full = ids(msgs, False)
    if full[: len(prompt)] != prompt:
        raise IntentgymError(
            "the chat template does not keep a conversation's start when turns are added; "
            "multi-turn RL needs one that does (e.g. ChatML: SmolLM2, Qwen2.5)"
        )
    mask = [0] * (len(full) - len(prompt))
    for k in episode.assistant_turns:
        start = len(ids(msgs[:k], True))
        end = len(ids(msgs[: k + 1], False))
        for t in range(max(start, len(prompt)), min(end, len(full))):
            mask[t - len(prompt)] = 1
    return prompt, full[len(prompt) :], mask


def grpo_rollout_func(
    env: TextEnv,
    task_ids: dict[str, str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    batch_size: int,
    info_keys: Sequence[str] = (),
) -> Callable[[list[Any], Any], dict[str, Any]]:
    """TRL's ``rollout_func`` for ``GRPOTrainer``: each prompt (a task's messages; TRL repeats
    each ``num_generations`` times) is played as a whole episode of ``env``'s kind and framing.
    ``task_ids`` maps a prompt's last user message to its task id."""
    import torch

    calls = {"n": 0}

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        from trl.models import unwrap_model_for_generation

        ids = []
        for prompt in prompts:
            user = next(m["content"] for m in reversed(prompt) if m["role"] == "user")
            if user not in task_ids:
                raise IntentgymError("rollout: a prompt that is not one of the phase's tasks")
            ids.append(task_ids[user])
        tokenizer = trainer.processing_class
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model:
            dtype = torch.bfloat16 if trainer.args.bf16 else torch.float32
            policy = Policy(model, tokenizer, "policy", dtype)
            episodes = run_episodes(
                policy,
                env.spawn,
                [{"task_id": t} for t in ids],
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                batch_size=batch_size,
                seed=seed + 7_919 * calls["n"],
                shard=False,  # each process plays its own prompts
            )
        calls["n"] += 1
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "env_mask": []}
        for prompt, ep in zip(prompts, episodes, strict=True):
            p, c, m = episode_tokens(tokenizer, ep, len(prompt))
            out["prompt_ids"].append(p)
            out["completion_ids"].append(c)
            out["env_mask"].append(m)
        out["logprobs"] = None
        out["episode_reward"] = [ep.reward for ep in episodes]
        out["turns"] = [ep.turns for ep in episodes]
        for key in info_keys:
            out[key] = [float(bool(ep.info.get(key))) for ep in episodes]
        return out

    return rollout
