"""Check that a refactor changed no result: run the smoke configs, then diff two such runs.

Every trainer's smoke run (tiny-random, CPU, fixed seed) is deterministic, so a change that only
moves code must leave every row of every results.jsonl identical. Run this on the old commit and
on the new one (the same machine), then compare::

    git worktree add /tmp/before <old-commit>
    PYTHONPATH=/tmp/before python scripts/smoke_fingerprint.py run /tmp/fp/before   # the old code
    python scripts/smoke_fingerprint.py run /tmp/fp/after                           # this tree
    python scripts/smoke_fingerprint.py compare /tmp/fp/before /tmp/fp/after

``run`` writes ``<case>.json`` (results rows without their wall-clock ``seconds``) per case;
``compare`` prints rows, key mismatches and the largest absolute difference per case, and exits
1 when anything differs. About 5 minutes for all cases on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

CASES: dict[str, list[str]] = {
    "sft": ["debug=smoke"],
    "rlhf_feedback": ["debug=smoke", "trainer=rlhf", "env=feedback"],
    "rlhf_ppo": ["debug=smoke", "trainer=rlhf", "env=feedback", "algorithm=ppo"],
    "constitutional": ["debug=smoke", "trainer=constitutional", "env=harmful_requests"],
    "deliberative": ["debug=smoke", "trainer=deliberative", "env=harmful_requests"],
    "best_of_n": ["debug=smoke", "trainer=best_of_n", "reward_model=insecure_code_task"],
    "reward_model": ["debug=smoke", "trainer=reward_model"],
    "steer_distill": [
        "debug=smoke",
        "trainer=steer_distill",
        "trainer.phases.steer_distill.layers=[1]",
        "trainer.phases.steer_distill.repeat=2",
        "probes=quick",
    ],
}
FIELDS = ("value", "ci_low", "ci_high", "n")


def run(out: Path, cases: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from intentgym.cli import CONF_DIR, register_plugin_configs
    from intentgym.runner import execute, plan_run

    out.mkdir(parents=True, exist_ok=True)
    register_plugin_configs()
    for name in cases:
        t0 = time.perf_counter()
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=CASES[name])
        results = execute(plan_run(OmegaConf.to_container(cfg, resolve=True)), out / name)  # type: ignore[arg-type]
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        for row in rows:
            row.pop("seconds", None)
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1, sort_keys=True))
        print(f"{name}: {len(rows)} rows in {time.perf_counter() - t0:.0f} s", flush=True)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def compare(before: Path, after: Path) -> bool:
    identical = True
    for path in sorted(before.glob("*.json")):
        other = after / path.name
        if not other.is_file():
            print(f"{path.stem}: missing in {after}")
            identical = False
            continue
        old = {(r["phase"], r["probe"], r["metric"]): r for r in json.loads(path.read_text())}
        new = {(r["phase"], r["probe"], r["metric"]): r for r in json.loads(other.read_text())}
        keys = set(old) ^ set(new)
        differing, largest = 0, 0.0
        for key in set(old) & set(new):
            a, b = old[key], new[key]
            for f in set(a) | set(b):
                if not _same(a.get(f), b.get(f)):
                    differing += 1
                    if f in FIELDS and isinstance(a.get(f), int | float) and b.get(f) is not None:
                        largest = max(largest, abs(a[f] - b[f]))
        print(
            f"{path.stem:15s} rows {len(old)}/{len(new)}  key mismatches {len(keys)}  "
            f"differing fields {differing}  max |diff| {largest:.3g}"
        )
        identical &= not keys and not differing
    return identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the smoke cases, write <case>.json to OUT")
    r.add_argument("out", type=Path)
    r.add_argument("cases", nargs="*", help=f"some of: {', '.join(CASES)} (default: all)")
    c = sub.add_parser("compare", help="diff two run folders")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        unknown = [c for c in args.cases if c not in CASES]
        if unknown:
            parser.error(f"unknown case {unknown[0]!r}; valid: {', '.join(CASES)}")
        run(args.out, args.cases or list(CASES))
    elif not compare(args.before, args.after):
        sys.exit(1)


if __name__ == "__main__":
    main()
