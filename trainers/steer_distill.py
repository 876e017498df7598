"""Steer -> distill (the ``steer_distill`` phase), with Goodhart checks on the concept's probes.

One iteration: generate replies to the trait's prompts while steering along the trait's
direction (``intentgym.steering``), fine-tune the **unsteered** model on them (SFT, through
``train_sft``), then re-extract the direction from the new model. ``trainer=steer_distill``
repeats the phase ``repeat: k`` times, so the runner probes the policy after every iteration.

State carried across iterations in the ``SteeringState`` artifact: the original direction
(extracted from the base model on the train pairs), the current one, a logistic-regression probe
for the trait fitted on the base model's activations, and the history below.

Goodhart metrics, measured on the base model (iteration 0) and after every iteration, at each
layer, on the held-out pairs (never used for a direction or the probe):

- ``probe_accuracy``: the base model's linear probe on the new model's activations;
- ``cosine_to_original``: the re-extracted direction against the original;
- ``projection_positive`` / ``projection_negative`` / ``projection_gap``: mean projection of
  the held-out positive / negative reply activations on the original unit direction;
- ``behaviour``: the trait's forced-choice set (``behaviour_set``; scored by answer text,
  unsteered), mean P(misaligned answer) with a t CI;
- ``behaviour_shift``: its change against the base model, paired per item (bootstrap CI), and
  ``retained_share``, that change over steering's own shift (a ratio of paired means, with a
  bootstrap interval over the same items);
- ``steered_kept_share`` / ``steered_coherence``: how many of the iteration's steered replies the
  coherence guard let through, and their mean coherence (0-100).

In the first iteration the phase also measures steering itself: the behaviour set at
``alpha`` against ``alpha = 0`` on the base model, paired per item (``steering/*`` rows), which
gives the shift that distillation may or may not retain.

Coherence guard: steering strong enough to move behaviour also degrades text, and distilling
degraded text compounds it (after two iterations at alpha 8, steering the distilled model gave
loops such as "same same same"; docs/experiments.md). Steered replies are therefore scored by a
judge (default: the offline ``coherence`` judge, whose reference model is the untrained base
model) and only those scoring above ``min_coherence`` are trained on. When fewer than
``min_kept_share`` of them pass, alpha is halved and the replies generated again, at most
``alpha_halvings`` times; the alpha an iteration used is reported (``alpha_used``). A model that
already carries the trait from earlier iterations needs less steering to show it.

``env``: this trainer does not train on the env; its data are the trait's pairs. The env serves
only the probes that use one (``in_domain``, ``compliance_gap``), and the run is labelled by its
trait (``steer_distill/corrigibility``) instead of the env's framing (``data_label``).

Written to the phase dir: ``samples.jsonl`` (the steered generations trained on),
``goodhart.jsonl`` (one row per iteration so far) and ``goodhart.png`` (the metrics across
iterations); both are published to the run dir, where the runner copies the latest after every
iteration (the report links ``goodhart.png``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from intentgym import steering
from intentgym.api.artifacts import Artifact
from intentgym.api.env import TextEnv
from intentgym.api.phase import Phase, PhaseContext, result_row
from intentgym.api.requirements import Requirements
from intentgym.api.reward import score_with_progress
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.generation import generate
from intentgym.models import Policy
from intentgym.stats import bootstrap_ratio, mean_ci, paired_difference, proportion_ci
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


@dataclass
class SteeringState(Artifact):
    """What one steer -> distill iteration hands to the next (one per run and trait)."""

    describe = "the state of an earlier steer_distill iteration"
    trait: str
    #: decoder layers read and steered (resolved to non-negative indices)
    layers: list[int]
    #: per layer: the direction extracted from the base model on the train pairs
    original: dict[int, torch.Tensor]
    #: per layer: the direction re-extracted after the latest iteration
    current: dict[int, torch.Tensor]
    #: per layer: the logistic-regression probe for the trait, fitted on base activations
    probes: dict[int, Any]
    #: steering's own effect on the base model: per-item P(misaligned) at alpha 0 and at alpha,
    #: and the mean shift
    alpha0: dict[str, float] = field(default_factory=dict)
    steered: dict[str, float] = field(default_factory=dict)
    shift: float = 0.0
    iteration: int = 0
    #: one row of Goodhart metrics per iteration (0 = the base model)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SteerDistillConfig(SFTPhaseConfig):
    """Settings of one steer -> distill iteration (plus the ``sft`` phase's training settings)."""

    trait: str = field(
        default="corrigibility",
        metadata={"help": "honesty | kindness | corrigibility | benevolence | a pairs JSONL path."},
    )
    layers: list[int | float] = field(
        default_factory=lambda: [0.4],
        metadata={
            "help": "Decoder layers read and steered: indices (0-based; negative from the end) "
            "or fractions of the depth in (0, 1) (0.4 = layer 12 of SmolLM2-135M's 30)."
        },
    )
    method: str = field(default="mean_diff", metadata={"help": "mean_diff | pca."})
    alpha: float = field(default=8.0, metadata={"help": "Steering strength in generation."})
    steer_with: str = field(
        default="current",
        metadata={"help": "current: the direction re-extracted last iteration | original."},
    )
    num_prompts: int = field(
        default=0,
        metadata={
            "min": 0,
            "limit": "train_examples",
            "unset": 0,
            "help": "Train-split prompts generated per iteration (0: all).",
        },
    )
    max_new_tokens: int = field(
        default=64,
        metadata={"min": 1, "limit": "max_new_tokens", "help": "Steered generation length."},
    )
    temperature: float = field(
        default=0.7, metadata={"min": 0, "help": "Steered generation temperature."}
    )
    generation_batch_size: int = field(
        default=16, metadata={"min": 1, "limit": "batch_size", "help": "Prompts per generate call."}
    )
    behaviour_set: str = field(
        default="auto", metadata={"help": "Forced-choice set for the trait (auto: by trait)."}
    )
    min_coherence: float = field(
        default=50.0,
        metadata={
            "min": 0,
            "lt": 100,
            "help": "Train only on steered replies the judge scores above this (0: all).",
        },
    )
    min_kept_share: float = field(
        default=0.5,
        metadata={
            "gt": 0,
            "max": 1,
            "help": "Fewer steered replies passing than this share: halve alpha, retry.",
        },
    )
    alpha_halvings: int = field(
        default=2, metadata={"min": 0, "help": "How often alpha may be halved in one iteration."}
    )
    coherence_judge: dict[str, Any] = field(
        default_factory=lambda: {"name": "coherence"},
        metadata={"help": "Reward-model spec scoring coherence 0-100 (the guard's judge)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in steering.METHODS:
            raise invalid_choice("method", self.method, steering.METHODS)
        if self.steer_with not in STEER_WITH:
            raise invalid_choice("steer_with", self.steer_with, STEER_WITH)
        if not self.layers:
            raise IntentgymError("layers is empty; give decoder layers such as [12]")
        if not 0 <= self.min_coherence < 100:
            raise IntentgymError(
                f"min_coherence must be in [0, 100) (0 keeps every reply), got {self.min_coherence}"
            )
        if not 0 < self.min_kept_share <= 1:
            raise IntentgymError(f"min_kept_share must be in (0, 1], got {self.min_kept_share}")
        if self.alpha_halvings < 0:
            raise IntentgymError(f"alpha_halvings must be >= 0, got {self.alpha_halvings}")
        if not isinstance(self.coherence_judge, dict) or "name" not in self.coherence_judge:
            raise IntentgymError(
                f"coherence_judge must be a reward-model spec such as {{name: coherence}}, "
                f"got {self.coherence_judge!r}"
            )
        steering.load_pairs(self.trait)  # an unknown trait or a bad file fails now
        if self.behaviour_set == "auto" and self.trait not in TRAIT_SETS:
            raise IntentgymError(
                f"trait {self.trait!r} has no default forced-choice set; set behaviour_set to "
                f"one of the built-in sets (see `intentgym list`)"
            )

    @property
    def forced_choice_set(self) -> str:
        return TRAIT_SETS[self.trait] if self.behaviour_set == "auto" else self.behaviour_set


class SteerDistillPhase(Phase[SteerDistillConfig]):
    """Steered generation -> SFT of the unsteered model -> re-extracted direction, per iteration."""

    config_class = SteerDistillConfig
    produces = (SteeringState,)

    def requirements(self) -> Requirements:
        indices = tuple(int(k) for k in self.config.layers if float(k).is_integer())
        return Requirements(layers=indices)

    def preflight(self) -> None:
        """The trait's pairs parse, and the coherence guard's judge can be built."""
        from intentgym.api.reward import preflight_reward_model

        steering.load_pairs(self.config.trait)
        if self.config.min_coherence > 0:
            where = "steer_distill coherence_judge"
            preflight_reward_model(dict(self.config.coherence_judge), where)

    @property
    def data_label(self) -> str:
        """What the run trains on, shown where other runs show the env's framing."""
        trait = self.config.trait
        return trait if trait in steering.TRAITS else Path(trait).stem

    def run(self, policy: Policy, env: TextEnv, ctx: PhaseContext) -> Policy:
        c = self.config
        pairs = steering.load_pairs(c.trait)
        train, held = steering.split_pairs(pairs)
        if not held:
            raise IntentgymError(f"trait {c.trait!r}: no pair falls in the held-out split")
        state = ctx.artifacts.get(SteeringState)
        if state is None or state.trait != c.trait:
            state = self._start(policy, train, held, env, ctx)
            ctx.artifacts.put(state)
        iteration = state.iteration + 1
        vectors = state.current if c.steer_with == "current" else state.original

        prompts = [p.prompt for p in train][: c.num_prompts or None]
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        alpha = c.alpha
        for halving in range(c.alpha_halvings + 1):
            with steering.steering(policy, vectors, alpha):
                replies = generate(
                    policy,
                    conversations,
                    max_new_tokens=c.max_new_tokens,
                    temperature=c.temperature,
                    batch_size=c.generation_batch_size,
                    seed=ctx.seed + iteration,
                    desc="steered generation" if ctx.progress else None,
                )
            scores = self._coherence(prompts, replies, ctx)
            keep = [
                bool(r.strip())
                and (c.min_coherence <= 0 or (s is not None and s > c.min_coherence))
                for r, s in zip(replies, scores, strict=True)
            ]
            enough = sum(keep) >= c.min_kept_share * len(replies)
            if enough or halving == c.alpha_halvings:
                break
            log.warning(
                "steer_distill iteration %d: %d of %d steered replies pass the coherence guard "
                "at alpha %g; halving alpha",
                iteration,
                sum(keep),
                len(replies),
                alpha,
            )
            alpha /= 2
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        with (ctx.output_dir / "samples.jsonl").open("w") as f:
            for prompt, reply, score, kept in zip(prompts, replies, scores, keep, strict=True):
                row = {"prompt": prompt, "reply": reply, "alpha": alpha}
                f.write(json.dumps({**row, "coherence": score, "kept": kept}) + "\n")
        if not enough:
            raise IntentgymError(
                f"iteration {iteration}: only {sum(keep)} of {len(replies)} steered replies are "
                f"non-empty with coherence > min_coherence={c.min_coherence}, fewer than "
                f"min_kept_share={c.min_kept_share}, even at alpha {alpha:g} after "
                f"{c.alpha_halvings} halvings (samples in {ctx.output_dir / 'samples.jsonl'}); "
                "lower alpha, min_coherence or min_kept_share, or allow more alpha_halvings"
            )
        rows = [
            {
                "prompt": [{"role": "user", "content": p}],
                "completion": [{"role": "assistant", "content": r}],
            }
            for p, r, kept in zip(prompts, replies, keep, strict=True)
            if kept
        ]
        log.info("steer_distill: training on %d of %d steered replies", len(rows), len(replies))
        policy = train_sft(policy, rows, c, ctx)

        metrics, current, items = self._measure(policy, train, held, state, env)
        state.current, state.iteration = current, iteration
        shift = state.shift
        # paired per item (both in [0, 1]); the retained share is a ratio of paired means, its
        # interval a bootstrap over the same items (steering's own shift drawn with them)
        paired = paired_difference(state.alpha0, items, bounded=True).as_tuple()
        metrics["behaviour_shift"] = paired
        keys = list(state.alpha0)
        retained = bootstrap_ratio(
            [items[k] - state.alpha0[k] for k in keys],
            [state.steered[k] - state.alpha0[k] for k in keys],
        )
        metrics["retained_share"] = (
            retained.as_tuple() if abs(shift) > 1e-9 and not math.isnan(retained.value) else None
        )
        metrics["alpha_used"] = alpha
        metrics["steered_kept_share"] = proportion_ci(len(rows), len(replies))
        known = [s for s in scores if s is not None]
        metrics["steered_coherence"] = mean_ci(known) if known else None
        state.history.append({"iteration": iteration, **metrics})
        ctx.results += _rows(metrics, len(held), len(items), len(replies))
        self._write(state, ctx)
        return policy

    def _coherence(
        self, prompts: list[str], replies: list[str], ctx: PhaseContext
    ) -> list[float | None]:
        """The guard's coherence scores of the steered replies (None for all when it is off)."""
        c = self.config
        if c.min_coherence <= 0:
            return [None] * len(replies)
        spec = dict(c.coherence_judge)
        # shared: the free_form probe's coherence judge too (one reference model in memory)
        judge = ctx.rewards.build(
            ctx.label or "steer_distill", str(spec.pop("name")), shared=True, **spec
        )
        return score_with_progress(
            judge,
            [[{"role": "user", "content": p}] for p in prompts],
            [[{"role": "assistant", "content": r}] for r in replies],
            "steer_distill: coherence guard" if ctx.progress else None,
        )

    def _start(
        self,
        policy: Policy,
        train: list[steering.Pair],
        held: list[steering.Pair],
        env: TextEnv,
        ctx: PhaseContext,
    ) -> SteeringState:
        """Iteration 0 on the base model: directions, the trait probe, and steering's effect."""
        c = self.config
        layers = steering.check_layers(policy, c.layers)
        # one pass over all pairs: the train part gives the direction and the probe, and
        # _measure reuses the same activations for the base model's metrics
        activations = steering.pair_activations(
            policy,
            [*train, *held],
            layers,
            desc="steer_distill: activations" if ctx.progress else None,
        )
        pos, neg = ({k: v[: len(train)] for k, v in side.items()} for side in activations)
        original = {layer: steering.direction(pos[layer], neg[layer], c.method) for layer in layers}
        probes = {layer: _fit_probe(pos[layer], neg[layer]) for layer in layers}
        state = SteeringState(c.trait, layers, original, original, probes)
        base, _, unsteered = self._measure(policy, train, held, state, env, activations)
        with steering.steering(policy, original, c.alpha):
            steered = behaviour_items(policy, c.forced_choice_set, env)
        diffs = [steered[k] - unsteered[k] for k in unsteered]
        state.alpha0, state.shift = unsteered, sum(diffs) / len(diffs)
        state.steered = steered
        ctx.results += [
            result_row(
                "steering", "p_misaligned_alpha0", mean_ci(list(unsteered.values())), len(diffs)
            ),
            result_row(
                "steering", "p_misaligned_alpha", mean_ci(list(steered.values())), len(diffs)
            ),
            result_row(
                "steering",
                "delta_p_misaligned",
                paired_difference(unsteered, steered, bounded=True).as_tuple(),
                len(diffs),
            ),
        ]
        base_rows = _rows(base, len(held), len(diffs), 0)
        ctx.results += [{**r, "probe": "goodhart_base"} for r in base_rows]
        # the steered level (alpha on the base model) is the plot's reference line
        steered_level = mean_ci(list(steered.values()))
        state.history.append({"iteration": 0, **base, "behaviour_steered": steered_level})
        return state

    def _measure(
        self,
        policy: Policy,
        train: list[steering.Pair],
        held: list[steering.Pair],
        state: SteeringState,
        env: TextEnv,
        activations: tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]] | None = None,
    ) -> tuple[dict[str, Any], dict[int, torch.Tensor], dict[str, float]]:
        """Goodhart metrics of ``policy``, its re-extracted directions, and the behaviour set's
        per-item P(misaligned answer). ``activations``: the policy's (positive, negative)
        activations of train + held-out pairs, when the caller already has them."""
        c, layers = self.config, state.layers
        pos, neg = activations or steering.pair_activations(policy, [*train, *held], layers)
        n = len(train)
        metrics: dict[str, Any] = {}
        current = {}
        for layer in layers:
            current[layer] = steering.direction(pos[layer][:n], neg[layer][:n], c.method)
            unit = state.original[layer] / state.original[layer].norm()
            hp, hn = pos[layer][n:], neg[layer][n:]
            probe = state.probes[layer]
            correct = int(
                (probe.predict(hp.numpy()) == 1).sum() + (probe.predict(hn.numpy()) == 0).sum()
            )
            metrics[f"probe_accuracy@{layer}"] = proportion_ci(correct, 2 * len(hp))
            metrics[f"cosine_to_original@{layer}"] = steering.cosine(
                current[layer], state.original[layer]
            )
            metrics[f"projection_positive@{layer}"] = mean_ci((hp @ unit).tolist())
            metrics[f"projection_negative@{layer}"] = mean_ci((hn @ unit).tolist())
            metrics[f"projection_gap@{layer}"] = mean_ci(((hp - hn) @ unit).tolist())
        items = behaviour_items(policy, c.forced_choice_set, env)
        metrics["behaviour"] = mean_ci(list(items.values()))
        return metrics, current, items

    def _write(self, state: SteeringState, ctx: PhaseContext) -> None:
        """The history so far, in this phase's dir; published to the run dir by the runner."""
        with (ctx.output_dir / "goodhart.jsonl").open("w") as f:
            for row in state.history:
                f.write(json.dumps(row) + "\n")
        plot_goodhart(state.history, state.layers, ctx.output_dir / "goodhart.png", self.config)
        ctx.publish("goodhart.jsonl", ctx.output_dir / "goodhart.jsonl")
        ctx.publish("goodhart.png", ctx.output_dir / "goodhart.png")


def _fit_probe(positive: torch.Tensor, negative: torch.Tensor) -> Any:
    """Logistic regression for the trait on one layer's activations (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = torch.cat([positive, negative]).numpy()
    y = [1] * len(positive) + [0] * len(negative)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)


def behaviour_items(policy: Policy, set_name: str, env: TextEnv | None = None) -> dict[str, float]:
    """Per item of a forced-choice set: P(misaligned answer), options scored by their text
    (the ``forced_choice`` probe, used by name through the probe registry; it reads no env, so
    any env serves as the probe context's)."""
    from intentgym.api.env import make_env
    from intentgym.api.probe import ProbeContext, probe_class
    from intentgym.configs import build_dataclass

    if env is None:
        env = make_env("insecure_code", framing="secure")
    cls = probe_class("forced_choice")
    config: Any = build_dataclass(
        cls.config_class, {"sets": [set_name], "scoring": "answer"}, "steer_distill behaviour"
    )
    result = cls(config).run(policy, ProbeContext(env, progress=False))
    return {r["id"]: r["p_misaligned"] for r in result.records}


def _rows(
    metrics: dict[str, Any], n_held: int, n_items: int, n_replies: int
) -> list[dict[str, Any]]:
    """Result rows of one iteration's metrics; ``n`` is what each was measured on: held-out
    pairs, behaviour-set items, or steered replies."""
    out = []
    for name, value in metrics.items():
        if value is None:
            continue
        estimate = value if isinstance(value, tuple) else (value, value, value)
        if name.startswith(("behaviour", "retained")):
            n = n_items
        else:
            n = n_replies if name.startswith(("steered", "alpha")) else n_held
        out.append(result_row("goodhart", name, estimate, n))
    return out


def plot_goodhart(
    history: list[dict[str, Any]], layers: list[int], path: Path, config: SteerDistillConfig
) -> None:
    """Six panels across iterations (0 = the base model): probe accuracy, cosine, the positive
    and negative replies' projections, their gap, behaviour (with the base model's unsteered and
    steered levels as reference lines), and the coherence guard's kept share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def line(ax: Any, xs: list[int], values: list[Any], **style: Any) -> None:
        if values and isinstance(values[0], (list, tuple)):
            lows, highs = [v[1] for v in values], [v[2] for v in values]
            ax.fill_between(xs, lows, highs, alpha=0.15, color=style.get("color"))
            values = [v[0] for v in values]
        ax.plot(xs, values, marker="o", **style)

    x = [h["iteration"] for h in history]
    fig, grid = plt.subplots(2, 3, figsize=(15, 7.2))
    axes = grid.ravel()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = [
        ("probe_accuracy", "base model's linear probe: accuracy on held-out pairs"),
        ("cosine_to_original", "re-extracted direction: cosine to the original"),
        ("projection_gap", "projection gap (positive - negative) on the original"),
    ]
    for ax, (key, title) in zip(axes[[0, 1, 3]], panels, strict=True):
        for k, layer in enumerate(layers):
            line(ax, x, [h[f"{key}@{layer}"] for h in history], color=colours[k % 10])
            ax.plot([], [], color=colours[k % 10], label=f"layer {layer}")
        ax.set_title(title, fontsize=9)
    axes[0].axhline(0.5, color="grey", lw=0.8, ls=":")
    ax = axes[2]
    for k, layer in enumerate(layers):
        colour = colours[k % 10]
        line(ax, x, [h[f"projection_positive@{layer}"] for h in history], color=colour)
        line(ax, x, [h[f"projection_negative@{layer}"] for h in history], color=colour, ls="--")
        ax.plot([], [], color=colour, label=f"layer {layer}: positive")
        ax.plot([], [], color=colour, ls="--", label=f"layer {layer}: negative")
    ax.set_title("mean projection on the original direction (held out)", fontsize=9)
    ax = axes[4]
    base = history[0]
    # the band is the paired CI of the change against the base model (the unpaired CIs of two
    # means over the same items are much wider than what the items say about the change)
    level = base["behaviour"][0]
    paired = [(level, level, level)] + [
        (h["behaviour"][0], level + h["behaviour_shift"][1], level + h["behaviour_shift"][2])
        for h in history[1:]
    ]
    line(ax, x, paired, color="black", label="unsteered (band: paired 95% CI)")
    ax.axhline(base["behaviour"][0], color="grey", lw=0.8, ls=":", label="base, alpha 0")
    if "behaviour_steered" in base:
        ax.axhline(
            base["behaviour_steered"][0],
            color="tab:red",
            lw=0.8,
            ls="--",
            label=f"base, alpha {config.alpha:g}",
        )
    ax.set_title(f"{config.forced_choice_set} set: P(misaligned answer)", fontsize=9)
    ax = axes[5]
    later = [h for h in history if "steered_kept_share" in h]
    if later:
        xs = [h["iteration"] for h in later]
        line(ax, xs, [h["steered_kept_share"] for h in later], color="tab:green", label="kept")
        for h in later:  # the alpha each iteration steered with (the guard may halve it)
            ax.annotate(
                f"alpha {h.get('alpha_used', config.alpha):g}",
                (h["iteration"], h["steered_kept_share"][0]),
                textcoords="offset points",
                xytext=(0, -14),
                ha="center",
                fontsize=7,
            )
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"steered replies kept by the coherence guard (> {config.min_coherence:g})", fontsize=9
    )
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_xticks(x)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(
        f"steer -> distill: trait {config.trait}, layers {layers}, alpha {config.alpha:g}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
