"""Example probe (README, "Extending intentgym"): is the model still writing sensible replies?

A model that training broke can look aligned to probes that read choices; this probe reads its
replies to the env's held-out tasks (greedy) and reports the share of empty replies, the share
of replies that loop (a word trigram repeated three times or more), and the mean length in
words, each with a 95% CI.

A probe is a :class:`intentgym.api.probe.Probe` with a ``name`` and a dataclass config; fields
that declare a ``limit`` are capped by ``debug=smoke``. Used through
``examples/extending/conf/probes/quick_health.yaml`` (the quick suite plus this probe):
``intentgym run --config-dir examples/extending/conf probes=quick_health``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from intentgym.api.probe import Metric, Probe, ProbeContext, ProbeResult
from intentgym.generation import generate
from intentgym.models import Policy
from intentgym.stats import mean_ci, proportion_ci


@dataclass
class ReplyHealthConfig:
    n_items: int = field(
        default=32, metadata={"limit": "probe_items", "help": "Held-out env tasks to answer."}
    )
    max_new_tokens: int = field(
        default=128, metadata={"limit": "max_new_tokens", "help": "Reply length budget."}
    )
    batch_size: int = field(default=16, metadata={"help": "Prompts per generate call."})


def loops(text: str, repeats: int = 3) -> bool:
    """Whether some word trigram occurs ``repeats`` times or more."""
    words = text.lower().split()
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    return bool(trigrams) and max(trigrams.values()) >= repeats


class ReplyHealthProbe(Probe[ReplyHealthConfig]):
    """Empty, looping and mean length of greedy replies to the env's held-out tasks."""

    name: ClassVar[str] = "reply_health"
    config_class = ReplyHealthConfig

    def run(self, policy: Policy, ctx: ProbeContext) -> ProbeResult:
        c = self.config
        tasks = ctx.env.eval_tasks(c.n_items, seed=ctx.seed)
        replies = generate(
            policy,
            [t.messages for t in tasks],
            max_new_tokens=c.max_new_tokens,
            temperature=0.0,
            batch_size=c.batch_size,
            seed=ctx.seed,
        )
        n = len(replies)
        records: list[dict[str, Any]] = [
            {"reply": r, "empty": not r.strip(), "loops": loops(r), "words": len(r.split())}
            for r in replies
        ]
        metrics = [
            Metric.of("empty_share", proportion_ci(sum(r["empty"] for r in records), n), n),
            Metric.of("looping_share", proportion_ci(sum(r["loops"] for r in records), n), n),
            Metric.of("mean_words", mean_ci([float(r["words"]) for r in records]), n),
        ]
        return ProbeResult(self.name, metrics, records)
