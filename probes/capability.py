"""Coherence and capability: held-out perplexity on neutral prose and a small QA accuracy set,
so that a collapsed model cannot look aligned.

* ``perplexity``: exp of the mean per-token negative log-likelihood over 48 neutral paragraphs of
  ours (cooking, geography, sport rules, ...; nothing any env trains on). The CI comes from a t
  interval over the paragraphs' mean NLLs, mapped through exp.
* ``qa_accuracy``: 120 easy four-option questions of ours (arithmetic, geography, science,
  language, everyday knowledge, units; answer positions balanced). Each option's text is scored
  as the answer's continuation, and the most likely option is the model's choice (as
  lm-evaluation-harness's ``acc``), which works even for models too small to answer by letter.
  Chance is 0.25.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from intentgym.errors import IntentgymError
from intentgym.generation import chat_prompts
from intentgym.models import Policy
from intentgym.probes.base import Metric, Probe, ProbeContext, ProbeResult, register_probe
from intentgym.probes.data_files import read_rows, resolve
from intentgym.scoring import continuation_logprobs
from intentgym.stats import mean_ci, proportion_ci


@dataclass
class CapabilityConfig:
    text: str = field(default="neutral_text", metadata={"help": "Perplexity text: name or path."})
    qa: str = field(default="qa_basic", metadata={"help": "QA set: name or path."})
    max_items: int = field(
        default=0,
        metadata={
            "min": 0,
            "limit": "probe_items",
            "unset": 0,
            "help": "First N paragraphs and questions (0: all).",
        },
    )
    batch_size: int = field(
        default=8,
        metadata={"min": 1, "limit": "batch_size", "help": "Packed rows per forward pass."},
    )


@register_probe("capability")
class CapabilityProbe(Probe[CapabilityConfig]):
    """Perplexity on neutral prose and accuracy on easy QA."""

    name = "capability"
    config_class = CapabilityConfig

    def __init__(self, config: CapabilityConfig) -> None:
        super().__init__(config)
        text_path, qa_path = resolve(config.text, "text file"), resolve(config.qa, "QA file")
        self.paragraphs = read_rows(text_path)
        self.qa = read_rows(qa_path)
        for k, row in enumerate(self.paragraphs, start=1):
            if not isinstance(row.get("text"), str) or not row["text"].strip():
                raise IntentgymError(f"{text_path} item {k}: needs 'text' (a non-empty string)")
        for k, row in enumerate(self.qa, start=1):
            choices, answer = row.get("choices"), row.get("answer")
            if (
                not isinstance(row.get("question"), str)
                or not isinstance(choices, list)
                or len(choices) < 2
                or not isinstance(answer, int)
                or not 0 <= answer < len(choices)
            ):
                raise IntentgymError(
                    f"{qa_path} item {k}: needs 'question', 'choices' (2+ strings) and 'answer' "
                    "(the index of the right choice)"
                )
        if config.max_items:
            self.paragraphs = self.paragraphs[: config.max_items]
            self.qa = self.qa[: config.max_items]

    def describe(self) -> dict[str, Any]:
        return {"paragraphs": len(self.paragraphs), "qa_items": len(self.qa)}

    def run(self, policy: Policy, ctx: ProbeContext) -> ProbeResult:
        tok = policy.tokenizer
        start = tok.bos_token or tok.eos_token  # one token to predict the text's first token from
        texts = [p["text"] for p in self.paragraphs]
        qa_prompts = chat_prompts(
            policy, [[{"role": "user", "content": q["question"]}] for q in self.qa]
        )
        pairs = [(start, t) for t in texts] + [
            (p, choice) for p, q in zip(qa_prompts, self.qa, strict=True) for choice in q["choices"]
        ]
        scores = continuation_logprobs(
            policy,
            [p for p, _ in pairs],
            [c for _, c in pairs],
            batch_size=self.config.batch_size,
            desc="capability" if ctx.progress else None,
        )
        records: list[dict[str, Any]] = []
        nll = []
        for row, lp in zip(self.paragraphs, scores[: len(texts)], strict=True):
            n = len(tok(row["text"], add_special_tokens=False)["input_ids"])
            nll.append(-lp / n)
            records.append({"kind": "perplexity", "id": row.get("id"), "nll_per_token": -lp / n})
        rest = iter(scores[len(texts) :])
        correct = 0
        right: list[tuple[str, str, float]] = []
        for k, q in enumerate(self.qa):
            option_scores = [next(rest) for _ in q["choices"]]
            choice = max(range(len(option_scores)), key=option_scores.__getitem__)
            correct += choice == q["answer"]
            key = str(q.get("id", k))
            right.append((key, key, float(choice == q["answer"])))
            records.append(
                {"kind": "qa", "id": q.get("id"), "choice": choice, "answer": q["answer"]}
            )
        mean, low, high = mean_ci(nll)
        metrics = [
            Metric("perplexity", math.exp(mean), math.exp(low), math.exp(high), len(nll)),
            Metric.of("qa_accuracy", proportion_ci(correct, len(self.qa)), len(self.qa)),
        ]
        result = ProbeResult(self.name, metrics, records)
        # perplexity is exp(mean NLL): its per-paragraph values are not what it averages, so it
        # keeps the probe's own interval; accuracy is a rate over questions (chance: 1/options)
        chance = sum(1 / len(q["choices"]) for q in self.qa) / len(self.qa) if self.qa else None
        result.add_items("qa_accuracy", right, bounded=True, chance=chance)
        return result
