"""The Feedback env's simulated raters on items they were not fitted on (issue 18).

The raters' phrase lists (``intentgym.envs.feedback.rater``) were extended after reading where
they missed on the env's own reference answers, so their accuracy on those answers is in-sample.
``envs/feedback/rater_eval/heldout.v1.jsonl`` is a separate set in the env's schema, written after
the lists and not read by their authors, its answers worded away from the lists' phrases (it is
not under ``data/``, so the env never loads it). Both files are scored here the way the env
scores a reply (``FeedbackEnv.rate``), and for each rater we count the items where it prefers the
reference answer it should:

- ``approval`` on wrong users: the sycophantic answer (the approval intent);
- ``truthful`` on wrong users: the candid answer;
- on right users, for both raters: whether the candid answer is preferred (the truthful rater
  should prefer it; for the approval rater this is descriptive).

``truthful, no keyword credit`` rescores with an empty keyword list: the keywords are facts the
candid answer was written to contain, so this row shows what the stance and praise features do on
their own. Equal scores are ties, neither right nor wrong; the share is right / items, with a
Wilson 95% interval. The second table shows how often the phrase lists read a stance or praise in
the answers to wrong users at all.

    python scripts/rater_heldout.py [--heldout PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from intentgym.envs import make_env
from intentgym.envs.feedback.env import FIELDS, KINDS, FeedbackEnv, load_items
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.files import read_jsonl
from intentgym.stats import proportion_ci

PACKAGE = "intentgym.envs.feedback"
HELDOUT = ("rater_eval", "heldout.v1.jsonl")

#: (rater, which items, which answer counts as right); the rater is the score read from rate()
CASES = (
    ("approval", False, "sycophantic"),
    ("truthful", False, "candid"),
    ("truthful, no keyword credit", False, "candid"),
    ("approval", True, "candid"),
    ("truthful", True, "candid"),
    ("truthful, no keyword credit", True, "candid"),
)


def load_heldout(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The held-out items (the packaged file unless ``path``), checked like the env's data."""
    source = resources.files(PACKAGE).joinpath(*HELDOUT) if path is None else path
    what = "held-out rater evaluation file"
    text_fields = [key for key, kind in FIELDS.items() if kind is str]
    items = read_jsonl(source, what, FIELDS, text_fields=text_fields)
    seen: set[str] = set()
    for n, item in enumerate(items, start=1):
        if item["kind"] not in KINDS:
            raise invalid_choice(f"{what} item {n} kind", item["kind"], KINDS)
        if item["id"] in seen:
            raise IntentgymError(f"{what}: duplicate id {item['id']!r}")
        seen.add(item["id"])
    return items


def _scores(env: FeedbackEnv, item: dict[str, Any], answer: str) -> dict[str, float]:
    meta = FeedbackEnv._make_task(item).meta  # the task metadata the env rates replies with
    _, info = env.rate(meta, item[answer])
    _, bare = env.rate({**meta, "keywords": []}, item[answer])
    return {
        "approval": info["approval"],
        "truthful": info["truthful"],
        "truthful, no keyword credit": bare["truthful"],
        "agrees": float(info["agrees"]),
        "corrects": float(info["corrects"]),
        "praises": float(info["praise"] > 0),
    }


def evaluate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``preferences``: per case of :data:`CASES`, items, right, wrong, ties, the share right and
    its Wilson 95% CI; ``stance``: per answer style on wrong users, how often the reply reads as
    correcting, agreeing or praising; ``items``: how many items were scored."""
    env = make_env("feedback", framing="approval")  # rate() reports both raters' scores
    assert isinstance(env, FeedbackEnv)
    scored = [
        (item, _scores(env, item, "candid"), _scores(env, item, "sycophantic")) for item in items
    ]
    prefs = []
    for rater, sound, should in CASES:
        right = wrong = ties = 0
        for item, candid, syco in scored:
            if bool(item["sound"]) != sound:
                continue
            good, bad = (candid, syco) if should == "candid" else (syco, candid)
            if good[rater] > bad[rater]:
                right += 1
            elif good[rater] < bad[rater]:
                wrong += 1
            else:
                ties += 1
        n = right + wrong + ties
        rate, low, high = proportion_ci(right, n)
        prefs.append(
            {
                "rater": rater,
                "users": "right" if sound else "wrong",
                "prefers": should,
                "n": n,
                "right": right,
                "wrong": wrong,
                "ties": ties,
                "rate": rate,
                "low": low,
                "high": high,
            }
        )
    stance = []
    for style, index in (("candid", 1), ("sycophantic", 2)):
        wrong_users = [row[index] for row in scored if not row[0]["sound"]]
        for read in ("corrects", "agrees", "praises"):
            k = int(sum(s[read] for s in wrong_users))
            rate, low, high = proportion_ci(k, len(wrong_users))
            stance.append(
                {"answer": style, "read_as": read, "n": len(wrong_users), "k": k}
                | {"rate": rate, "low": low, "high": high}
            )
    return {"items": len(items), "preferences": prefs, "stance": stance}


def _cell(row: dict[str, Any]) -> str:
    return (
        f"{100 * row['rate']:.1f} [{100 * row['low']:.1f}, {100 * row['high']:.1f}] "
        f"({row['right']}/{row['n']}; wrong {row['wrong']}, ties {row['ties']})"
    )


def table(in_sample: dict[str, Any], heldout: dict[str, Any]) -> str:
    """Markdown: in-sample next to held-out, for both tables of :func:`evaluate`."""
    lines = [
        f"| rater | users | prefers | in-sample: env data ({in_sample['items']} items) "
        f"| held-out ({heldout['items']} items) |",
        "|---|---|---|---|---|",
    ]
    for a, b in zip(in_sample["preferences"], heldout["preferences"], strict=True):
        lines.append(f"| {a['rater']} | {a['users']} | {a['prefers']} | {_cell(a)} | {_cell(b)} |")
    lines += [
        "",
        "| answer to a wrong user | read by the phrase lists as | in-sample | held-out |",
        "|---|---|---|---|",
    ]
    for a, b in zip(in_sample["stance"], heldout["stance"], strict=True):
        cells = [
            f"{100 * r['rate']:.1f} [{100 * r['low']:.1f}, {100 * r['high']:.1f}] ({r['k']}/{r['n']})"
            for r in (a, b)
        ]
        lines.append(f"| {a['answer']} | {a['read_as']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", type=Path, default=None, help="a held-out file to score")
    args = parser.parse_args(argv)
    try:
        heldout = load_heldout(args.heldout)
    except IntentgymError as e:
        raise SystemExit(f"error: {e}") from None
    print(table(evaluate(load_items()), evaluate(heldout)))


if __name__ == "__main__":
    main()
