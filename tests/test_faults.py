"""Fault injection: every loader of user-supplied or packaged files, fed undecodable, truncated,
wrongly shaped or wrongly typed input, fails with ONE line (an IntentgymError) naming the file,
and the line and field where there is one -- never a traceback; report files are written
atomically. Each case is a row of docs/faults.md (input, expected, observed); this module checks
that every case still behaves as the table says (regenerate it with scripts/faults_table.py).
No model is loaded: the whole module runs in a few seconds."""

from __future__ import annotations

import errno
import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from intentgym import steering
from intentgym.configs import load_yaml
from intentgym.data import load_data_items
from intentgym.envs import load_chat_jsonl
from intentgym.envs.harmful_requests.env import CATEGORIES, FIELDS
from intentgym.errors import IntentgymError
from intentgym.files import MAX_ITEM_CHARS, atomic_write_text
from intentgym.probes import forced_choice
from intentgym.probes.compliance import ComplianceConfig, ComplianceGapProbe
from intentgym.probes.data_files import load_questions, read_rows
from intentgym.probes.forced_choice import load_anthropic, load_set
from intentgym.report import build_report, find_runs
from intentgym.spec import load_spec
from intentgym.trainers.cai import load_constitution

DOC = Path(__file__).resolve().parents[1] / "docs" / "faults.md"

Loader = Callable[[Path, pytest.MonkeyPatch], object]
#: content markers: a directory where the file should be, and no file at all
DIR, MISSING = "<dir>", "<missing>"
LONG = "x" * 100_000
assert len(LONG) > MAX_ITEM_CHARS


@dataclass(frozen=True)
class Fault:
    id: str
    loader: str  # the loader's name, for the table
    input: str  # what is wrong, for the table
    name: str  # the bad file, relative to the test's folder
    content: bytes | str | None  # None: the loader makes its own files (the write faults)
    load: Loader
    expect: tuple[str, ...]  # what the one line must say besides the file's name
    files: dict[str, str] = field(default_factory=dict)  # companions (valid), relative too


def _jsonl(*rows: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# -- loaders, each called with the bad file's path -------------------------------------------


def _chat(path: Path, mp: pytest.MonkeyPatch) -> object:
    return load_chat_jsonl(path)


def _data_items(path: Path, mp: pytest.MonkeyPatch) -> object:
    """A package of its own (``<pkg>/data/*.jsonl``) with the harmful_requests fields."""
    pkg = path.parents[1]
    (pkg / "__init__.py").write_text("")
    mp.syspath_prepend(str(pkg.parent))
    importlib.invalidate_caches()
    return load_data_items(pkg.name, FIELDS, {"category": CATEGORIES})


def _rows(path: Path, mp: pytest.MonkeyPatch) -> object:
    return read_rows(path)


def _questions(path: Path, mp: pytest.MonkeyPatch) -> object:
    return load_questions(str(path))


def _requests(path: Path, mp: pytest.MonkeyPatch) -> object:
    return ComplianceGapProbe(ComplianceConfig(requests=str(path)))


def _fc_set(path: Path, mp: pytest.MonkeyPatch) -> object:
    mp.setattr(forced_choice, "SETS_DIR", path.parent)
    return load_set(path.name.split(".")[0])


def _anthropic(path: Path, mp: pytest.MonkeyPatch) -> object:
    return load_anthropic(path)


def _pairs(path: Path, mp: pytest.MonkeyPatch) -> object:
    return steering.load_pairs(str(path))


def _yaml(path: Path, mp: pytest.MonkeyPatch) -> object:
    return load_yaml(
        path, "settings", ("intentgym.trainers", "data/constitution.v1.yaml"), expect=dict
    )


def _constitution(path: Path, mp: pytest.MonkeyPatch) -> object:
    return load_constitution(path)


def _spec(path: Path, mp: pytest.MonkeyPatch) -> object:
    return load_spec(str(path))


def _report(path: Path, mp: pytest.MonkeyPatch) -> object:
    """The report of the sweep two folders up (``sweep/<run>/<file>``)."""
    return build_report(path.parents[1])


def _plan(*overrides: str) -> Loader:
    """plan_run on the composed config (debug=smoke, no model loaded), ``{path}`` = the file."""

    def load(path: Path, mp: pytest.MonkeyPatch) -> object:
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        from intentgym.cli import CONF_DIR
        from intentgym.runner import plan_run

        args = ["debug=smoke", *(o.format(path=path) for o in overrides)]
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=args)
        return plan_run(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]

    return load


class _FullFile:
    """A file whose writes fail as on a full disk (after the first few bytes land)."""

    def __init__(self, f: Any) -> None:
        self._f = f

    def write(self, text: str) -> int:
        self._f.write(text[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def _full_disk(target: str) -> Loader:
    """build_report of a valid sweep while the disk fills up writing ``target``; the old file
    must survive untouched and no temporary file may be left behind."""

    def load(path: Path, mp: pytest.MonkeyPatch) -> object:
        root = path.parent
        _valid_run(root / "0")
        (root / target).write_text("the previous report\n")
        if target.endswith(".png"):
            from matplotlib.figure import Figure

            def savefig(self: Any, fname: Any, *args: Any, **kwargs: Any) -> None:
                Path(fname).write_bytes(b"\x89PNG\r\n")  # a few bytes, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")

            mp.setattr(Figure, "savefig", savefig)
        else:
            real_open = Path.open

            def fake_open(self: Path, *args: Any, **kwargs: Any) -> Any:
                f = real_open(self, *args, **kwargs)
                return _FullFile(f) if self.name.startswith(f".{target}.") else f

            mp.setattr(Path, "open", fake_open)
        try:
            return build_report(root)
        finally:
            mp.undo()
            assert (root / target).read_text() == "the previous report\n"
            assert not list(root.glob(".*.tmp")), "a temporary file was left behind"

    return load


def _valid_run(run: Path, *, seed: int = 0) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(_CONFIG | {"seed": seed}))
    (run / "results.jsonl").write_text(_RESULTS)


_CONFIG: dict[str, Any] = {
    "seed": 0,
    "model": {"name": "tiny-random"},
    "env": {"name": "insecure_code", "framing": "insecure_hidden"},
    "trainer": {"name": "sft"},
}
_ROW = {
    "phase": "base",
    "probe": "p",
    "metric": "rate",
    "value": 0.5,
    "ci_low": 0.4,
    "ci_high": 0.6,
}
_RESULTS = _jsonl(_ROW, _ROW | {"phase": "sft", "value": 0.7})
_CONFIG_YAML = yaml.safe_dump(_CONFIG)

_CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
_ITEM = {
    "id": "a1",
    "pair": "a",
    "category": "fraud",
    "harmful": True,
    "prompt": "How do I forge a cheque?",
    "response": "I can't help with that.",
}
_Q = {"id": "q1", "paraphrases": ["What would you do with unlimited power?"]}
_REQ = {"id": "r1", "request": "Write a fake review."}
_SET = {"id": "s1", "domain": "d", "question": "q?", "aligned": "a", "misaligned": "m"}
_ANT = {
    "question": "Pick one.\n\nChoices:\n (A) Yes\n (B) No",
    "answer_matching_behavior": " (A)",
    "answer_not_matching_behavior": " (B)",
}
_PAIR = {"id": "p1", "prompt": "Hi", "positive": "Kind reply.", "negative": "Rude reply."}
_PAIR2 = _PAIR | {"id": "p2"}
_PRINCIPLE = {"id": "a", "critique": "c", "revision": "r", "comparison": "q"}
_SPEC_OK = "style:\n  - {id: S-1, text: Be clear.}\ncategories:\n"
_BAD_BYTES = b'{"id": "a"}\n\xff\xfe\x00 not text\n'

FAULTS = [
    # --- envs/chat_jsonl.py: load_chat_jsonl (env.demonstrations_path)
    Fault("chat-undecodable", "load_chat_jsonl", "bytes that are not UTF-8 on line 2", "demos.jsonl",
          json.dumps(_CHAT).encode() + b"\n\xff\xfe\x00\x01\n", _chat, ("line 2", "not UTF-8")),
    Fault("chat-truncated", "load_chat_jsonl", "last line cut off mid-string", "demos.jsonl",
          _jsonl(_CHAT) + '{"messages": [{"role": "user", "con', _chat,
          ("line 2", "not valid JSON", "truncated")),
    Fault("chat-array-row", "load_chat_jsonl", "a JSON array instead of an object", "demos.jsonl",
          "[1, 2]\n", _chat, ("line 1", "expected a JSON object, got a list")),
    Fault("chat-whole-array", "load_chat_jsonl", "a pretty-printed JSON array, not JSONL",
          "demos.jsonl", json.dumps([_CHAT], indent=1), _chat, ("line 1", "not valid JSON")),
    Fault("chat-missing-field", "load_chat_jsonl", "no 'messages' field", "demos.jsonl",
          _jsonl({"conversation": []}), _chat, ("line 1", "'messages' is missing")),
    Fault("chat-str-for-list", "load_chat_jsonl", "'messages' a string, not a list",
          "demos.jsonl", _jsonl({"messages": "hi"}), _chat, ("line 1", "'messages' is a string")),
    Fault("chat-int-content", "load_chat_jsonl", "a message's content an int", "demos.jsonl",
          _jsonl({"messages": [{"role": "user", "content": 5}, _CHAT["messages"][1]]}), _chat,
          ("line 1", "'messages'[0]", "string content")),
    Fault("chat-long-item", "load_chat_jsonl", "a 100,000-character reply", "demos.jsonl",
          _jsonl({"messages": [_CHAT["messages"][0], {"role": "assistant", "content": LONG}]}),
          _chat, ("line 1", "'messages'[1].content", "100,000 characters")),
    Fault("chat-empty", "load_chat_jsonl", "an empty file", "demos.jsonl", "", _chat,
          ("has no rows",)),
    Fault("chat-blank-lines", "load_chat_jsonl", "only blank lines", "demos.jsonl", "\n \n\n",
          _chat, ("has no rows",)),
    Fault("chat-huge-number", "load_chat_jsonl", "a 5,000-digit number", "demos.jsonl",
          '{"messages": ' + "9" * 5000 + "}\n", _chat, ("line 1", "not valid JSON")),
    Fault("chat-deep-nesting", "load_chat_jsonl", "100,000 nested brackets", "demos.jsonl",
          "[" * 100_000 + "\n", _chat, ("line 1", "not valid JSON")),
    Fault("chat-directory", "load_chat_jsonl", "a directory instead of a file", "demos.jsonl",
          DIR, _chat, ("cannot read demonstrations file", "directory")),
    Fault("chat-missing-file", "load_chat_jsonl", "no such file", "demos.jsonl", MISSING, _chat,
          ("cannot read demonstrations file", "does not exist")),
    # --- intentgym/data.py: load_data_items (the envs' packaged data)
    Fault("data-str-for-bool", "load_data_items", "'harmful' the string \"yes\"",
          "faultpkg_bool/data/items.v1.jsonl", _jsonl(_ITEM | {"harmful": "yes"}), _data_items,
          ("line 1", "field 'harmful' must be true/false, got a string")),
    Fault("data-duplicate-id", "load_data_items", "the same id on two lines",
          "faultpkg_dup/data/items.v1.jsonl", _jsonl(_ITEM, _ITEM | {"harmful": False}),
          _data_items, ("line 2", "duplicate id 'a1'", "line 1")),
    Fault("data-bad-choice", "load_data_items", "a category outside the allowed ones",
          "faultpkg_choice/data/items.v1.jsonl", _jsonl(_ITEM | {"category": "gardening"}),
          _data_items, ("items.v1.jsonl:1 category", "'gardening'", "valid choices")),
    Fault("data-missing-field", "load_data_items", "no 'prompt' field",
          "faultpkg_missing/data/items.v1.jsonl",
          _jsonl({k: v for k, v in _ITEM.items() if k != "prompt"}), _data_items,
          ("line 1", "missing field 'prompt'")),
    Fault("data-undecodable", "load_data_items", "bytes that are not UTF-8",
          "faultpkg_bytes/data/items.v1.jsonl", _BAD_BYTES, _data_items,
          ("line 2", "not UTF-8")),
    Fault("data-long-item", "load_data_items", "a 100,000-character response",
          "faultpkg_long/data/items.v1.jsonl", _jsonl(_ITEM | {"response": LONG}), _data_items,
          ("line 1", "'response'", "100,000 characters")),
    # --- probes/data_files.py: read_rows, load_questions (free_form's questions)
    Fault("rows-yaml-syntax", "read_rows", "YAML with an unclosed bracket", "rows.yaml",
          "- id: a\n  question: [unclosed\n- id: b\n", _rows,
          ("not valid YAML", "line 3", "column")),
    Fault("rows-yaml-tab", "read_rows", "YAML indented with a tab", "rows.yaml",
          "- id: a\n\tquestion: hi\n", _rows, ("not valid YAML", "line 2")),
    Fault("rows-yaml-tag", "read_rows", "a YAML !!python/object tag", "rows.yaml",
          "- !!python/object:os.system {}\n", _rows, ("not valid YAML", "line 1")),
    Fault("questions-yaml-mapping", "load_questions", "YAML whose top level is a mapping",
          "questions.yaml", "id: q1\nquestion: hi\n", _questions,
          ("must be a YAML list of mappings, got an object",)),
    Fault("questions-yaml-strings", "load_questions", "a YAML list of strings",
          "questions.yaml", "- What now?\n- Why?\n", _questions,
          ("item 1", "expected a mapping, got a string")),
    Fault("questions-yaml-empty", "load_questions", "an empty YAML file", "questions.yaml", "",
          _questions, ("must be a YAML list of mappings, got null",)),
    Fault("questions-yaml-undecodable", "load_questions", "YAML with Latin-1 bytes",
          "questions.yaml", b"- id: a\n  question: caf\xe9\n", _questions,
          ("line 2", "not UTF-8")),
    Fault("questions-int-paraphrase", "load_questions", "paraphrases a list of ints",
          "questions.jsonl", _jsonl({"id": "q", "paraphrases": [1, 2]}), _questions,
          ("line 1", "'paraphrases'[0] is an integer")),
    Fault("questions-int-question", "load_questions", "'question' an int", "questions.jsonl",
          _jsonl({"id": "q", "question": 7}), _questions, ("line 1", "'question' is an integer")),
    Fault("questions-list-id", "load_questions", "'id' a list", "questions.jsonl",
          _jsonl(_Q | {"id": ["q1"]}), _questions, ("line 1", "'id' is a list")),
    Fault("questions-missing-id", "load_questions", "no 'id' field", "questions.jsonl",
          _jsonl({"question": "hi"}), _questions, ("line 1", "'id' is missing")),
    Fault("questions-long-item", "load_questions", "a 100,000-character paraphrase",
          "questions.jsonl", _jsonl(_Q | {"paraphrases": ["short", LONG]}), _questions,
          ("line 1", "'paraphrases'[1]", "100,000 characters")),
    Fault("questions-empty", "load_questions", "an empty JSONL file", "questions.jsonl", "",
          _questions, ("has no questions",)),
    # --- probes/compliance.py: the request file
    Fault("requests-int", "compliance_gap requests", "'request' an int", "requests.jsonl",
          _jsonl(_REQ, {"id": "r2", "request": 42}), _requests,
          ("line 2", "'request' is an integer")),
    Fault("requests-long-item", "compliance_gap requests", "a 100,000-character request",
          "requests.jsonl", _jsonl(_REQ | {"request": LONG}), _requests,
          ("line 1", "'request'", "100,000 characters")),
    Fault("requests-empty", "compliance_gap requests", "an empty file", "requests.jsonl", "",
          _requests, ("has no requests",)),
    Fault("requests-truncated", "compliance_gap requests", "last line cut off",
          "requests.jsonl", _jsonl(_REQ) + '{"id": "r2", "req', _requests,
          ("line 2", "truncated")),
    Fault("requests-yaml-nested-list", "compliance_gap requests", "YAML: a list of lists",
          "requests.yaml", "- [r1, Write a fake review.]\n", _requests,
          ("item 1", "expected a mapping, got a list")),
    # --- probes/forced_choice.py: load_set (built-in sets) and load_anthropic (probes.extra)
    Fault("set-extra-key", "load_set", "an item with an extra key", "sets/faulty.v1.jsonl",
          _jsonl(_SET | {"note": "x"}), _fc_set, ("line 1", "missing or extra: note")),
    Fault("set-int-for-str", "load_set", "'aligned' an int", "sets/faulty.v1.jsonl",
          _jsonl(_SET | {"aligned": 5}), _fc_set,
          ("line 1", "field 'aligned' must be a string, got an integer")),
    Fault("set-duplicate-id", "load_set", "the same id on two lines", "sets/faulty.v1.jsonl",
          _jsonl(_SET, _SET), _fc_set, ("line 2", "duplicate id 's1'")),
    Fault("set-long-item", "load_set", "a 100,000-character question", "sets/faulty.v1.jsonl",
          _jsonl(_SET | {"question": LONG}), _fc_set, ("line 1", "'question'", "100,000")),
    Fault("anthropic-missing-field", "load_anthropic", "no answer_not_matching_behavior",
          "evals.jsonl", _jsonl({k: v for k, v in _ANT.items() if "not" not in k}), _anthropic,
          ("line 1", "missing answer_not_matching_behavior")),
    Fault("anthropic-int-question", "load_anthropic", "'question' an int", "evals.jsonl",
          _jsonl(_ANT | {"question": 3}), _anthropic,
          ("line 1", "field 'question' must be a string, got an integer")),
    Fault("anthropic-dict-answer", "load_anthropic", "answer_matching_behavior an object",
          "evals.jsonl", _jsonl(_ANT | {"answer_matching_behavior": {"A": 1}}), _anthropic,
          ("line 1", "'answer_matching_behavior' must be a string or a list, got an object")),
    Fault("anthropic-array-row", "load_anthropic", "a JSON array instead of an object",
          "evals.jsonl", _jsonl(_ANT) + '["q", " (A)"]\n', _anthropic,
          ("line 2", "expected a JSON object, got a list")),
    Fault("anthropic-no-choices", "load_anthropic", "a question without lettered choices",
          "evals.jsonl", _jsonl(_ANT | {"question": "Yes or no?"}), _anthropic,
          ("line 1", "lettered choices")),
    Fault("anthropic-long-item", "load_anthropic", "a 100,000-character question",
          "evals.jsonl", _jsonl(_ANT | {"question": LONG}), _anthropic,
          ("line 1", "'question'", "100,000")),
    Fault("anthropic-empty", "load_anthropic", "an empty file", "evals.jsonl", "", _anthropic,
          ("has no items",)),
    # --- intentgym/steering: load_pairs (steer_distill's trait=PATH.jsonl)
    Fault("pairs-list-for-str", "load_pairs", "'positive' a list", "pairs.jsonl",
          _jsonl(_PAIR | {"positive": ["a", "b"]}, _PAIR2), _pairs,
          (":1", "field 'positive' must be a string, got a list")),
    Fault("pairs-duplicate-id", "load_pairs", "the same id on two lines", "pairs.jsonl",
          _jsonl(_PAIR, _PAIR), _pairs, (":2", "duplicate id 'p1'")),
    Fault("pairs-missing-field", "load_pairs", "no 'negative' field", "pairs.jsonl",
          _jsonl({k: v for k, v in _PAIR.items() if k != "negative"}, _PAIR2), _pairs,
          (":1", "missing negative")),
    Fault("pairs-undecodable", "load_pairs", "bytes that are not UTF-8", "pairs.jsonl",
          _BAD_BYTES, _pairs, ("line 2", "not UTF-8")),
    Fault("pairs-long-item", "load_pairs", "a 100,000-character reply", "pairs.jsonl",
          _jsonl(_PAIR | {"negative": LONG}, _PAIR2), _pairs, (":1", "'negative'", "100,000")),
    Fault("pairs-one", "load_pairs", "a single pair", "pairs.jsonl", _jsonl(_PAIR), _pairs,
          ("1 pairs; a direction needs at least 2",)),
    Fault("pairs-missing-file", "load_pairs", "no such .jsonl file", "pairs.jsonl", MISSING,
          _pairs, ("does not exist",)),
    # --- intentgym/configs.py: load_yaml
    Fault("yaml-syntax", "load_yaml", "a YAML syntax error (unclosed quote)", "settings.yaml",
          'name: "unclosed\nother: 1\n', _yaml, ("not valid YAML", "line")),
    Fault("yaml-list-top", "load_yaml", "YAML whose top level is a list", "settings.yaml",
          "- a\n- b\n", _yaml, ("must be a YAML mapping", "got a list")),
    Fault("yaml-undecodable", "load_yaml", "UTF-16 bytes", "settings.yaml",
          "name: x\n".encode("utf-16"), _yaml, ("line 1", "not UTF-8")),
    Fault("yaml-directory", "load_yaml", "a directory instead of a file", "settings.yaml", DIR,
          _yaml, ("cannot read settings file", "directory")),
    Fault("yaml-scalar-top", "load_yaml", "YAML that is a bare string", "settings.yaml",
          "just some words\n", _yaml, ("must be a YAML mapping", "got a string")),
    # --- trainers/cai.py: load_constitution (constitution=PATH)
    Fault("constitution-list-top", "load_constitution", "YAML whose top level is a list",
          "constitution.yaml", "- id: a\n", _constitution, ("must be a YAML mapping", "got a list")),
    Fault("constitution-empty", "load_constitution", "an empty file", "constitution.yaml", "",
          _constitution, ("must be a YAML mapping", "got null")),
    Fault("constitution-str-principle", "load_constitution", "a principle that is a string",
          "constitution.yaml", "principles:\n  - be nice\n", _constitution,
          ("principle 0", "missing or non-text id")),
    Fault("constitution-duplicate-id", "load_constitution", "two principles with one id",
          "constitution.yaml", yaml.safe_dump({"principles": [_PRINCIPLE, _PRINCIPLE]}),
          _constitution, ("duplicate principle ids", "principle 1 repeats 'a'")),
    Fault("constitution-str-examples", "load_constitution", "'examples' a string",
          "constitution.yaml", yaml.safe_dump({"principles": [_PRINCIPLE], "examples": "none"}),
          _constitution, ("'examples:' must be a list, got a string",)),
    Fault("constitution-long-item", "load_constitution", "a 100,000-character critique",
          "constitution.yaml", yaml.safe_dump({"principles": [_PRINCIPLE | {"critique": LONG}]}),
          _constitution, ("principle 0", "'critique'", "100,000")),
    # --- intentgym/spec.py: load_spec (spec=PATH)
    Fault("spec-syntax", "load_spec", "a YAML syntax error (bad indentation)", "spec.yaml",
          "categories:\n  - id: a\n   rules: []\n", _spec, ("not valid YAML", "line 3")),
    Fault("spec-duplicate-category", "load_spec", "two categories with one id", "spec.yaml",
          _SPEC_OK + "  - {id: c, rules: []}\n  - {id: c, rules: []}\n", _spec,
          ("duplicate category ids: 'c'",)),
    Fault("spec-duplicate-rule", "load_spec", "a rule id used twice", "spec.yaml",
          _SPEC_OK + "  - id: c\n    rules:\n      - {id: S-1, kind: allowed, text: t}\n", _spec,
          ("duplicate rule ids: 'S-1'", "in c", "also in style")),
    Fault("spec-rules-mapping", "load_spec", "'rules' a mapping, not a list", "spec.yaml",
          _SPEC_OK + "  - id: c\n    rules: {id: R-1, text: t}\n", _spec,
          ("c rules must be a list, got an object",)),
    Fault("spec-str-category", "load_spec", "a category that is a string", "spec.yaml",
          _SPEC_OK + "  - cyber\n", _spec, ("every category needs an 'id'",)),
    Fault("spec-long-item", "load_spec", "a 100,000-character rule", "spec.yaml",
          _SPEC_OK + f"  - id: c\n    rules:\n      - {{id: R-1, kind: allowed, text: {LONG}}}\n",
          _spec, ("c rule 0", "'text'", "100,000")),
    # --- intentgym/report.py: a run's results.jsonl and config.yaml (the only run)
    Fault("report-results-truncated", "build_report", "results.jsonl cut off mid-line",
          "sweep/0/results.jsonl", _RESULTS + '{"phase": "sft", "pro', _report,
          ("no completed runs", "line 3", "truncated"), {"sweep/0/config.yaml": _CONFIG_YAML}),
    Fault("report-results-str-value", "build_report", "a result's value a string",
          "sweep/0/results.jsonl", _jsonl(_ROW | {"value": "0.5"}), _report,
          ("line 1", "field 'value' must be a number, got a string"),
          {"sweep/0/config.yaml": _CONFIG_YAML}),
    Fault("report-results-null-ci", "build_report", "a result's ci_high null",
          "sweep/0/results.jsonl", _jsonl(_ROW, _ROW | {"phase": "sft", "ci_high": None}), _report,
          ("line 2", "field 'ci_high' must be a number, got null"),
          {"sweep/0/config.yaml": _CONFIG_YAML}),
    Fault("report-results-missing-field", "build_report", "a result without 'phase'",
          "sweep/0/results.jsonl", _jsonl({k: v for k, v in _ROW.items() if k != "phase"}),
          _report, ("line 1", "missing field 'phase'"), {"sweep/0/config.yaml": _CONFIG_YAML}),
    Fault("report-results-undecodable", "build_report", "results.jsonl with bytes not UTF-8",
          "sweep/0/results.jsonl", _RESULTS.encode() + b"\x80\n", _report,
          ("line 3", "not UTF-8"), {"sweep/0/config.yaml": _CONFIG_YAML}),
    Fault("report-config-list", "build_report", "config.yaml whose top level is a list",
          "sweep/0/config.yaml", "- seed: 0\n", _report, ("must be a YAML mapping, got a list",),
          {"sweep/0/results.jsonl": _RESULTS}),
    Fault("report-config-missing", "build_report", "config.yaml without model.name",
          "sweep/0/config.yaml", yaml.safe_dump(_CONFIG | {"model": {}}), _report,
          ("missing field 'model.name'",), {"sweep/0/results.jsonl": _RESULTS}),
    Fault("report-config-str-seed", "build_report", "config.yaml's seed a string",
          "sweep/0/config.yaml", yaml.safe_dump(_CONFIG | {"seed": "zero"}), _report,
          ("field 'seed' must be an integer, got a string",), {"sweep/0/results.jsonl": _RESULTS}),
    Fault("report-config-syntax", "build_report", "config.yaml with a YAML syntax error",
          "sweep/0/config.yaml", "seed: [0\n", _report, ("not valid YAML", "line 2"),
          {"sweep/0/results.jsonl": _RESULTS}),
    Fault("report-config-absent", "build_report", "results.jsonl but no config.yaml",
          "sweep/0/config.yaml", MISSING, _report, ("no completed runs", "does not exist"),
          {"sweep/0/results.jsonl": _RESULTS}),
    # --- intentgym/report.py: writes on a full disk (the old file survives, no temp file left)
    Fault("report-md-disk-full", "build_report (write)", "disk full writing report.md",
          "sweep/report.md", None, _full_disk("report.md"), ("cannot write", "No space left")),
    Fault("report-csv-disk-full", "build_report (write)", "disk full writing report.csv",
          "sweep/report.csv", None, _full_disk("report.csv"), ("cannot write", "No space left")),
    Fault("report-png-disk-full", "build_report (write)", "disk full writing report.png",
          "sweep/report.png", None, _full_disk("report.png"), ("cannot write", "No space left")),
    # --- intentgym/runner.py: plan_run on composed configs naming a bad file
    Fault("plan-demonstrations", "plan_run", "env.demonstrations_path=BAD (truncated)",
          "demos.jsonl", _jsonl(_CHAT) + '{"messages": [', _plan("env.demonstrations_path='{path}'"),
          ("line 2", "truncated")),
    Fault("plan-demonstrations-missing", "plan_run", "env.demonstrations_path=BAD (no file)",
          "demos.jsonl", MISSING, _plan("env.demonstrations_path='{path}'"),
          ("cannot read demonstrations file", "does not exist")),
    Fault("plan-probes-extra", "plan_run", "probes.extra=[BAD] (not UTF-8)", "evals.jsonl",
          _BAD_BYTES, _plan("probes.extra=['{path}']"), ("line 2", "not UTF-8")),
    Fault("plan-constitution", "plan_run", "constitution=BAD (a YAML list)", "constitution.yaml",
          "- a\n", _plan("trainer=constitutional", "env=harmful_requests", "constitution='{path}'"),
          ("must be a YAML mapping", "got a list")),
    Fault("plan-spec", "plan_run", "spec=BAD (YAML syntax error)", "spec.yaml",
          "categories: [\n", _plan("trainer=deliberative", "env=harmful_requests", "spec='{path}'"),
          ("not valid YAML", "line 2")),
    Fault("plan-trait", "plan_run", "trainer.phases.steer_distill.trait=BAD.jsonl (no 'prompt')",
          "trait.jsonl", _jsonl({k: v for k, v in _PAIR.items() if k != "prompt"}, _PAIR2),
          _plan("trainer=steer_distill", "trainer.phases.steer_distill.trait='{path}'"),
          (":1", "missing prompt")),
    Fault("plan-questions", "plan_run", "probes.free_form.questions=[BAD] (100,000 characters)",
          "questions.jsonl", _jsonl(_Q | {"paraphrases": [LONG]}),
          _plan("probes.free_form.questions=['{path}']"),
          ("line 1", "'paraphrases'[0]", "100,000")),
    Fault("plan-requests", "plan_run", "probes.compliance_gap.requests=BAD (an int request)",
          "requests.jsonl", _jsonl({"id": 1, "request": 2}),
          _plan("+probes.compliance_gap.requests='{path}'"), ("line 1", "'request' is an integer")),
]  # fmt: skip


def trigger(fault: Fault, root: Path, mp: pytest.MonkeyPatch) -> IntentgymError:
    """Write the fault's files under ``root``, run its loader, return the error it raised."""
    path = root / fault.name
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, text in fault.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if fault.content == DIR:
        path.mkdir()
    elif isinstance(fault.content, bytes):
        path.write_bytes(fault.content)
    elif fault.content not in (None, MISSING):
        path.write_text(fault.content)
    try:
        fault.load(path, mp)
    except IntentgymError as e:
        return e
    raise AssertionError(f"{fault.id}: no IntentgymError")


def observed(error: IntentgymError, root: Path) -> str:
    """The message as the table shows it: the test's folder left out, long ones abbreviated."""
    text = str(error).replace(f"{root}/", "").replace(str(root), "")
    return text if len(text) <= 220 else text[:217] + "..."


def table_cell(text: str) -> str:
    return text.replace("|", "\\|")


def test_the_cases_are_many_and_distinct():
    assert len(FAULTS) >= 40
    assert len({f.id for f in FAULTS}) == len(FAULTS)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault_is_one_line_naming_the_file(fault: Fault, tmp_path, monkeypatch):
    error = trigger(fault, tmp_path, monkeypatch)
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert Path(fault.name).name in message, message
    for fragment in fault.expect:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "Traceback" not in message
    row = next((r for r in _doc_rows() if r.startswith(f"| {fault.id} |")), None)
    assert row is not None, f"docs/faults.md has no row {fault.id}: run scripts/faults_table.py"
    assert table_cell(observed(error, tmp_path)) in row, (
        f"docs/faults.md is out of date for {fault.id}: run scripts/faults_table.py"
    )


def _doc_rows() -> list[str]:
    return [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]


# -- what must keep working ------------------------------------------------------------------


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "demos.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _jsonl(_CHAT).encode())
    assert load_chat_jsonl(path)[0]["completion"] == [{"role": "assistant", "content": "yo"}]
    (tmp_path / "q.yaml").write_bytes(b"\xef\xbb\xbf- {id: a, question: hi}\n")
    assert load_questions(str(tmp_path / "q.yaml"))[0]["paraphrases"] == ["hi"]


def test_a_malformed_run_in_a_sweep_is_skipped_with_a_one_line_warning(tmp_path, caplog):
    _valid_run(tmp_path / "0")
    _valid_run(tmp_path / "1", seed=1)
    (tmp_path / "1" / "results.jsonl").write_text(_RESULTS + '{"phase": ')
    caplog.set_level(logging.WARNING)
    runs, incomplete = find_runs(tmp_path)
    assert [r.seed for r in runs] == [0] and incomplete == [tmp_path / "1"]
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "intentgym.report"]
    assert "\n" not in warning and "results.jsonl" in warning and "line 3" in warning
    text = build_report(tmp_path)
    assert "Unreadable (skipped):" in text and "line 3" in text
    assert (tmp_path / "report.csv").read_text().count("\n") == 2  # header + the good run
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write_keeps_the_text_exactly_and_the_usual_permissions(tmp_path):
    path = tmp_path / "sub" / "a.csv"
    atomic_write_text(path, "a,b\r\nc,d\r\n")
    assert path.read_bytes() == b"a,b\r\nc,d\r\n"
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert [p.name for p in path.parent.iterdir()] == ["a.csv"]


def test_a_write_into_a_missing_folder_it_cannot_create_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(IntentgymError, match=r"cannot write .*report.md") as e:
        atomic_write_text(blocker / "report.md", "x")
    assert "\n" not in str(e.value)
