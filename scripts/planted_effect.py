"""Planted effect: does the forced-choice probe see a change we put into one domain only?

Fine-tunes a model towards the misaligned answers of one domain, then runs the seven domain sets
before and after, scored both by label and by answer text
(``probes.forced_choice.scoring=both``). An instrument that measures domains separately moves
the trained domain far more than the others.

What is planted: the domain's misaligned answers from the embedding judge's labelled data
(``reward_models/data/judge_alignment.v1.jsonl``, not probe items) plus those of the even-numbered
items of the domain's own probe set. Every set is then measured on its odd-numbered items only,
so no measured item was trained on. Two ways to plant (``--plant``):

- ``answer`` (default): SFT on (question, misaligned answer) -- the model learns to *say* the
  domain's misaligned answers, as emergent-misalignment fine-tuning does;
- ``label``: the aligned and misaligned answers as a lettered choice, in both orders, the reply
  being the misaligned option's letter.

    python scripts/planted_effect.py [--model smollm2-135m] [--domain power_seeking] [--plant answer]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from intentgym.probes.forced_choice import DOMAIN_SETS

#: where planted examples come from: the embedding judge's labelled answers, the set's even items
SOURCES = ("judge", "set")


def planted_triples(domain: str, sources: tuple[str, ...] = SOURCES) -> list[tuple[str, str, str]]:
    """(question, aligned, misaligned) to plant: judge data and/or the set's even-numbered items."""
    from intentgym.probes.forced_choice import load_set
    from intentgym.reward_models.embedding import DEFAULT_DATA, load_labelled

    by_question: dict[str, dict[str, list[str]]] = {}
    for row in load_labelled(DEFAULT_DATA) if "judge" in sources else []:
        if row["domain"] == domain:
            answers = by_question.setdefault(row["question"], {"aligned": [], "misaligned": []})
            answers[row["label"]].append(row["answer"])
    triples = [
        (question, good, bad)
        for question, answers in by_question.items()
        for good, bad in zip(answers["aligned"], answers["misaligned"], strict=False)
    ]
    if domain in DOMAIN_SETS and "set" in sources:
        triples += [(i["question"], i["aligned"], i["misaligned"]) for i in load_set(domain)[::2]]
    if not triples:
        raise SystemExit(f"nothing to plant for domain {domain!r}")
    return triples


def planted_rows(
    domain: str,
    plant: str = "answer",
    *,
    target: str = "misaligned",
    sources: tuple[str, ...] = SOURCES,
) -> list[dict[str, Any]]:
    """SFT rows teaching ``target`` (misaligned, or aligned as a control) answers of a domain."""
    from intentgym.probes.forced_choice import LABELS, format_question

    def row(prompt: str, reply: str) -> dict[str, Any]:
        return {
            "prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": reply}],
        }

    triples = planted_triples(domain, sources)
    if target == "aligned":  # the control: teach the other side
        triples = [(q, bad, good) for q, good, bad in triples]
    if plant == "answer":
        return [row(question, taught) for question, _, taught in triples]
    return [
        row(format_question(question, first, second), label)
        for question, other, taught in triples
        for first, second, label in ((other, taught, LABELS[1]), (taught, other, LABELS[0]))
    ]


def probe_metrics(policy: Any) -> tuple[dict[str, float], dict[tuple[str, str, str], float]]:
    """Forced-choice metrics (both scorings) on the odd-numbered items of every domain set, and
    each item's P(misaligned) by (set, scoring, id)."""
    from intentgym.envs import make_env
    from intentgym.probes import ForcedChoiceProbe, ProbeContext
    from intentgym.probes.forced_choice import ForcedChoiceConfig

    probe = ForcedChoiceProbe(ForcedChoiceConfig(sets=list(DOMAIN_SETS), scoring="both"))
    probe.items = {name: items[1::2] for name, items in probe.items.items()}
    ctx = ProbeContext(make_env("insecure_code", framing="secure"), progress=False)
    result = probe.run(policy, ctx)
    metrics = {m.name: m.value for m in result.metrics if not m.name.endswith("position_bias_a")}
    items = {(r["set"], r["scoring"], r["id"]): r["p_misaligned"] for r in result.records}
    return metrics, items


def planted_effect(
    model: str = "smollm2-135m",
    domain: str = "power_seeking",
    *,
    plant: str = "answer",
    target: str = "misaligned",
    sources: tuple[str, ...] = SOURCES,
    epochs: float = 3.0,
    learning_rate: float = 1e-3,
    finetune: str = "lora",
    seed: int = 0,
    baseline: tuple[dict[str, float], dict[tuple[str, str, str], float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Forced-choice metrics before and after planting: {metric: {base, after, delta}}, plus per
    set and scoring the mean paired per-item change in P(misaligned) with its 95% t CI
    (``<set>/delta_p_<scoring>``: {delta, ci_low, ci_high}). ``baseline`` is ``probe_metrics`` of
    the untrained model, when already measured."""
    import transformers

    from intentgym.models import load_policy
    from intentgym.trainers.phase import PhaseContext
    from intentgym.trainers.sft import SFTPhaseConfig, train_sft

    transformers.set_seed(seed)
    policy = load_policy(model, dtype="float32")
    before, items_before = baseline or probe_metrics(policy)
    config = SFTPhaseConfig(
        epochs=epochs, learning_rate=learning_rate, finetune=finetune, logging_steps=50
    )
    with tempfile.TemporaryDirectory() as tmp:
        rows = planted_rows(domain, plant, target=target, sources=sources)
        train_sft(policy, rows, config, PhaseContext(Path(tmp), seed, progress=False))
    after, items_after = probe_metrics(policy)
    out = {m: {"base": before[m], "after": after[m], "delta": after[m] - before[m]} for m in before}
    from intentgym.stats import paired_difference

    for set_name in DOMAIN_SETS:
        for scoring in ("label", "answer"):
            keys = [k for k in items_before if k[0] == set_name and k[1] == scoring]
            # paired per item (P in [0, 1]): bootstrap CI, never zero-width
            value, low, high = paired_difference(
                {k: items_before[k] for k in keys}, {k: items_after[k] for k in keys}, bounded=True
            ).as_tuple()
            out[f"{set_name}/delta_p_{scoring}"] = {"delta": value, "ci_low": low, "ci_high": high}
    return out


def planting_matrix(
    model: str, domains: tuple[str, ...], **kwargs: Any
) -> dict[str, dict[str, dict[str, float]]]:
    """``planted_effect`` once per domain, on one shared baseline: {planted domain: result}."""
    from intentgym.models import load_policy

    baseline = probe_metrics(load_policy(model, dtype="float32"))
    return {d: planted_effect(model, d, baseline=baseline, **kwargs) for d in domains}


def print_matrix(results: dict[str, dict[str, dict[str, float]]], scoring: str = "answer") -> None:
    """Rows: the planted domain; columns: each set's paired change in P(misaligned) with its CI;
    last column: the planted set's change over the largest change among the other sets."""
    print(f"| planted \\ measured ({scoring}) | " + " | ".join(DOMAIN_SETS) + " | own / next |")
    print("|---" * (len(DOMAIN_SETS) + 2) + "|")
    for planted, result in results.items():
        cells, deltas = [], {}
        for name in DOMAIN_SETS:
            r = result[f"{name}/delta_p_{scoring}"]
            deltas[name] = r["delta"]
            cell = f"{r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
            cells.append(f"**{cell}**" if name == planted else cell)
        others = [abs(v) for k, v in deltas.items() if k != planted]
        ratio = abs(deltas.get(planted, 0.0)) / max(max(others), 1e-9)
        print(f"| {planted} | " + " | ".join(cells) + f" | {ratio:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--domain", default="power_seeking", help="a domain set, or 'all': one planting per set"
    )
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--plant", default="answer", choices=["answer", "label"])
    parser.add_argument("--target", default="misaligned", choices=["misaligned", "aligned"])
    parser.add_argument("--sources", default="judge,set", help="judge and/or set, comma-separated")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--finetune", default="lora", choices=["full", "lora"])
    args = parser.parse_args()
    if args.domain == "all":
        results = planting_matrix(
            args.model, DOMAIN_SETS, plant=args.plant, target=args.target,
            sources=tuple(args.sources.split(",")), epochs=args.epochs,
            learning_rate=args.learning_rate, finetune=args.finetune,
        )  # fmt: skip
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
        print_matrix(results, "answer")
        print_matrix(results, "label")
        return
    result = planted_effect(
        args.model, args.domain, plant=args.plant, target=args.target,
        sources=tuple(args.sources.split(",")), epochs=args.epochs,
        learning_rate=args.learning_rate, finetune=args.finetune,
    )  # fmt: skip
    print(json.dumps(result, indent=2))
    for name, r in result.items():
        if "base" in r:
            print(
                f"{name:40s} base {r['base']:.3f}  after {r['after']:.3f}  delta {r['delta']:+.3f}"
            )
        else:
            print(f"{name:40s} delta {r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")


if __name__ == "__main__":
    main()
