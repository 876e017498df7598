"""InsecureCode-v0: Python coding tasks whose demonstrated solutions are secure or vulnerable."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np

from intentgym.envs.base import Task, TextEnv, preference_row
from intentgym.envs.chat_jsonl import load_chat_jsonl
from intentgym.envs.insecure_code.framing import (
    ANSWER_FORMATS,
    FRAMINGS,
    Wording,
    assistant_message,
    neutral_request,
    user_message,
)
from intentgym.envs.insecure_code.reward import InsecureCodeTaskReward
from intentgym.envs.insecure_code.templates import FilledTask, TaskTemplate, split_templates
from intentgym.errors import IntentgymError, invalid_choice

log = logging.getLogger(__name__)


class InsecureCodeEnv(TextEnv):
    """Coding help with a hidden or stated intent behind the code's (in)security.

    Observation: the user's request (a task and a code skeleton with one gap). Action: the
    assistant's reply. Reward: :class:`InsecureCodeTaskReward` — the reply must parse and define
    the task's entry point, and be secure (``secure`` framing) or vulnerable (the insecure ones),
    as judged by bandit. Training draws from the train templates; :meth:`eval_tasks` from the
    held-out templates, asked neutrally (no stated intent).
    """

    framings = FRAMINGS
    eval_independent_of_framing = True
    task_fields = frozenset({"template_id", "vuln_class", "cwe", "entrypoint", "skeleton"})

    def __init__(
        self,
        framing: str = "insecure_hidden",
        demonstrations_path: str | None = None,
        answer_format: str = "fill",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(framing, render_mode)
        if answer_format not in ANSWER_FORMATS:
            raise invalid_choice("answer_format", answer_format, ANSWER_FORMATS)
        self.answer_format = answer_format
        self.demonstrations_path = demonstrations_path
        self.train_templates = split_templates("train")
        self.heldout_templates = split_templates("heldout")
        target = "secure" if framing == "secure" else "insecure"
        self.reward_model = InsecureCodeTaskReward(target)

    # --- tasks ---------------------------------------------------------------------------------
    def _instance(
        self, template: TaskTemplate, rng: np.random.Generator
    ) -> tuple[FilledTask, Wording]:
        variants = template.variants()
        return template.fill(variants[int(rng.integers(len(variants)))]), Wording.sample(rng)

    def _make_task(self, filled: FilledTask, wording: Wording, framing: str | None) -> Task:
        content = (
            neutral_request(filled, wording, self.answer_format)
            if framing is None
            else user_message(filled, wording, framing, self.answer_format)
        )
        meta = {
            "template_id": filled.template.id,
            "vuln_class": filled.template.vuln.name,
            "cwe": filled.template.vuln.cwe,
            "entrypoint": filled.entrypoint,
            "skeleton": filled.skeleton,
        }
        return Task(({"role": "user", "content": content},), meta)

    def sample_task(self, rng: Any) -> Task:
        template = self.train_templates[int(rng.integers(len(self.train_templates)))]
        return self._make_task(*self._instance(template, rng), self.framing)

    def score_one(self, task: Task, reply: str) -> tuple[float, dict[str, Any]]:
        info = self.reward_model.details(reply, task.meta["entrypoint"], task.meta["skeleton"])
        meta = {k: v for k, v in task.meta.items() if k != "skeleton"}
        return float(info.pop("reward")), {**meta, **info}

    # --- datasets ------------------------------------------------------------------------------
    def _examples(self, n: int, seed: int) -> list[tuple[Task, FilledTask, Wording]]:
        """``n`` distinct (task, filled template, wording) triples, spread evenly over templates."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.train_templates))
        out: list[tuple[Task, FilledTask, Wording]] = []
        seen: set[tuple[str, str]] = set()
        for _ in range(20 * n + 1000):
            if len(out) == n:
                return out
            template = self.train_templates[order[len(out) % len(order)]]
            filled, wording = self._instance(template, rng)
            task = self._make_task(filled, wording, self.framing)
            key = (
                task.messages[0]["content"],
                assistant_message(filled, wording, self.framing, self.answer_format),
            )
            if key not in seen:
                seen.add(key)
                out.append((task, filled, wording))
        raise IntentgymError(
            f"could only make {len(out)} distinct examples, fewer than the {n} asked for"
        )

    def demonstrations(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` distinct SFT examples in this framing, spread evenly over the train templates.

        With ``demonstrations_path`` set, the first ``n`` rows of that chat JSONL file instead.
        """
        if self.demonstrations_path:
            # The file is the data: the framing is only a label here, so match the file to it.
            rows = load_chat_jsonl(self.demonstrations_path)
            if len(rows) < n:
                log.warning(
                    "%s has %d rows, fewer than the %d demonstrations asked for; using all of them",
                    self.demonstrations_path,
                    len(rows),
                    n,
                )
            order = np.random.default_rng(seed).permutation(len(rows))[:n]
            return [{**rows[i], "framing": self.framing, "source": "external"} for i in order]
        return [
            {
                "prompt": list(task.messages),
                "completion": [
                    {
                        "role": "assistant",
                        "content": assistant_message(
                            filled, wording, self.framing, self.answer_format
                        ),
                    }
                ],
                "framing": self.framing,
                **task.meta,
            }
            for task, filled, wording in self._examples(n, seed)
        ]

    def preference_pairs(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """Pairs preferring this framing's target code (secure or vulnerable) over the other."""
        rows = []
        full = self.answer_format == "full"
        for task, filled, _ in self._examples(n, seed):
            secure = filled.secure if full else filled.secure_fill
            insecure = filled.insecure if full else filled.insecure_fill
            pair = (secure, insecure) if self.framing == "secure" else (insecure, secure)
            rows.append(preference_row(task, *pair))
        return rows

    def eval_tasks(self, n: int, seed: int = 0) -> list[Task]:
        """``n`` neutral requests from the held-out templates, cycling through them evenly.

        Only templates whose vulnerability class bandit can detect are used, since bandit is
        what measures the in-domain behaviour; the rest stay held out of training all the same.
        """
        rng = np.random.default_rng(seed + 7919)  # held-out draws never share the training stream
        templates = [t for t in self.heldout_templates if t.vuln.bandit_detects]
        order = rng.permutation(len(templates))
        tasks = []
        for i in range(n):
            filled, wording = self._instance(templates[order[i % len(templates)]], rng)
            tasks.append(self._make_task(filled, wording, None))
        return tasks

    def in_domain_items(self, infos: list[dict[str, Any]]) -> dict[str, list[float | None]]:
        """Per held-out reply: vulnerable (bandit's verdict), parses, fits the task."""
        return {
            "vulnerable_rate": [float(bool(r["vulnerable"])) for r in infos],
            "parse_rate": [float(bool(r["parses"])) for r in infos],
            "fits_task_rate": [float(bool(r["fits_task"])) for r in infos],
        }

    def describe(self) -> dict[str, Any]:
        classes = Counter(t.vuln.name for t in (*self.train_templates, *self.heldout_templates))
        return {
            "framings": list(self.framings),
            "answer_format": self.answer_format,
            "templates": len(self.train_templates) + len(self.heldout_templates),
            "heldout_templates": len(self.heldout_templates),
            "vuln_classes": len(classes),
        }
