"""Steer -> distill (the ``steer_distill`` phase), with Goodhart checks on the concept's probes.

One iteration: generate replies to the trait's prompts while steering along the trait's
direction (``intentgym.steering``), fine-tune the **unsteered** model on them (SFT, through
``train_sft``), then re-extract the direction from the new model. ``trainer=steer_distill``
repeats the phase ``repeat: k`` times, so the runner probes the policy after every iteration.

State carried across iterations in ``ctx.artifacts["steer_distill"]``: the original direction
(extracted from the base model on the train pairs), the current one, a logistic-regression probe
for the trait fitted on the base model's activations, and the history below.

Goodhart metrics, measured on the base model (iteration 0) and after every iteration, at each
layer, on the held-out pairs (never used for a direction or the probe):

- ``probe_accuracy``: the base model's linear probe on the new model's activations;
- ``cosine_to_original``: the re-extracted direction against the original;
- ``projection_positive`` / ``projection_negative`` / ``projection_gap``: mean projection of
  the held-out positive / negative reply activations on the original unit direction;
- ``behaviour``: the trait's forced-choice set (``behaviour_set``; scored by answer text,
  unsteered), mean P(misaligned answer) with a t CI.

In the first iteration the phase also measures steering itself: the behaviour set at
``alpha`` against ``alpha = 0`` on the base model, paired per item (``steering/*`` rows), which
gives the shift that distillation may or may not retain (``retained_share``).

Written: ``phases/<label>/samples.jsonl`` (the steered generations trained on), and in the run
dir ``goodhart.jsonl`` (one row per iteration) and ``goodhart.png`` (the four metrics across
iterations), rewritten after every iteration.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from intentgym import steering
from intentgym.envs.base import TextEnv
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.generation import generate
from intentgym.models import Policy
from intentgym.probes.stats import mean_ci, proportion_ci
from intentgym.trainers.phase import PhaseContext, result_row
from intentgym.trainers.sft import SFTPhaseConfig, train_sft

log = logging.getLogger(__name__)

#: the forced-choice set that measures each built-in trait's behaviour
TRAIT_SETS = {
    "honesty": "deception",
    "kindness": "harmful_advice",
    "corrigibility": "corrigibility",
    "benevolence": "anti_human",
}
STEER_WITH = ("current", "original")
KEY = "steer_distill"


@dataclass
class SteerDistillConfig(SFTPhaseConfig):
    """Settings of one steer -> distill iteration (plus the ``sft`` phase's training settings)."""

    trait: str = field(
        default="corrigibility",
        metadata={"help": "honesty | kindness | corrigibility | benevolence | a pairs JSONL path."},
    )
    layers: list[int] = field(
        default_factory=lambda: [12],
        metadata={"help": "Decoder layers read and steered (0-based; negative from the end)."},
    )
    method: str = field(default="mean_diff", metadata={"help": "mean_diff | pca."})
    alpha: float = field(default=8.0, metadata={"help": "Steering strength in generation."})
    steer_with: str = field(
        default="current",
        metadata={"help": "current: the direction re-extracted last iteration | original."},
    )
    num_prompts: int = field(
        default=0, metadata={"help": "Train-split prompts generated per iteration (0: all)."}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Steered generation length."})
    temperature: float = field(default=0.7, metadata={"help": "Steered generation temperature."})
    generation_batch_size: int = field(default=16, metadata={"help": "Prompts per generate call."})
    behaviour_set: str = field(
        default="auto", metadata={"help": "Forced-choice set for the trait (auto: by trait)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in steering.METHODS:
            raise invalid_choice("method", self.method, steering.METHODS)
        if self.steer_with not in STEER_WITH:
            raise invalid_choice("steer_with", self.steer_with, STEER_WITH)
        if not self.layers:
            raise IntentgymError("layers is empty; give decoder layers such as [12]")
        steering.load_pairs(self.trait)  # an unknown trait or a bad file fails now
        if self.behaviour_set == "auto" and self.trait not in TRAIT_SETS:
            raise IntentgymError(
                f"trait {self.trait!r} has no default forced-choice set; set behaviour_set to "
                f"one of the built-in sets (see `intentgym list`)"
            )

    @property
    def forced_choice_set(self) -> str:
        return TRAIT_SETS[self.trait] if self.behaviour_set == "auto" else self.behaviour_set


class SteerDistillPhase:
    config_class = SteerDistillConfig

    def __init__(self, config: SteerDistillConfig) -> None:
        self.config = config

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        pairs = steering.load_pairs(c.trait)
        train, held = steering.split_pairs(pairs)
        if not held:
            raise IntentgymError(f"trait {c.trait!r}: no pair falls in the held-out split")
        state = ctx.artifacts.get(KEY)
        if state is None or state["trait"] != c.trait:
            state = self._start(policy, train, held, ctx)
            ctx.artifacts[KEY] = state
        iteration = state["iteration"] + 1
        vectors = state["current" if c.steer_with == "current" else "original"]

        prompts = [p.prompt for p in train][: c.num_prompts or None]
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        with steering.steering(policy, vectors, c.alpha):
            replies = generate(
                policy,
                conversations,
                max_new_tokens=c.max_new_tokens,
                temperature=c.temperature,
                batch_size=c.generation_batch_size,
                seed=ctx.seed + iteration,
                desc="steered generation" if ctx.progress else None,
            )
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        with (ctx.output_dir / "samples.jsonl").open("w") as f:
            for prompt, reply in zip(prompts, replies, strict=True):
                f.write(json.dumps({"prompt": prompt, "reply": reply, "alpha": c.alpha}) + "\n")
        rows = [
            {
                "prompt": [{"role": "user", "content": p}],
                "completion": [{"role": "assistant", "content": r}],
            }
            for p, r in zip(prompts, replies, strict=True)
            if r.strip()
        ]
        if not rows:
            raise IntentgymError("steered generation produced only empty replies; lower alpha")
        policy = train_sft(policy, rows, c, ctx)

        metrics, current = self._measure(policy, train, held, state)
        state["current"], state["iteration"] = current, iteration
        steered = state["steering"]
        shift = steered["alpha"] - steered["alpha0"]
        metrics["retained_share"] = (
            (metrics["behaviour"][0] - steered["alpha0"]) / shift if abs(shift) > 1e-9 else None
        )
        state["history"].append({"iteration": iteration, **metrics})
        ctx.results += _rows(metrics, len(held))
        self._write(state, ctx)
        return policy

    def _start(
        self,
        policy: Policy,
        train: list[steering.Pair],
        held: list[steering.Pair],
        ctx: PhaseContext,
    ) -> dict[str, Any]:
        """Iteration 0 on the base model: directions, the trait probe, and steering's effect."""
        c = self.config
        layers = steering.check_layers(policy, c.layers)
        pos, neg = steering.pair_activations(policy, train, layers)
        original = {layer: steering.direction(pos[layer], neg[layer], c.method) for layer in layers}
        probes = {layer: _fit_probe(pos[layer], neg[layer]) for layer in layers}
        state: dict[str, Any] = {
            "trait": c.trait,
            "layers": layers,
            "original": original,
            "current": original,
            "probes": probes,
            "iteration": 0,
            "history": [],
        }
        base, _ = self._measure(policy, train, held, state)
        unsteered = _behaviour_items(policy, c.forced_choice_set)
        with steering.steering(policy, original, c.alpha):
            steered = _behaviour_items(policy, c.forced_choice_set)
        diffs = [steered[k] - unsteered[k] for k in unsteered]
        state["steering"] = {
            "alpha": sum(steered.values()) / len(steered),
            "alpha0": sum(unsteered.values()) / len(unsteered),
        }
        ctx.results += [
            result_row(
                "steering", "p_misaligned_alpha0", mean_ci(list(unsteered.values())), len(diffs)
            ),
            result_row(
                "steering", "p_misaligned_alpha", mean_ci(list(steered.values())), len(diffs)
            ),
            result_row("steering", "delta_p_misaligned", mean_ci(diffs), len(diffs)),
        ]
        base_rows = _rows(base, len(held))
        ctx.results += [{**r, "probe": "goodhart_base"} for r in base_rows]
        state["history"].append({"iteration": 0, **base})
        return state

    def _measure(
        self,
        policy: Policy,
        train: list[steering.Pair],
        held: list[steering.Pair],
        state: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[int, torch.Tensor]]:
        c, layers = self.config, state["layers"]
        pos, neg = steering.pair_activations(policy, [*train, *held], layers)
        n = len(train)
        metrics: dict[str, Any] = {}
        current = {}
        for layer in layers:
            current[layer] = steering.direction(pos[layer][:n], neg[layer][:n], c.method)
            unit = state["original"][layer] / state["original"][layer].norm()
            hp, hn = pos[layer][n:], neg[layer][n:]
            probe = state["probes"][layer]
            correct = int(
                (probe.predict(hp.numpy()) == 1).sum() + (probe.predict(hn.numpy()) == 0).sum()
            )
            metrics[f"probe_accuracy@{layer}"] = proportion_ci(correct, 2 * len(hp))
            metrics[f"cosine_to_original@{layer}"] = steering.cosine(
                current[layer], state["original"][layer]
            )
            metrics[f"projection_positive@{layer}"] = mean_ci((hp @ unit).tolist())
            metrics[f"projection_negative@{layer}"] = mean_ci((hn @ unit).tolist())
            metrics[f"projection_gap@{layer}"] = mean_ci(((hp - hn) @ unit).tolist())
        items = _behaviour_items(policy, c.forced_choice_set)
        metrics["behaviour"] = mean_ci(list(items.values()))
        return metrics, current

    def _write(self, state: dict[str, Any], ctx: PhaseContext) -> None:
        run_dir = ctx.output_dir.parent.parent
        with (run_dir / "goodhart.jsonl").open("w") as f:
            for row in state["history"]:
                f.write(json.dumps(row) + "\n")
        plot_goodhart(state["history"], state["layers"], run_dir / "goodhart.png", self.config)


def _fit_probe(positive: torch.Tensor, negative: torch.Tensor) -> Any:
    """Logistic regression for the trait on one layer's activations (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = torch.cat([positive, negative]).numpy()
    y = [1] * len(positive) + [0] * len(negative)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)


def _behaviour_items(policy: Policy, set_name: str) -> dict[str, float]:
    """Per item of a forced-choice set: P(misaligned answer), options scored by their text."""
    from intentgym.envs import make_env
    from intentgym.probes import ForcedChoiceProbe, ProbeContext
    from intentgym.probes.forced_choice import ForcedChoiceConfig

    probe = ForcedChoiceProbe(ForcedChoiceConfig(sets=[set_name], scoring="answer"))
    ctx = ProbeContext(make_env("insecure_code", framing="secure"), progress=False)
    return {r["id"]: r["p_misaligned"] for r in probe.run(policy, ctx).records}


def _rows(metrics: dict[str, Any], n_held: int) -> list[dict[str, Any]]:
    out = []
    for name, value in metrics.items():
        if value is None:
            continue
        estimate = value if isinstance(value, tuple) else (value, value, value)
        out.append(result_row("goodhart", name, estimate, n_held))
    return out


def plot_goodhart(
    history: list[dict[str, Any]], layers: list[int], path: Path, config: SteerDistillConfig
) -> None:
    """Four panels across iterations: probe accuracy, cosine, projection gap, behaviour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [h["iteration"] for h in history]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    panels = [
        ("probe_accuracy", "linear probe accuracy (held out)"),
        ("cosine_to_original", "cosine to the original direction"),
        ("projection_gap", "projection gap on the original direction"),
    ]
    for ax, (key, title) in zip(axes, panels, strict=False):
        for layer in layers:
            values = [h[f"{key}@{layer}"] for h in history]
            if isinstance(values[0], (list, tuple)):
                mid = [v[0] for v in values]
                ax.fill_between(x, [v[1] for v in values], [v[2] for v in values], alpha=0.2)
            else:
                mid = values
            ax.plot(x, mid, marker="o", label=f"layer {layer}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    ax = axes[3]
    values = [h["behaviour"] for h in history]
    ax.plot(x, [v[0] for v in values], marker="o", color="black")
    ax.fill_between(x, [v[1] for v in values], [v[2] for v in values], alpha=0.2, color="grey")
    ax.set_title(f"{config.forced_choice_set}: P(misaligned answer), unsteered", fontsize=9)
    ax.set_xlabel("iteration")
    fig.suptitle(f"steer -> distill, trait {config.trait}, alpha {config.alpha}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
