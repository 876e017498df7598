"""PPO with a value head, GAE and the clipped surrogate: the classic RLHF optimiser.

TRL removed its PPO trainer in 2026; OpenRLHF and verl still ship PPO but are distributed
systems (Ray, Megatron/FSDP workers) far too heavy for a laptop run, so this is a compact
implementation of the recipe those libraries and TRL's former ``PPOTrainer`` share (Ziegler et
al. 2019; Ouyang et al. 2022; Huang et al. 2024, "The N+ Implementation Details of RLHF with
PPO"). What it reuses: transformers for generation and forward passes, peft for the LoRA policy
(whose base weights, adapter disabled, are the frozen reference policy: no second model in
memory), and the reward-model registry's TRL reward-function signature for scoring.

One iteration:

1. sample one completion for each of ``rollout_batch_size`` prompts from the current policy;
2. score each completion with the reward functions (weighted sum; the reward model's score is
   given at the last completion token); per-token reward ``-beta * (log pi - log pi_ref)``;
3. values from a scalar head on the policy's last hidden state (shared trunk, as in TRL's former
   ``AutoModelForCausalLMWithValueHead``); advantages by GAE(gamma, lambda), whitened;
4. ``update_epochs`` passes of minibatch updates on the clipped surrogate plus
   ``vf_coef`` x the clipped value loss.

Every iteration logs the mean score, the KL to the reference (mean per token, as TRL logs it,
and summed per completion), the policy's entropy per token, the completion length, the losses, the clipped
fraction and the approximate KL between successive policies.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from intentgym import runstate
from intentgym.budget import COUNTERS

log = logging.getLogger(__name__)

#: (prompts, completions, **columns) -> scores; the reward-model registry's signature
RewardFn = Callable[..., list[float | None]]


@dataclass
class PPOSettings:
    iterations: int = 16
    rollout_batch_size: int = 16
    minibatch_size: int = 8
    update_epochs: int = 2
    learning_rate: float = 1e-4
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.05
    clip_epsilon: float = 0.2
    vf_coef: float = 0.1
    clip_value: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    seed: int = 0


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over completion tokens.

    ``rewards``, ``values``, ``mask``: [batch, T]; positions where ``mask`` is 0 (after the
    completion ended) are treated as terminal: no reward, no value, no bootstrapping across them.
    Returns ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    rewards = rewards * mask
    values = values * mask
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    steps = rewards.shape[1]
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        last = last * mask[:, t]
        advantages[:, t] = last
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def ppo_losses(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_epsilon: float,
    clip_value: float,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Clipped surrogate policy loss and clipped value loss, token-averaged over ``mask``."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_epsilon, 1 + clip_epsilon)
    policy_loss = masked_mean(torch.max(unclipped, clipped), mask)
    values_clipped = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
    value_loss = 0.5 * masked_mean(
        torch.max((values - returns) ** 2, (values_clipped - returns) ** 2), mask
    )
    with torch.no_grad():
        stats = {
            "clipfrac": float(masked_mean((clipped > unclipped).float(), mask)),
            "approx_kl": float(masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask)),
        }
    return policy_loss, value_loss, stats


class ValueHead(nn.Module):
    """A scalar value per token from the policy's last hidden state."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.proj.weight, std=1 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden.float()).squeeze(-1)


class PPOTrainer:
    """PPO on a causal LM (optionally a peft model) against reward functions.

    ``policy``: an :class:`intentgym.models.Policy`; with a peft model the adapter-disabled base
    is the reference, otherwise a frozen copy is made. ``prompts``: chat conversations.
    ``columns``: per-prompt extra data passed to the reward functions (TRL's convention), plus
    ``completion_ids``. ``desc``: a progress bar over the iterations with this label (None:
    none; the ``rl`` phase passes one when the run's ``progress`` is on).
    """

    def __init__(
        self,
        policy: Any,
        prompts: Sequence[list[dict[str, str]]],
        reward_fns: Sequence[RewardFn],
        settings: PPOSettings,
        *,
        reward_weights: Sequence[float] | None = None,
        reward_names: Sequence[str] | None = None,
        columns: dict[str, list[Any]] | None = None,
        on_log: Callable[[dict[str, float]], None] | None = None,
        desc: str | None = None,
    ) -> None:
        if not prompts:
            raise ValueError("PPO needs at least one prompt")
        self.policy = policy
        self.model = policy.model
        self.tokenizer = policy.tokenizer
        self.prompts = list(prompts)
        self.reward_fns = list(reward_fns)
        self.weights = list(reward_weights or [1.0] * len(self.reward_fns))
        self.names = list(reward_names or [f"reward_{i}" for i in range(len(self.reward_fns))])
        self.columns = columns or {}
        self.s = settings
        self.on_log = on_log
        self.desc = desc
        self.device = policy.device
        # Dropout off throughout (as TRL's online trainers do): the log-probs of the rollout and
        # of the update must come from the same function for the PPO ratio to mean anything.
        self.model.eval()
        self.is_peft = hasattr(self.model, "disable_adapter")
        self.ref_model = None
        if not self.is_peft and settings.beta > 0:
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.value_head = ValueHead(self.model.config.hidden_size).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        params += list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, eps=1e-5)
        self.generator = torch.Generator().manual_seed(settings.seed)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.history: list[dict[str, float]] = []

    # --- forward passes ----------------------------------------------------------------------
    def _forward(
        self, model: Any, ids: torch.Tensor, attn: torch.Tensor, start: int, with_values: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Log-probs of tokens ``ids[:, start:]``, their values, and the entropies."""
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        with self.policy.autocast():
            out = model(
                input_ids=ids,
                attention_mask=attn,
                position_ids=positions,
                output_hidden_states=with_values,
            )
        logits = out.logits[:, start - 1 : -1].float()
        if self.s.temperature != 1.0:
            logits = logits / self.s.temperature
        logp_all = F.log_softmax(logits, dim=-1)
        logprobs = logp_all.gather(-1, ids[:, start:].unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        values = None
        if with_values:
            values = self.value_head(out.hidden_states[-1][:, start - 1 : -1])
        return logprobs, values, entropy

    @torch.no_grad()
    def _reference_logprobs(self, ids: torch.Tensor, attn: torch.Tensor, start: int) -> Any:
        if self.is_peft:
            with self.model.disable_adapter():
                return self._forward(self.model, ids, attn, start, False)[0]
        assert self.ref_model is not None
        return self._forward(self.ref_model, ids, attn, start, False)[0]

    # --- rollouts ----------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, indices: list[int]) -> dict[str, Any]:
        tok = self.tokenizer
        texts = [
            tok.apply_chat_template(self.prompts[i], add_generation_prompt=True, tokenize=False)
            for i in indices
        ]
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = side
        enc = enc.to(self.device)
        start = enc.input_ids.shape[1]
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator)))
        with self.policy.autocast():
            seqs = self.model.generate(
                **enc,
                do_sample=True,
                temperature=self.s.temperature,
                top_p=self.s.top_p,
                top_k=0,
                max_new_tokens=self.s.max_new_tokens,
                pad_token_id=tok.pad_token_id,
            )
        completion = seqs[:, start:]
        # Completion tokens up to and including the first end-of-turn token count; the rest is
        # padding that generate() appended.
        is_eos = torch.zeros_like(completion, dtype=torch.bool)
        for e in self.eos_ids:
            is_eos |= completion == e
        steps = torch.arange(completion.shape[1], device=self.device)
        first = torch.where(is_eos.any(-1), is_eos.float().argmax(-1), completion.shape[1] - 1)
        mask = (steps[None, :] <= first[:, None]).float()
        attn = torch.cat([enc.attention_mask, mask.long()], dim=1)
        decoded = tok.batch_decode(completion * mask.long(), skip_special_tokens=True)
        completion_ids = [
            row[: int(m.sum())].tolist() for row, m in zip(completion, mask, strict=True)
        ]
        prompts = [self.prompts[i] for i in indices]
        conversational = [[{"role": "assistant", "content": t}] for t in decoded]
        cols = {k: [v[i] for i in indices] for k, v in self.columns.items()}
        scores = torch.zeros(len(indices), device=self.device)
        parts: dict[str, list[float]] = {}
        valid = torch.ones(len(indices), dtype=torch.bool, device=self.device)
        for fn, w, name in zip(self.reward_fns, self.weights, self.names, strict=True):
            raw = fn(prompts, conversational, completion_ids=completion_ids, **cols)
            vals = [math.nan if r is None else float(r) for r in raw]
            parts[name] = vals
            t = torch.tensor(vals, device=self.device)
            if w != 0:
                valid &= ~torch.isnan(t)
                scores += w * torch.nan_to_num(t)
        logprobs, values, _ = self._forward(self.model, seqs, attn, start, True)
        ref_logprobs = self._reference_logprobs(seqs, attn, start)
        mask = mask * valid[:, None].float()  # an unscored completion is left out of the update
        return {
            "ids": seqs,
            "attn": attn,
            "start": start,
            "mask": mask,
            "logprobs": logprobs,
            "ref_logprobs": ref_logprobs,
            "values": values,
            "scores": scores,
            "parts": parts,
            "valid": valid,
            "texts": decoded,
        }

    # --- one iteration -----------------------------------------------------------------------
    def step(self, indices: list[int]) -> dict[str, float]:
        s = self.s
        r = self.rollout(indices)
        mask, logprobs, ref_logprobs = r["mask"], r["logprobs"], r["ref_logprobs"]
        kl = (logprobs - ref_logprobs) * mask
        rewards = -s.beta * kl
        lengths = mask.sum(-1).long()
        last = (lengths - 1).clamp(min=0)
        rows = torch.arange(len(indices), device=self.device)
        rewards[rows, last] += r["scores"] * r["valid"].float()
        advantages, returns = gae(rewards, r["values"], mask, s.gamma, s.lam)
        if s.whiten_advantages:
            advantages = whiten(advantages, mask)

        stats: dict[str, list[float]] = {}
        order = torch.randperm(len(indices), generator=self.generator)
        for _ in range(s.update_epochs):
            for mb_start in range(0, len(indices), s.minibatch_size):
                mb = order[mb_start : mb_start + s.minibatch_size].to(self.device)
                if r["mask"][mb].sum() == 0:
                    continue
                new_logprobs, new_values, entropy = self._forward(
                    self.model, r["ids"][mb], r["attn"][mb], r["start"], True
                )
                assert new_values is not None
                pg_loss, vf_loss, info = ppo_losses(
                    new_logprobs,
                    logprobs[mb],
                    advantages[mb],
                    new_values,
                    r["values"][mb],
                    returns[mb],
                    mask[mb],
                    s.clip_epsilon,
                    s.clip_value,
                )
                loss = pg_loss + s.vf_coef * vf_loss
                step = len(self.history) + 1
                runstate.check_finite_loss(float(loss.item()), step)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
                runstate.check_finite_gradients(self.model, step)
                self.optimizer.step()
                for k, v in {
                    "policy_loss": pg_loss.item(),
                    "value_loss": vf_loss.item(),
                    "entropy": float(masked_mean(entropy.detach(), mask[mb])),
                    **info,
                }.items():
                    stats.setdefault(k, []).append(v)

        valid = r["valid"]
        n_valid = max(int(valid.sum()), 1)
        row: dict[str, float] = {
            "reward": float((r["scores"] * valid).sum()) / n_valid,
            # per token, as TRL's GRPO/RLOO log it; and per completion (what the reward pays)
            "kl": float(masked_mean(kl, mask)),
            "kl_per_completion": float(kl.sum(-1)[valid].sum()) / n_valid,
            "completion_length": float(lengths.float().mean()),
            "unscored_share": 1 - float(valid.float().mean()),
        }
        for name, vals in r["parts"].items():
            finite = [v for v in vals if not math.isnan(v)]
            row[f"rewards/{name}"] = sum(finite) / len(finite) if finite else math.nan
        row.update({k: sum(v) / len(v) for k, v in stats.items()})
        return row

    def train(self) -> list[dict[str, float]]:
        s = self.s
        order: list[int] = []
        bar = tqdm(total=s.iterations, desc=self.desc, unit="iteration", disable=self.desc is None)
        with bar:
            for it in range(s.iterations):
                while len(order) < s.rollout_batch_size:
                    perm = torch.randperm(len(self.prompts), generator=self.generator).tolist()
                    order += perm
                batch, order = order[: s.rollout_batch_size], order[s.rollout_batch_size :]
                row = {"step": float(it + 1), **self.step(batch)}
                self.history.append(row)
                bar.update()
                bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.3f}")
                COUNTERS.optimiser_steps += 1
                if runstate.step_done(it + 1):  # a signal: stop after this update (no checkpoint)
                    raise runstate.STATE.interrupted()
                if self.on_log is not None:
                    self.on_log(row)
                log.info(
                    "ppo %d/%d: reward %.3f kl %.3f entropy %.3f length %.1f",
                    it + 1,
                    s.iterations,
                    row["reward"],
                    row["kl"],
                    row.get("entropy", math.nan),
                    row["completion_length"],
                )
        return self.history
