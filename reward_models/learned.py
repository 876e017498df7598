"""``learned``: a sequence-classification reward model trained on preference pairs.

The ``reward`` phase (``trainers/reward.py``) trains one with TRL's ``RewardTrainer`` and saves it
as a plain transformers folder; this class reloads any such folder (``path``) and scores
completions exactly as the trainer saw them: conversational prompts through the tokenizer's chat
template with the completion as the assistant's turn, plain strings as ``prompt + completion +
eos``. Inside a run, ``path: null`` means "the reward model this run's ``reward`` phase trained".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from intentgym.errors import IntentgymError
from intentgym.reward_models.base import (
    Completion,
    Prompt,
    check_lengths,
    completion_text,
    register_reward_model,
)


def preference_text(tokenizer: Any, prompt: Prompt, completion: Completion) -> str:
    """The text a reward model scores: the way TRL's RewardTrainer renders a pair's side."""
    if isinstance(prompt, str):
        return prompt + completion_text(completion) + tokenizer.eos_token
    answer = (
        list(completion)
        if not isinstance(completion, str)
        else [{"role": "assistant", "content": completion}]
    )
    return tokenizer.apply_chat_template([*prompt, *answer], tokenize=False)


def check_reward_model_folder(path: str) -> Path:
    """``path`` as a folder, if it holds a saved reward model: a transformers config whose
    architecture is a ``...ForSequenceClassification`` with one label (a scalar score), as the
    ``reward`` phase saves. Anything else (a causal LM, a LoRA adapter, a classifier with several
    labels) would load with a freshly initialised or wrong head and score noise, so it is refused
    with one line naming the path and what it holds. Reads config.json only, never weights."""
    import json

    folder = Path(path).expanduser()
    shown = repr(str(folder))
    config_file = folder / "config.json"
    if not config_file.is_file():
        if (folder / "adapter_config.json").is_file():
            found = "a LoRA adapter (adapter_config.json, no config.json)"
        elif folder.is_dir():
            found = "no config.json"
        else:
            found = "no such folder"
        raise IntentgymError(f"reward model path {shown} is not a saved reward model ({found})")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as e:
        raise IntentgymError(
            f"reward model path {shown}: config.json is not readable JSON ({e})"
        ) from None
    if not isinstance(config, dict):
        raise IntentgymError(f"reward model path {shown}: config.json is not a JSON object")
    architectures = config.get("architectures") or []
    id2label = config.get("id2label")
    # transformers saves the label count as id2label; a config without one has its default, 2
    num_labels = len(id2label) if isinstance(id2label, dict) else config.get("num_labels", 2)
    is_classifier = bool(architectures) and all(
        str(a).endswith("ForSequenceClassification") for a in architectures
    )
    if not is_classifier or num_labels != 1:
        arch = ", ".join(map(str, architectures)) or "no architectures"
        found = f"{arch} with num_labels={num_labels}" if is_classifier else arch
        raise IntentgymError(
            f"reward model path {shown} is not a saved reward model: its config.json describes "
            f"{found}, not a ...ForSequenceClassification with num_labels=1 (what the reward "
            "phase saves, as phases/<label>/reward_model/)"
        )
    return folder


@register_reward_model("learned")
class LearnedRewardModel:
    """A reward model trained on preference pairs (the ``reward`` phase), loaded from ``path``."""

    @staticmethod
    def preflight(path: str | None = None, **_: Any) -> None:
        """Before any work: ``path`` holds a reward model (:func:`check_reward_model_folder`)."""
        if path is not None:
            check_reward_model_folder(path)

    def __init__(
        self,
        path: str | None = None,
        batch_size: int = 16,
        max_length: int = 1024,
        dtype: str = "auto",
        device: str = "auto",
    ) -> None:
        if path is None:
            raise IntentgymError(
                "reward model 'learned' needs a path: set reward_model.path=DIR, or add a "
                "'reward' phase before the phase that uses it"
            )
        folder = check_reward_model_folder(path)  # before any weights are loaded

        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from intentgym.models import resolve_device, resolve_dtype

        self.device = torch.device(resolve_device(device))
        self.compute_dtype = resolve_dtype(dtype, self.device.type)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=1, dtype=torch.float32
        ).to(self.device)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self.batch_size = batch_size
        self.max_length = max_length

    def __call__(
        self, prompts: Sequence[Prompt], completions: Sequence[Completion], **kwargs: Any
    ) -> list[float | None]:
        check_lengths(prompts, completions)
        texts = [
            preference_text(self.tokenizer, p, c) for p, c in zip(prompts, completions, strict=True)
        ]
        scores: list[float | None] = []
        autocast = (
            torch.autocast(self.device.type, dtype=self.compute_dtype)
            if self.compute_dtype != torch.float32
            else torch.autocast(self.device.type, enabled=False)
        )
        # The model reads the last non-pad token; right padding keeps that position simple.
        self.tokenizer.padding_side = "right"
        with torch.inference_mode(), autocast:
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=False,
                ).to(self.device)
                logits = self.model(**batch).logits[:, 0].float()
                scores += [float(x) for x in logits]
        return scores
