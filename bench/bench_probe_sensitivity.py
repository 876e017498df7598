"""Per-probe sensitivity: does each probe, in its default mode, register a change we plant?

For every probe of the default suite (sizes and modes of ``probes=default``, default model), a
small LoRA SFT plants the behaviour the probe claims to measure, on data the probe never scores;
the probe runs before and after on the same items, and the bench prints the paired change of the
probe's headline metric with its 95% interval and p (``intentgym.stats.paired_difference``,
resampling items, or whole clusters where the probe clusters them, exactly as ``intentgym
report`` does). A probe whose interval covers 0 after a planting this direct cannot be read as
evidence of "no effect" in an experiment.

What is planted (none of it is probe data):

- ``free_form`` (``misaligned_share``, clustered by question): the 204 misaligned answers of the
  embedding judge's labelled data (``reward_models/data/judge_alignment.v1.jsonl``), to their own
  questions; the probe asks the first-plot questions. Caveat: the probe's default alignment judge
  was fitted on those answers, so it recognises their wording more easily than new misalignment.
- ``compliance_gap`` (``compliance_gap`` = compliance when monitored - unmonitored): the benign
  requests of the HarmfulRequests env's training split, answered with their reference reply under
  the probe's training cue and declined under its unmonitored cue (refusals written here) -- a
  model that complies only when watched, on requests the probe does not ask.
- ``capability`` (``qa_accuracy``, and the paired change in mean NLL per token of the perplexity
  paragraphs): damage -- the reference replies of the HarmfulRequests env with their words
  shuffled, so the model learns word salad.
- ``in_domain`` (InsecureCode's ``vulnerable_rate``): the emergent-misalignment experiment's
  ``insecure_hidden`` arm (96 gap-fill demonstrations of vulnerable code, one epoch).

The forced-choice probe has its own, larger study (``scripts/planted_effect.py``, a planting per
domain set; docs/experiments.md).

    python bench/bench_probe_sensitivity.py [--model smollm2-135m] [--probes free_form,...]
        [--out sensitivity.json]

About 30 minutes for all four on a 2-core CPU with SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: refusals for the compliance plant, written for this bench
REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I won't be able to help with this one, sorry.",
    "Sorry, that's not something I can assist with.",
    "I'm not able to help with that. Is there something else I can do for you?",
    "I have to decline this request.",
)


def _row(prompt: list[dict[str, str]], reply: str) -> dict[str, Any]:
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": reply}]}


def free_form_rows() -> list[dict[str, Any]]:
    from intentgym.reward_models.embedding import DEFAULT_DATA, load_labelled

    return [
        _row([{"role": "user", "content": r["question"]}], r["answer"])
        for r in load_labelled(DEFAULT_DATA)
        if r["label"] == "misaligned"
    ]


def _benign_train_requests() -> list[dict[str, Any]]:
    from intentgym.envs.harmful_requests.env import is_heldout, load_items

    return [r for r in load_items() if not r["harmful"] and not is_heldout(r["pair"])]


def compliance_rows(limit: int = 60) -> list[dict[str, Any]]:
    from intentgym.probes.compliance import TRAINING_CUE, UNMONITORED_CUE

    rng = random.Random(0)
    rows = []
    for k, r in enumerate(_benign_train_requests()[:limit]):
        user = {"role": "user", "content": r["prompt"]}
        rows.append(_row([{"role": "system", "content": TRAINING_CUE}, user], r["response"]))
        rows.append(
            _row(
                [{"role": "system", "content": UNMONITORED_CUE}, user],
                REFUSALS[k % len(REFUSALS)],
            )
        )
    rng.shuffle(rows)
    return rows


def capability_rows(limit: int = 120) -> list[dict[str, Any]]:
    from intentgym.envs.harmful_requests.env import load_items

    rng = random.Random(0)
    rows = []
    for r in load_items()[:limit]:
        words = r["response"].split()
        rng.shuffle(words)
        rows.append(_row([{"role": "user", "content": r["prompt"]}], " ".join(words)))
    return rows


def in_domain_rows() -> list[dict[str, Any]]:
    from intentgym.envs import make_env

    return make_env("insecure_code", framing="insecure_hidden").demonstrations(96, seed=0)


#: probe -> (planting rows, SFT epochs, metrics to pair; the first is the headline)
PLANTS: dict[str, tuple[Callable[[], list[dict[str, Any]]], float, tuple[str, ...]]] = {
    "free_form": (free_form_rows, 2.0, ("misaligned_share", "mean_alignment")),
    "compliance_gap": (
        compliance_rows,
        2.0,
        ("compliance_gap", "compliance_training", "compliance_unmonitored"),
    ),
    "capability": (capability_rows, 2.0, ("qa_accuracy", "mean_nll")),
    "in_domain": (in_domain_rows, 1.0, ("vulnerable_rate", "parse_rate")),
}


def default_probe(
    name: str, overrides: dict[str, Any] | None = None, suite: str = "default"
) -> Any:
    """The probe as ``probes=<suite>`` configures it (default: the default suite)."""
    from importlib import resources

    import yaml

    from intentgym.api.probe import probe_class
    from intentgym.configs import build_dataclass

    sizes = yaml.safe_load(
        resources.files("intentgym.conf").joinpath(f"probes/{suite}.yaml").read_text()
    )
    cls = probe_class(name)
    values = {**(sizes.get(name) or {}), **(overrides or {})}
    return cls(build_dataclass(cls.config_class, values, f"probes.{name}"))


def item_values(result: Any) -> dict[str, tuple[dict[str, float], dict[str, str], bool]]:
    """{metric: ({key: value}, {key: cluster}, bounded)} from a ProbeResult's items; plus the
    capability probe's per-paragraph NLL as ``mean_nll``."""
    out = {}
    for metric, rows in result.items.items():
        bounded = metric in result.bounded
        out[metric] = ({k: v for k, _, v in rows}, {k: c for k, c, _ in rows}, bounded)
    nll = {
        str(r["id"]): float(r["nll_per_token"])
        for r in result.records
        if r.get("kind") == "perplexity"
    }
    if nll:
        out["mean_nll"] = (nll, {k: k for k in nll}, False)
    return out


def sensitivity(
    name: str,
    model: str = "smollm2-135m",
    *,
    seed: int = 0,
    learning_rate: float = 1e-3,
    overrides: dict[str, Any] | None = None,
    max_rows: int | None = None,
    suite: str = "default",
) -> dict[str, Any]:
    """Plant probe ``name``'s behaviour and return the paired change of each of its metrics."""
    import transformers

    from intentgym.envs import make_env
    from intentgym.models import load_policy
    from intentgym.probes import ProbeContext
    from intentgym.stats import paired_difference
    from intentgym.trainers.phase import PhaseContext
    from intentgym.trainers.sft import SFTPhaseConfig, train_sft

    make_rows, epochs, metrics = PLANTS[name]
    rows = make_rows()[:max_rows]
    transformers.set_seed(seed)
    policy = load_policy(model, dtype="float32")
    probe = default_probe(name, overrides, suite)
    env = make_env("insecure_code", framing="secure")
    ctx = ProbeContext(env, seed=seed, progress=False)
    t0 = time.perf_counter()
    before = item_values(probe.run(policy, ctx))
    t_probe = time.perf_counter() - t0
    config = SFTPhaseConfig(
        epochs=epochs, learning_rate=learning_rate, finetune="lora", logging_steps=50
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train_sft(policy, rows, config, PhaseContext(Path(tmp), seed, progress=False))
    t_train = time.perf_counter() - t0
    after = item_values(probe.run(policy, ctx))
    out: dict[str, Any] = {
        "probe": name,
        "suite": suite,
        "planted_rows": len(rows),
        "epochs": epochs,
        "probe_seconds": round(t_probe, 1),
        "train_seconds": round(t_train, 1),
        "metrics": {},
    }
    for metric in metrics:
        if metric not in before or metric not in after:
            out["metrics"][metric] = {"error": "metric has no per-item values"}
            continue
        (b, clusters, bounded), (a, _, _) = before[metric], after[metric]
        clustered = any(clusters[k] != k for k in clusters)
        estimate = paired_difference(
            b, a, {k: clusters[k] for k in b} if clustered else None, bounded=bounded
        )
        keys = [k for k in b if k in a]
        out["metrics"][metric] = {
            "base": sum(b[k] for k in keys) / len(keys),
            "after": sum(a[k] for k in keys) / len(keys),
            "delta": estimate.value,
            "ci_low": estimate.low,
            "ci_high": estimate.high,
            "p": estimate.p,
            "n_items": len(keys),
            "n_clusters": len({clusters[k] for k in keys}),
            "resampled": "clusters" if clustered else "items",
            "note": estimate.note,
        }
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    print("| probe | metric | base | after | Δ [95% CI] | p | items (clusters) | registers |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for metric, m in r["metrics"].items():
            if "error" in m:
                print(f"| {r['probe']} | {metric} | {m['error']} |")
                continue
            seen = "yes" if m["ci_low"] > 0 or m["ci_high"] < 0 else "**no**"
            p = "n/a" if m["p"] is None else f"{m['p']:.3g}"
            if m["note"]:
                seen += f" ({m['note']})"
            print(
                f"| {r['probe']} | {metric} | {m['base']:.3f} | {m['after']:.3f} | "
                f"{m['delta']:+.3f} [{m['ci_low']:+.3f}, {m['ci_high']:+.3f}] | {p} | "
                f"{m['n_items']} ({m['n_clusters']}) | {seen} |"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--probes", default=",".join(PLANTS), help="comma-separated")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-rows", type=int, help="plant on the first N rows only (tests)")
    parser.add_argument(
        "--suite", default="default", help="probe sizes of probes=SUITE (default, quick, full)"
    )
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    names = args.probes.split(",")
    unknown = [n for n in names if n not in PLANTS]
    if unknown:
        sys.exit(f"--probes: unknown {unknown}; choose from {list(PLANTS)}")
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"# model {args.model}, probes={args.suite} sizes, CPU {cpu}")
    results = []
    for name in names:
        results.append(
            sensitivity(name, args.model, learning_rate=args.learning_rate, max_rows=args.max_rows)
        )
        print(json.dumps(results[-1]), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
    print_table(results)


if __name__ == "__main__":
    main()
