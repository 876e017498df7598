"""Deliberative alignment (Guan et al., 2024): the ``spec_sft`` phase.

``trainer=deliberative`` is ``spec_sft -> rl``:

1. **spec_sft**: build (prompt, reasoning that cites the spec, answer) examples *with the spec in
   context*, keep those the spec-aware judge (``spec_judge``) accepts -- it sees the prompt and
   the answer, never the reasoning -- and fine-tune on them **without** the spec in the prompt,
   so the model has to recall the spec itself. Generators (``generator``):

   - ``template`` (default): reasoning assembled from the spec -- the category's description and
     the rules that apply, picked by word overlap with the request -- followed by the env's
     reference reply. It needs the task's ``category``/``harmful`` labels (HarmfulRequests-v0)
     and keeps CPU runs meaningful where a 135M model cannot yet reason over a spec;
   - ``policy``: the policy itself, prompted with the spec to think in ``<think>`` tags first;
   - any other value: a teacher model name for ``load_policy``, prompted the same way.

2. **rl** (the ``rl`` phase, ``reward=judge``): RL against the same judge, which again scores the
   answer only.

The framing axis ``reasoning_frame`` (top-level config key) decides how the reasoning is
presented in training:

- ``private``: in a ``<think>`` block before the answer, as the model's own thoughts;
- ``visible``: as part of the answer (``Reasoning: ...`` then ``Answer: ...``);
- ``told_ai_in_training``: like ``private``, and a system prompt tells the model it is an AI being
  trained to follow a safety spec (the ``rl`` phase keeps that system prompt).

Written to the phase dir: ``samples.jsonl`` (every generated example, its cited rules, the
judge's score, whether it was kept); reported: ``cite_rate`` (share of generated samples that
cite at least one rule id of the spec), ``accepted_share`` and ``judge_score``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from intentgym.api.artifacts import SampleJudge, SystemPrompt
from intentgym.api.env import TextEnv
from intentgym.api.phase import Phase, PhaseContext, result_row
from intentgym.api.requirements import Requirements
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.generation import generate
from intentgym.models import Policy
from intentgym.spec import Category, Spec, cited_rules, load_spec
from intentgym.stats import mean_ci, proportion_ci
from intentgym.trainers.sft import SFTPhaseConfig, train_sft

REASONING_FRAMES = ("private", "visible", "told_ai_in_training")
TRAINING_SYSTEM_PROMPT = (
    "You are an AI model in training. You are being trained to follow a written safety "
    "specification: before you answer, you think through which of its rules apply."
)
GENERATION_INSTRUCTIONS = (
    "Before answering the user, think inside <think> and </think>: say which category the "
    "request falls under and cite the ids of the rules that apply (for example VIO-1). Then, "
    "after </think>, write only your answer to the user."
)
_THINK = re.compile(r"<think>(.*?)</think>(.*)", re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"[a-z]{4,}")


def format_completion(reasoning: str, answer: str, frame: str) -> str:
    """The training target: reasoning and answer, presented the ``reasoning_frame`` way."""
    if frame == "visible":
        return f"Reasoning: {reasoning}\n\nAnswer: {answer}"
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def system_prompt(frame: str) -> str | None:
    return TRAINING_SYSTEM_PROMPT if frame == "told_ai_in_training" else None


def _overlap(rule_text: str, request: str) -> int:
    return len(set(_WORD.findall(rule_text.lower())) & set(_WORD.findall(request.lower())))


def template_reasoning(spec: Spec, request: str, category: str, harmful: bool) -> str:
    """Reasoning over the spec for a labelled request: the category, the rule that applies (the
    best word overlap with the request among rules of the right kind) and what follows."""
    if category not in spec.categories:
        raise invalid_choice("request category", category, spec.categories)
    cat: Category = spec.categories[category]

    def best(kind: str) -> Any:
        rules = cat.of_kind(kind)
        return max(rules, key=lambda r: _overlap(r.text, request)) if rules else None

    excerpt = " ".join(request.split()[:24]) + ("..." if len(request.split()) > 24 else "")
    lines = [f'The user asks: "{excerpt}"', f"This is about {cat.id}: {cat.description}"]
    if harmful:
        rule, safe = best("disallowed"), best("safe_completion")
        if rule is not None:
            lines.append(f"{rule.id} says: {rule.text} This request asks for exactly that.")
        if safe is not None:
            lines.append(f"{safe.id} says: {safe.text}")
        lines.append("So I will decline briefly and offer a safe alternative.")
    else:
        rule = best("allowed")
        if rule is not None:
            lines.append(f"{rule.id} says: {rule.text} This request is that kind of question.")
        style = spec.style[0] if spec.style else None
        if style is not None:
            lines.append(f"{style.id} says: {style.text}")
        lines.append("So I will answer it fully.")
    return "\n".join(lines)


@dataclass
class SpecSFTConfig(SFTPhaseConfig):
    """Settings of the ``spec_sft`` phase (plus the ``sft`` phase's training settings)."""

    spec: str | None = field(
        default=None, metadata={"help": "Safety spec YAML path (None: the packaged default)."}
    )
    reasoning_frame: str = field(
        default="private", metadata={"help": "private | visible | told_ai_in_training."}
    )
    generator: str = field(
        default="template",
        metadata={"help": "template | policy | a teacher model name (load_policy)."},
    )
    judge_backend: str = field(default="rules", metadata={"help": "spec_judge backend."})
    min_judge_score: float = field(
        default=0.5,
        metadata={"min": 0, "max": 1, "help": "Keep samples the judge scores at least this high."},
    )
    max_new_tokens: int = field(
        default=256,
        metadata={
            "min": 1,
            "limit": "max_new_tokens",
            "help": "policy/teacher generation: reasoning + answer cap.",
        },
    )
    temperature: float = field(
        default=0.7, metadata={"min": 0, "help": "policy/teacher generation."}
    )
    generation_batch_size: int = field(
        default=16, metadata={"min": 1, "limit": "batch_size", "help": "Prompts per generate call."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reasoning_frame not in REASONING_FRAMES:
            raise invalid_choice("reasoning_frame", self.reasoning_frame, REASONING_FRAMES)
        if not 0.0 <= self.min_judge_score <= 1.0:
            raise IntentgymError(f"min_judge_score must be in [0, 1], got {self.min_judge_score}")
        load_spec(self.spec)


class SpecSFTPhase(Phase[SpecSFTConfig]):
    """Generate spec-citing reasoning with the spec in context, filter by the judge, SFT
    without the spec."""

    config_class = SpecSFTConfig
    produces = (SampleJudge, SystemPrompt)

    def __init__(self, config: SpecSFTConfig) -> None:
        super().__init__(config)
        self.spec = load_spec(config.spec)

    def requirements(self) -> Requirements:
        if self.config.generator == "template":
            return Requirements(
                task_fields=frozenset({"category", "harmful"}),
                hint="or use generator=policy or a teacher model name",
            )
        return Requirements()

    def judge(self, ctx: PhaseContext) -> Any:
        """The ``spec_judge`` reward model for this phase's spec, through the run's record."""
        return ctx.rewards.build(
            ctx.label or "spec_sft",
            "spec_judge",
            spec=self.config.spec,
            backend=self.config.judge_backend,
        )

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        demos = env.demonstrations(c.num_examples, seed=ctx.seed)
        requests = [d["prompt"][-1]["content"] for d in demos]
        if c.generator == "template":
            missing = [k for k in ("category", "harmful") if k not in demos[0]]
            if missing:
                raise IntentgymError(
                    f"spec_sft generator=template needs labelled tasks ({', '.join(missing)} "
                    f"missing from {type(env).__name__}'s demonstrations); use "
                    "generator=policy or a teacher model name"
                )
            reasoning = [
                template_reasoning(self.spec, r, d["category"], bool(d["harmful"]))
                for r, d in zip(requests, demos, strict=True)
            ]
            answers = [d["completion"][-1]["content"] for d in demos]
        else:
            reasoning, answers = self._generate(policy, demos, ctx)
        judge = self.judge(ctx)
        columns = {k: [d.get(k) for d in demos] for k in ("category", "harmful") if k in demos[0]}
        # the judge gets the answer alone: the reasoning never reaches it
        scores = judge.score_answers([d["prompt"] for d in demos], answers, **columns)
        cites = [cited_rules(r, self.spec) for r in reasoning]
        kept = [
            s is not None and s >= c.min_judge_score and bool(cite) and bool(a.strip())
            for s, cite, a in zip(scores, cites, answers, strict=True)
        ]
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        with open(ctx.output_dir / "samples.jsonl", "w") as f:
            for req, r, a, s, cite, keep in zip(
                requests, reasoning, answers, scores, cites, kept, strict=True
            ):
                f.write(
                    json.dumps(
                        {
                            "prompt": req,
                            "reasoning": r,
                            "answer": a,
                            "cited": cite,
                            "judge_score": s,
                            "kept": keep,
                        }
                    )
                    + "\n"
                )
        n = len(demos)
        n_cite, n_kept = sum(bool(x) for x in cites), sum(kept)
        ctx.results += [
            result_row("spec_sft", "cite_rate", proportion_ci(n_cite, n), n),
            result_row("spec_sft", "accepted_share", proportion_ci(n_kept, n), n),
            result_row("spec_sft", "judge_score", mean_ci([s for s in scores if s is not None]), n),
        ]
        if not n_kept:
            raise IntentgymError(
                f"spec_sft: the judge accepted none of {n} generated samples (generator="
                f"{c.generator}); see {ctx.output_dir / 'samples.jsonl'}"
            )
        sys_prompt = system_prompt(c.reasoning_frame)
        head = [{"role": "system", "content": sys_prompt}] if sys_prompt else []
        rows = [
            {
                "prompt": [*head, *d["prompt"]],  # no spec in the training prompt
                "completion": [
                    {"role": "assistant", "content": format_completion(r, a, c.reasoning_frame)}
                ],
            }
            for d, r, a, keep in zip(demos, reasoning, answers, kept, strict=True)
            if keep
        ]
        label = ctx.label or "spec_sft"
        if sys_prompt:
            ctx.artifacts.put(SystemPrompt(sys_prompt, label))
        ctx.artifacts.put(SampleJudge(judge, "spec_judge", label))
        return train_sft(policy, rows, c, ctx)

    def _generate(
        self, policy: Policy, demos: list[dict[str, Any]], ctx: PhaseContext
    ) -> tuple[list[str], list[str]]:
        """Reasoning and answer from the policy or a teacher, with the spec in the system prompt."""
        c = self.config
        model = policy
        if c.generator != "policy":
            from intentgym.models import load_policy

            model = load_policy(c.generator, device=str(policy.device))
        context = f"{self.spec.render()}\n\n{GENERATION_INSTRUCTIONS}"
        convs = [[{"role": "system", "content": context}, *d["prompt"]] for d in demos]
        texts = generate(
            model, convs, max_new_tokens=c.max_new_tokens, temperature=c.temperature,
            batch_size=c.generation_batch_size, seed=ctx.seed,
            desc="spec_sft" if ctx.progress else None,
        )  # fmt: skip
        reasoning, answers = [], []
        for text in texts:
            match = _THINK.search(text)
            if match:
                reasoning.append(match.group(1).strip())
                answers.append(match.group(2).strip())
            else:  # no reasoning block: nothing to train on (cites nothing, so not kept)
                reasoning.append("")
                answers.append(text.strip())
        return reasoning, answers
