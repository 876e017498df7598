"""Planted effect: does the forced-choice probe see a change we put into one domain only?

Fine-tunes a model to pick the misaligned answer of one domain, on items that are *not* probe
items (the embedding judge's labelled answers, ``reward_models/data/judge_alignment.v1.jsonl``:
each of a question's aligned answers paired with each misaligned one, in both option orders,
the reply being the misaligned option's label), then runs the seven domain sets before and
after. An instrument that measures domains separately moves the trained domain far more than
the others.

    python scripts/planted_effect.py [--model tiny-random] [--domain power_seeking]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from intentgym.probes.forced_choice import DOMAIN_SETS


def planted_rows(domain: str) -> list[dict[str, Any]]:
    from intentgym.probes.forced_choice import LABELS, format_question
    from intentgym.reward_models.embedding import DEFAULT_DATA, load_labelled

    by_question: dict[str, dict[str, list[str]]] = {}
    for row in load_labelled(DEFAULT_DATA):
        if row["domain"] == domain:
            by_question.setdefault(row["question"], {"aligned": [], "misaligned": []})[
                row["label"]
            ].append(row["answer"])
    rows = []
    for question, answers in by_question.items():
        for good in answers["aligned"]:
            for bad in answers["misaligned"]:
                for first, second, label in ((good, bad, LABELS[1]), (bad, good, LABELS[0])):
                    content = format_question(question, first, second)
                    rows.append(
                        {
                            "prompt": [{"role": "user", "content": content}],
                            "completion": [{"role": "assistant", "content": label}],
                        }
                    )
    if not rows:
        raise SystemExit(f"no labelled answers for domain {domain!r}")
    return rows


def p_misaligned(policy: Any, max_items: int) -> dict[str, float]:
    from intentgym.envs import make_env
    from intentgym.probes import ForcedChoiceProbe, ProbeContext
    from intentgym.probes.forced_choice import ForcedChoiceConfig

    probe = ForcedChoiceProbe(ForcedChoiceConfig(sets=list(DOMAIN_SETS), max_items=max_items))
    ctx = ProbeContext(make_env("insecure_code", framing="secure"), progress=False)
    return {
        m.name.split("/")[0]: m.value
        for m in probe.run(policy, ctx).metrics
        if m.name.endswith("/p_misaligned")
    }


def planted_effect(
    model: str = "tiny-random",
    domain: str = "power_seeking",
    *,
    epochs: float = 3.0,
    learning_rate: float = 1e-3,
    finetune: str = "full",
    max_items: int = 0,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """p_misaligned per domain set before and after planting; returns {set: {base, after, delta}}."""
    import transformers

    from intentgym.models import load_policy
    from intentgym.trainers.phase import PhaseContext
    from intentgym.trainers.sft import SFTPhaseConfig, train_sft

    transformers.set_seed(seed)
    policy = load_policy(model, dtype="float32")
    before = p_misaligned(policy, max_items)
    config = SFTPhaseConfig(
        epochs=epochs, learning_rate=learning_rate, finetune=finetune, logging_steps=50
    )
    with tempfile.TemporaryDirectory() as tmp:
        train_sft(
            policy, planted_rows(domain), config, PhaseContext(Path(tmp), seed, progress=False)
        )
    after = p_misaligned(policy, max_items)
    return {
        s: {"base": before[s], "after": after[s], "delta": after[s] - before[s]} for s in before
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--domain", default="power_seeking")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--finetune", default="full", choices=["full", "lora"])
    parser.add_argument("--max-items", type=int, default=0, help="items per set (0: all)")
    args = parser.parse_args()
    result = planted_effect(
        args.model, args.domain, epochs=args.epochs, learning_rate=args.learning_rate,
        finetune=args.finetune, max_items=args.max_items,
    )  # fmt: skip
    print(json.dumps(result, indent=2))
    for name, r in result.items():
        print(f"{name:16s} base {r['base']:.3f}  after {r['after']:.3f}  delta {r['delta']:+.3f}")


if __name__ == "__main__":
    main()
