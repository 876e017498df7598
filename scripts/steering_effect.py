"""Steering's own effect: does adding alpha * direction move the trait's forced-choice set?

For each trait, the direction is extracted from the base model on the trait's train pairs
(``intentgym.steering``), then the trait's forced-choice set (``TRAIT_SETS``, scored by answer
text) is measured with steering at each alpha against alpha = 0 on the same items, so each
change in P(misaligned answer) is paired per item with a t CI. Negative alphas steer towards
the opposite replies, which should move the set the other way.

Next to each change: how coherent steered text stays. Replies to the held-out pairs' prompts
are generated at that alpha and scored by the offline ``coherence`` judge; the mean and the
share above 50 (what ``steer_distill``'s coherence guard keeps) are printed. A strength that
moves behaviour only by wrecking text is no use for distillation.

    python scripts/steering_effect.py [--traits honesty,kindness] [--layers 12] [--alphas 4,8,-8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def steering_effect(
    policy: Any,
    trait: str,
    layers: list[int],
    alphas: list[float],
    *,
    method: str = "mean_diff",
    max_new_tokens: int = 64,
    judge: Any = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (layer, alpha): paired change in the trait set's P(misaligned answer) and the
    coherence of steered replies (when ``judge`` is given)."""
    from intentgym import steering
    from intentgym.generation import generate
    from intentgym.stats import mean_ci, paired_difference, proportion_ci
    from intentgym.trainers.steer_distill import TRAIT_SETS, behaviour_items

    train, held = steering.split_pairs(steering.load_pairs(trait))
    layers = steering.check_layers(policy, layers)
    pos, neg = steering.pair_activations(policy, train, layers)
    base = behaviour_items(policy, TRAIT_SETS[trait])
    conversations = [[{"role": "user", "content": p.prompt}] for p in held]

    def coherence(alpha: float, vectors: dict[int, Any]) -> dict[str, Any]:
        if judge is None:
            return {}
        with steering.steering(policy, vectors, alpha):
            replies = generate(
                policy, conversations, max_new_tokens=max_new_tokens, temperature=0.7, seed=seed
            )
        scores = judge(conversations, [[{"role": "assistant", "content": r}] for r in replies])
        return {
            "coherence": mean_ci(scores),
            "coherent_share": proportion_ci(sum(s > 50 for s in scores), len(scores)),
            "example": replies[0],
        }

    rows = []
    for layer in layers:
        vector = {layer: steering.direction(pos[layer], neg[layer], method)}
        rows.append({"trait": trait, "layer": layer, "alpha": 0.0, **coherence(0.0, vector)})
        for alpha in alphas:
            with steering.steering(policy, vector, alpha):
                steered = behaviour_items(policy, TRAIT_SETS[trait])
            diffs = [steered[k] - base[k] for k in base]
            rows.append(
                {
                    "trait": trait,
                    "set": TRAIT_SETS[trait],
                    "layer": layer,
                    "alpha": alpha,
                    "n": len(diffs),
                    "p_misaligned_alpha0": sum(base.values()) / len(base),
                    "p_misaligned": sum(steered.values()) / len(steered),
                    # paired per item; equal values get an honest (non-zero-width) interval
                    "delta": paired_difference(base, steered, bounded=True).as_tuple(),
                    **coherence(alpha, vector),
                }
            )
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(
        "| trait (set) | layer | alpha | P(misaligned) | paired change [95% CI] | coherence | > 50 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        change = "" if "delta" not in r else "{:+.3f} [{:+.3f}, {:+.3f}]".format(*r["delta"])
        level = f"{r['p_misaligned']:.3f}" if "p_misaligned" in r else ""
        coh = "{:.1f} [{:.1f}, {:.1f}]".format(*r["coherence"]) if "coherence" in r else ""
        share = f"{r['coherent_share'][0]:.0%}" if "coherent_share" in r else ""
        what = f"{r['trait']} ({r['set']})" if "set" in r else r["trait"]
        print(f"| {what} | {r['layer']} | {r['alpha']:g} | {level} | {change} | {coh} | {share} |")


def main() -> None:
    from intentgym import steering

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--traits", default=",".join(steering.TRAITS))
    parser.add_argument("--layers", default="12", help="decoder layers, comma-separated")
    parser.add_argument("--alphas", default="4,8,-8", help="steering strengths, comma-separated")
    parser.add_argument("--method", default="mean_diff", choices=list(steering.METHODS))
    parser.add_argument("--no-coherence", action="store_true", help="skip steered generation")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()

    from intentgym.errors import IntentgymError
    from intentgym.models import load_policy
    from intentgym.reward_models import REWARD_MODELS

    traits = args.traits.split(",")
    for trait in traits:
        if trait not in steering.TRAITS:
            raise IntentgymError(f"unknown trait {trait!r}; valid: {', '.join(steering.TRAITS)}")
    policy = load_policy(args.model, dtype=args.dtype)
    judge = None if args.no_coherence else REWARD_MODELS.build("coherence")
    rows = []
    for trait in traits:
        rows += steering_effect(
            policy,
            trait,
            [int(x) for x in args.layers.split(",")],
            [float(x) for x in args.alphas.split(",")],
            method=args.method,
            judge=judge,
        )
        print_rows([r for r in rows if r["trait"] == trait])
    print()
    print_rows(rows)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
