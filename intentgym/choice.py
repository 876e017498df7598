"""Lettered choices: the one (A)/(B) preference helper.

A model's choice between lettered options is read from the log-probability of each label (e.g.
"(A)", "(B)") as the first tokens of its reply, renormalised over the labels. The forced-choice
probe reads its items' answers this way, and constitutional AI's feedback model its preference
between two replies; an endpoint's first-token top log-probabilities are mapped to the same labels
by :func:`label_index`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from intentgym.models import Policy

LABELS = ("(A)", "(B)")
LETTERS = "AB"


def normalise(logps: Sequence[float]) -> list[float]:
    """Probabilities from log-probabilities, renormalised over the options (a softmax)."""
    top = max(logps)
    exps = [math.exp(x - top) for x in logps]
    total = sum(exps)
    return [e / total for e in exps]


def label_index(token: str, letters: str = LETTERS) -> int | None:
    """The option a token or written answer names ("(A", "A", " (B)" ...), or None."""
    letter = token.strip(" ()").upper()[:1]
    return letters.index(letter) if letter and letter in letters else None


def label_probabilities(
    policy: Policy,
    prompts: Sequence[str],
    labels: Sequence[str] = LABELS,
    *,
    batch_size: int = 16,
    desc: str | None = None,
) -> list[list[float]]:
    """Per prompt (a rendered chat prompt ending in the assistant header), the probability of
    each label as the reply, renormalised over ``labels``. Every prompt x label pair goes through
    :func:`intentgym.scoring.continuation_logprobs` in one call (shared prefixes computed once)."""
    from intentgym.scoring import continuation_logprobs

    k = len(labels)
    logps = continuation_logprobs(
        policy,
        [p for p in prompts for _ in labels],
        [label for _ in prompts for label in labels],
        batch_size=batch_size,
        desc=desc,
    )
    return [normalise(logps[i * k : (i + 1) * k]) for i in range(len(prompts))]
