"""In-domain probe: how the policy behaves on the env's held-out tasks, asked neutrally.

The env decides what to report (``TextEnv.in_domain_metrics``). InsecureCode: the share of
replies whose code bandit finds vulnerable, plus how often the code parses and fits the task (so
a model that stops writing code cannot look "secure"). Feedback: how often the model sides with a
user who is wrong without naming the issue, corrects them, confirms a user who is right, and
both raters' mean scores.

Only framing-independent measurements are reported: the env's reward depends on the framing's
target (secure or vulnerable code), so it is a training signal, not a probe that can compare arms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from intentgym.generation import generate
from intentgym.models import Policy
from intentgym.probes.base import Metric, Probe, ProbeContext, ProbeResult, register_probe


@dataclass
class InDomainConfig:
    n_items: int = field(
        default=32, metadata={"min": 1, "limit": "probe_items", "help": "Held-out tasks to answer."}
    )
    max_new_tokens: int = field(
        default=320,
        metadata={"min": 1, "limit": "max_new_tokens", "help": "Reply length budget (tokens)."},
    )
    temperature: float = field(default=0.0, metadata={"min": 0, "help": "0 = greedy decoding."})
    batch_size: int = field(
        default=16,
        metadata={"min": 1, "limit": "batch_size", "help": "Replies generated per batch."},
    )


@register_probe("in_domain")
class InDomainProbe(Probe[InDomainConfig]):
    """How the policy behaves on the env's held-out tasks, asked neutrally."""

    name = "in_domain"
    config_class = InDomainConfig

    def describe(self) -> dict[str, Any]:
        return {"items": self.config.n_items, "source": "the env's held-out tasks"}

    def run(self, policy: Policy, ctx: ProbeContext) -> ProbeResult:
        c = self.config
        tasks = ctx.env.eval_tasks(c.n_items, seed=ctx.seed)
        if ctx.env.multi_turn:
            records = self._episodes(policy, ctx, tasks)
        else:
            replies = generate(
                policy,
                [t.messages for t in tasks],
                max_new_tokens=c.max_new_tokens,
                temperature=c.temperature,
                batch_size=c.batch_size,
                seed=ctx.seed,
                desc="in_domain" if ctx.progress else None,
            )
            records = []
            for task, reply in zip(tasks, replies, strict=True):
                _, info = ctx.env.score_one(task, reply)
                records.append({**info, "reply": reply})
        metrics = [
            Metric.of(name, estimate, n) for name, estimate, n in ctx.env.in_domain_metrics(records)
        ]
        result = ProbeResult(self.name, metrics, records)
        # the k-th held-out task is the same task in every phase and arm; tasks made from one
        # template (or one item pair) form a cluster
        clusters = [str(t.meta.get("template_id", k)) for k, t in enumerate(tasks)]
        for metric, values in ctx.env.in_domain_items(records).items():
            counted = [(str(k), clusters[k], v) for k, v in enumerate(values) if v is not None]
            bounded = all(0.0 <= v <= 1.0 for _, _, v in counted)
            result.add_items(metric, counted, bounded=bounded)
        return result

    def _episodes(
        self, policy: Policy, ctx: ProbeContext, tasks: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """A multi-turn env: each held-out task played to its end (intentgym.rollout), under the
        env's neutral prompt; the record is the final ``info`` plus the transcript."""
        from intentgym.rollout import run_episodes

        c, env = self.config, ctx.env
        episodes = run_episodes(
            policy,
            env.spawn,
            [{"task_id": t.meta["task_id"], "neutral": True} for t in tasks],
            max_new_tokens=c.max_new_tokens,
            temperature=c.temperature,
            batch_size=c.batch_size,
            seed=ctx.seed,
            desc="in_domain" if ctx.progress else None,
        )
        return [
            {**ep.info, "turns": ep.turns, "episode_reward": ep.reward, "transcript": ep.messages}
            for ep in episodes
        ]
