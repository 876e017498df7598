"""Constitutional AI (Bai et al., 2022): the ``sl_cai`` and ``ai_feedback`` phases.

``trainer=constitutional`` is ``sl_cai -> ai_feedback -> reward -> rl``:

- **SL-CAI** (``sl_cai``): sample a reply to each prompt from the policy, then for ``rounds``
  rounds ask the policy to critique its reply against a principle drawn from the constitution
  and to revise it; fine-tune (the ``sft`` phase's ``train_sft``) on the final revisions.
  Every step of every example is written to ``revisions.jsonl``; the env's reward of the first
  and the final reply is reported (did revising help, by the env's own measure?).
- **RL-CAI feedback** (``ai_feedback``): sample two replies per prompt, show both to a
  *feedback model* under a principle's comparison question, and read its preference from the
  log-probability of "(A)" vs "(B)" -- both orders, averaged, so the feedback model's letter
  bias cancels. The labelled pairs go to the ``PreferencePairs`` artifact (and
  ``feedback.jsonl``); the ``reward`` phase trains a preference model on them and the ``rl``
  phase optimises the policy against it. The feedback model is the policy itself (``policy``,
  the default, on CPU), any model ``load_policy`` accepts, or an OpenAI-compatible endpoint
  (``feedback_backend=openai``).

The constitution is a YAML file of principles, each with a ``critique`` request, a ``revision``
request and a ``comparison`` question (``trainers/data/constitution.v1.yaml``, ours; any other
by ``constitution=PATH``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from intentgym.api.artifacts import PreferencePairs
from intentgym.api.env import Task, TextEnv, preference_row
from intentgym.api.phase import Phase, PhaseContext, result_row
from intentgym.choice import LABELS, label_index, label_probabilities
from intentgym.configs import load_yaml
from intentgym.endpoint import ChatEndpoint
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.files import check_lengths, value_kind
from intentgym.generation import chat_prompts, generate
from intentgym.models import Policy
from intentgym.stats import mean_ci, proportion_ci
from intentgym.trainers.sft import SFTPhaseConfig, train_sft

PRINCIPLE_KEYS = ("id", "critique", "revision", "comparison")
FEEDBACK_BACKENDS = ("hf", "openai")
CHOICES = LABELS


@dataclass(frozen=True)
class Principle:
    id: str
    critique: str
    revision: str
    comparison: str


EXAMPLE_KEYS = ("principle", "prompt", "response", "critique", "revision")


@dataclass(frozen=True)
class Constitution:
    principles: tuple[Principle, ...]
    #: worked critique-revision conversations shown before each request (few-shot context)
    examples: tuple[dict[str, str], ...] = ()

    def example_turns(self) -> list[dict[str, str]]:
        """The worked examples as earlier turns of a conversation."""
        by_id = {p.id: p for p in self.principles}
        turns: list[dict[str, str]] = []
        for ex in self.examples:
            p = by_id[ex["principle"]]
            turns += [
                {"role": "user", "content": ex["prompt"]},
                {"role": "assistant", "content": ex["response"]},
                critique_turn(p),
                {"role": "assistant", "content": ex["critique"]},
                revision_turn(p),
                {"role": "assistant", "content": ex["revision"]},
            ]
        return turns


def load_constitution(path: str | Path | None = None) -> Constitution:
    """A constitution YAML (``None``: the packaged default), validated."""
    data, source = load_yaml(
        path, "constitution", ("intentgym.trainers", "data/constitution.v1.yaml"), expect=dict
    )
    rows = data.get("principles")
    if not isinstance(rows, list) or not rows:
        raise IntentgymError(
            f"constitution {source} needs a non-empty 'principles:' list, each with "
            f"{', '.join(PRINCIPLE_KEYS)}"
        )
    out = []
    seen: dict[str, int] = {}
    for k, row in enumerate(rows):
        row = row if isinstance(row, dict) else {}
        bad = [key for key in PRINCIPLE_KEYS if not isinstance(row.get(key), str)]
        if bad:
            raise IntentgymError(
                f"constitution {source}, principle {k}: missing or non-text {', '.join(bad)} "
                f"(each principle needs {', '.join(PRINCIPLE_KEYS)})"
            )
        check_lengths(row, PRINCIPLE_KEYS, f"constitution {source}, principle {k}")
        principle = Principle(*(row[key].strip() for key in PRINCIPLE_KEYS))
        if principle.id in seen:
            raise IntentgymError(
                f"constitution {source} has duplicate principle ids: principle {k} repeats "
                f"{principle.id!r} (principle {seen[principle.id]})"
            )
        seen[principle.id] = k
        out.append(principle)
    examples = data.get("examples") or []
    if not isinstance(examples, list):
        raise IntentgymError(
            f"constitution {source}: 'examples:' must be a list, got {value_kind(examples)}"
        )
    ids = {p.id for p in out}
    for k, ex in enumerate(examples):
        ex = ex if isinstance(ex, dict) else {}
        bad = [key for key in EXAMPLE_KEYS if not isinstance(ex.get(key), str)]
        if bad or ex["principle"] not in ids:
            raise IntentgymError(
                f"constitution {source}, example {k}: needs {', '.join(EXAMPLE_KEYS)} (text), "
                "with 'principle' one of the principle ids"
            )
        check_lengths(ex, EXAMPLE_KEYS, f"constitution {source}, example {k}")
    return Constitution(tuple(out), tuple(dict(ex) for ex in examples))


def sample_tasks(env: TextEnv, n: int, seed: int) -> list[Task]:
    """``n`` training tasks: the env's distinct ones in a seeded order when it offers them."""
    train_tasks = getattr(env, "train_tasks", None)
    if callable(train_tasks):
        return list(train_tasks(n, seed=seed))
    rng = np.random.default_rng(seed)
    return [env.sample_task(rng) for _ in range(n)]


def env_rewards(env: TextEnv, tasks: list[Task], replies: list[str]) -> list[float]:
    return [env.score_one(t, r)[0] for t, r in zip(tasks, replies, strict=True)]


# --- SL-CAI --------------------------------------------------------------------------------------
@dataclass
class SLCAIConfig(SFTPhaseConfig):
    """Settings of the ``sl_cai`` phase (plus the ``sft`` phase's training settings)."""

    constitution: str | None = field(
        default=None, metadata={"help": "Constitution YAML path (None: the packaged default)."}
    )
    rounds: int = field(
        default=1, metadata={"min": 1, "help": "Critique-revision rounds per example."}
    )
    max_new_tokens: int = field(
        default=96,
        metadata={"min": 1, "limit": "max_new_tokens", "help": "Length cap of replies/revisions."},
    )
    critique_tokens: int = field(
        default=64, metadata={"min": 1, "help": "Length cap of critiques."}
    )
    temperature: float = field(
        default=0.7,
        metadata={"min": 0, "help": "Sampling temperature of the first reply (0: greedy)."},
    )
    generation_batch_size: int = field(
        default=16, metadata={"min": 1, "limit": "batch_size", "help": "Prompts per generate call."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rounds < 1:
            raise IntentgymError(f"rounds must be >= 1, got {self.rounds}")
        load_constitution(self.constitution)  # fail before any training starts


def critique_turn(principle: Principle) -> dict[str, str]:
    return {"role": "user", "content": f"Critique request: {principle.critique}"}


def revision_turn(principle: Principle) -> dict[str, str]:
    return {
        "role": "user",
        "content": f"Revision request: {principle.revision} Reply with the rewritten response only.",
    }


class SLCAIPhase(Phase[SLCAIConfig]):
    """Sample, critique and revise against the constitution; fine-tune on the revisions."""

    config_class = SLCAIConfig

    def __init__(self, config: SLCAIConfig) -> None:
        super().__init__(config)
        self.constitution = load_constitution(config.constitution)
        self.principles = self.constitution.principles

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        rng = np.random.default_rng(ctx.seed + 17)
        shots = self.constitution.example_turns()
        tasks = sample_tasks(env, c.num_examples, ctx.seed)
        convs = [list(t.messages) for t in tasks]
        gen: dict[str, Any] = {"batch_size": c.generation_batch_size, "seed": ctx.seed}
        desc = "sl_cai" if ctx.progress else None
        first = generate(
            policy, convs, max_new_tokens=c.max_new_tokens, temperature=c.temperature, **gen,
            desc=desc,
        )  # fmt: skip
        replies = [r.strip() for r in first]
        steps: list[list[dict[str, Any]]] = [[] for _ in tasks]
        for _ in range(c.rounds):
            chosen = [self.principles[int(rng.integers(len(self.principles)))] for _ in tasks]
            asked = [
                [*shots, *conv, {"role": "assistant", "content": reply}, critique_turn(p)]
                for conv, reply, p in zip(convs, replies, chosen, strict=True)
            ]
            critiques = generate(policy, asked, max_new_tokens=c.critique_tokens, **gen)
            revise = [
                [*conv, {"role": "assistant", "content": crit.strip()}, revision_turn(p)]
                for conv, crit, p in zip(asked, critiques, chosen, strict=True)
            ]
            revisions = generate(policy, revise, max_new_tokens=c.max_new_tokens, **gen)
            for k, (p, crit, rev) in enumerate(zip(chosen, critiques, revisions, strict=True)):
                rev = rev.strip()
                usable = bool(rev) and not _echoes(rev, crit)
                steps[k].append(
                    {"principle": p.id, "critique": crit.strip(), "revision": rev, "used": usable}
                )
                if usable:  # an empty revision, or one that repeats the critique, changes nothing
                    replies[k] = rev
        before = env_rewards(env, tasks, [r.strip() for r in first])
        after = env_rewards(env, tasks, replies)
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        with open(ctx.output_dir / "revisions.jsonl", "w") as f:
            for task, reply0, rounds, final, r0, r1 in zip(
                tasks, first, steps, replies, before, after, strict=True
            ):
                row = {
                    "prompt": task.messages[-1]["content"],
                    "meta": task.meta,
                    "initial": reply0.strip(),
                    "rounds": rounds,
                    "final": final,
                    "env_reward_initial": r0,
                    "env_reward_final": r1,
                }
                f.write(json.dumps(row) + "\n")
        n = len(tasks)
        changed = sum(a != b.strip() for a, b in zip(replies, first, strict=True))
        ctx.results += [
            result_row("sl_cai", "env_reward_initial", mean_ci(before), n),
            result_row("sl_cai", "env_reward_revised", mean_ci(after), n),
            result_row("sl_cai", "revised_share", (changed / n, changed / n, changed / n), n),
        ]
        rows = [
            {"prompt": list(t.messages), "completion": [{"role": "assistant", "content": r}]}
            for t, r in zip(tasks, replies, strict=True)
            if r
        ]
        if not rows:
            raise IntentgymError("sl_cai produced no non-empty revisions to train on")
        return train_sft(policy, rows, c, ctx)


def _echoes(revision: str, critique: str) -> bool:
    """Whether a revision merely repeats its critique (small models often do)."""
    a, b = " ".join(revision.split()).lower(), " ".join(critique.split()).lower()
    head = min(len(a), len(b), 60)
    return head > 0 and a[:head] == b[:head]


# --- RL-CAI: AI feedback -------------------------------------------------------------------------
@dataclass
class AIFeedbackConfig:
    """Settings of the ``ai_feedback`` phase: pairs of the policy's samples labelled by a model."""

    constitution: str | None = field(
        default=None, metadata={"help": "Constitution YAML path (None: the packaged default)."}
    )
    num_pairs: int = field(
        default=64,
        metadata={
            "min": 2,
            "limit": "train_examples",
            "help": "Prompts to sample a pair of replies for.",
        },
    )
    max_new_tokens: int = field(
        default=64,
        metadata={"min": 1, "limit": "max_new_tokens", "help": "Length cap of sampled replies."},
    )
    temperature: float = field(
        default=1.0, metadata={"min": 0, "help": "Sampling temperature (> 0)."}
    )
    generation_batch_size: int = field(
        default=16, metadata={"min": 1, "limit": "batch_size", "help": "Prompts per generate call."}
    )
    feedback_model: str = field(
        default="policy",
        metadata={"help": "policy (the model being trained) | a model name load_policy accepts "
                  "| the endpoint's model name (feedback_backend=openai)."},
    )  # fmt: skip
    feedback_backend: str = field(default="hf", metadata={"help": "hf | openai."})
    base_url: str | None = field(default=None, metadata={"help": "openai: the endpoint's URL."})
    api_key_env: str | None = field(
        default="OPENAI_API_KEY",
        metadata={"help": "openai: the NAME of the key's environment variable (null: no key)."},
    )
    min_confidence: float = field(
        default=0.0,
        metadata={
            "min": 0,
            "lt": 0.5,
            "help": "Drop pairs whose P(preferred) - 0.5 is below this (0: keep all).",
        },
    )
    batch_size: int = field(
        default=8,
        metadata={"min": 1, "limit": "batch_size", "help": "hf: packed rows per scoring pass."},
    )

    def __post_init__(self) -> None:
        if self.feedback_backend not in FEEDBACK_BACKENDS:
            raise invalid_choice(
                "ai_feedback feedback_backend", self.feedback_backend, FEEDBACK_BACKENDS
            )
        if self.feedback_backend == "openai" and (
            not self.base_url or self.feedback_model == "policy"
        ):
            raise IntentgymError(
                "feedback_backend=openai needs base_url=URL and feedback_model=<the endpoint's "
                "model name>"
            )
        if self.temperature <= 0:
            raise IntentgymError(
                f"temperature must be > 0 to sample two replies, got {self.temperature}"
            )
        if not 0.0 <= self.min_confidence < 0.5:
            raise IntentgymError(f"min_confidence must be in [0, 0.5), got {self.min_confidence}")
        load_constitution(self.constitution)


def comparison_prompt(principle: Principle, prompt: str, first: str, second: str) -> str:
    """The feedback model's question: which of two replies better fits one principle."""
    return (
        "Consider this conversation between a user and an AI assistant.\n\n"
        f"User: {prompt}\n\n{principle.comparison}\n\n"
        f"Options:\n{CHOICES[0]} {first}\n{CHOICES[1]} {second}\n\n"
        "Answer with (A) or (B)."
    )


def feedback_endpoint(base_url: str, model: str, api_key: str | None = None) -> ChatEndpoint:
    """P(A) / P(B) from an OpenAI-compatible endpoint: the letters among the first token's top
    log-probabilities (or the written letter without them), with the endpoint client's retry
    and error policy."""
    return ChatEndpoint(
        base_url,
        model,
        classify=label_index,
        classify_text=label_index,
        api_key=api_key,
        what="feedback endpoint",
    )


class AIFeedbackPhase(Phase[AIFeedbackConfig]):
    """Label pairs of the policy's own samples with a feedback model under the constitution."""

    config_class = AIFeedbackConfig
    changes_policy = False
    produces = (PreferencePairs,)

    def __init__(self, config: AIFeedbackConfig) -> None:
        super().__init__(config)
        self.principles = load_constitution(config.constitution).principles

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        rng = np.random.default_rng(ctx.seed + 29)
        tasks = sample_tasks(env, c.num_pairs, ctx.seed + 1)
        convs = [list(t.messages) for t in tasks]
        # two samples per prompt: the prompt list twice, so one batched sampling pass
        samples = generate(
            policy, convs + convs, max_new_tokens=c.max_new_tokens, temperature=c.temperature,
            batch_size=c.generation_batch_size, seed=ctx.seed,
            desc="ai_feedback" if ctx.progress else None,
        )  # fmt: skip
        pairs = [
            (t, a.strip(), b.strip(), self.principles[int(rng.integers(len(self.principles)))])
            for t, a, b in zip(tasks, samples[: len(tasks)], samples[len(tasks) :], strict=True)
        ]
        pairs = [p for p in pairs if p[1] and p[2] and p[1] != p[2]]
        questions = [
            comparison_prompt(p, t.messages[-1]["content"], first, second)
            for t, a, b, p in pairs
            for first, second in ((a, b), (b, a))
        ]
        desc = "ai_feedback: label" if ctx.progress else None
        p_first = self.p_first(policy, questions, desc=desc)  # P("(A)") per question
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        rows, kept = [], []
        with open(ctx.output_dir / "feedback.jsonl", "w") as f:
            for k, (task, a, b, principle) in enumerate(pairs):
                # P(a better): a was option A in the first order and option B in the second
                p_a = (p_first[2 * k] + (1.0 - p_first[2 * k + 1])) / 2
                keep = abs(p_a - 0.5) >= c.min_confidence and p_a != 0.5
                f.write(
                    json.dumps(
                        {
                            "prompt": task.messages[-1]["content"],
                            "principle": principle.id,
                            "reply_a": a,
                            "reply_b": b,
                            "p_a_preferred": p_a,
                            "p_first_option": [p_first[2 * k], p_first[2 * k + 1]],
                            "kept": keep,
                        }
                    )
                    + "\n"
                )
                if keep:
                    chosen, rejected = (a, b) if p_a > 0.5 else (b, a)
                    rows.append(preference_row(task, chosen, rejected))
                    kept.append((task, chosen, rejected, max(p_a, 1 - p_a)))
        if not rows:
            raise IntentgymError(
                f"ai_feedback kept no pairs ({len(pairs)} sampled; min_confidence="
                f"{c.min_confidence}): sample more (num_pairs) or lower min_confidence"
            )
        ctx.artifacts.put(PreferencePairs(tuple(rows), ctx.label or "ai_feedback"))
        # How often the AI label agrees with the env's own reward, where the env tells them apart.
        decided = [(env.score_one(t, ch)[0], env.score_one(t, rj)[0]) for t, ch, rj, _ in kept]
        decided = [(x, y) for x, y in decided if x != y]
        n_dec = len(decided)
        agree = sum(x > y for x, y in decided)
        bias = float(np.mean(p_first))
        ctx.results += [
            result_row("ai_feedback", "pairs_kept", (float(len(rows)),) * 3, len(pairs)),
            result_row("ai_feedback", "mean_confidence", mean_ci([k[3] for k in kept]), len(kept)),
            result_row("ai_feedback", "first_option_bias", (bias, bias, bias), len(p_first)),
        ]
        if n_dec:
            ctx.results.append(
                result_row(
                    "ai_feedback", "agrees_with_env_reward", proportion_ci(agree, n_dec), n_dec
                )
            )
        ctx.output_dir.joinpath("phase_config.json").write_text(json.dumps(asdict(c), indent=2))
        return policy

    def p_first(self, policy: Policy, questions: list[str], desc: str | None = None) -> list[float]:
        """P(the feedback model answers "(A)") for each question, renormalised over A and B;
        ``desc``: a progress bar with this label (None: none)."""
        c = self.config
        if c.feedback_backend == "openai":
            from intentgym.apikeys import resolve_api_key

            key = resolve_api_key(
                c.api_key_env,
                c.base_url,
                setting="ai_feedback api_key_env",
                what="feedback endpoint",
            )
            scorer = feedback_endpoint(str(c.base_url), c.feedback_model, api_key=key)
            out = []
            for dist in scorer.distributions(questions, desc=desc):
                total = dist.get(0, 0.0) + dist.get(1, 0.0)
                out.append(dist.get(0, 0.0) / total if total > 0 else 0.5)
            return out
        judge = policy
        if c.feedback_model != "policy":
            from intentgym.models import load_policy

            judge = load_policy(c.feedback_model, device=str(policy.device))
        prompts = chat_prompts(judge, [[{"role": "user", "content": q}] for q in questions])
        probabilities = label_probabilities(
            judge, prompts, CHOICES, batch_size=c.batch_size, desc=desc
        )
        return [p[0] for p in probabilities]
