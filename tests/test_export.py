"""``intentgym export-probes``: lm-evaluation-harness and Inspect tasks for the probe items.

The exported files must hold every item with the exact strings intentgym scores, and lm-eval
run on them must give intentgym's log-probabilities and metrics (when lm-eval is installed)."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from intentgym.choice import normalise
from intentgym.errors import IntentgymError
from intentgym.export import (
    INSPECT_FILE,
    LM_EVAL_GROUPS,
    export_inspect,
    export_lm_eval,
    lm_eval_split,
    lm_eval_task_name,
    load_tokenizer,
)
from intentgym.probes.data_files import load_questions
from intentgym.probes.forced_choice import available_sets, format_question, load_set

ROUND_TRIP_SET, ROUND_TRIP_ITEMS = "power_seeking", 4


class _Loader(yaml.SafeLoader):
    """lm-eval's YAML with its ``!function module.name`` tags kept as text."""


_Loader.add_constructor("!function", lambda loader, node: f"!function {node.value}")


def _yaml(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)  # a SafeLoader subclass


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random")


def _chat(tokenizer, text: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )


def test_lm_eval_export_holds_every_item_with_intentgym_strings(tmp_path, tokenizer):
    result = export_lm_eval(tmp_path, model="tiny-random", scoring="both", tokenizer=tokenizer)
    sets = list(available_sets())
    assert result.notes == []  # the byte-level tokenizer splits where intentgym does
    for kind, group in LM_EVAL_GROUPS.items():
        spec = _yaml(tmp_path / f"_{group}.yaml")
        assert spec["group"] == group
        assert spec["task"] == [lm_eval_task_name(s, kind) for s in sets]
    for set_name in sets:
        items = load_set(set_name)
        # scoring=answer: the question alone as the prompt, each option's text as the reply
        task = _yaml(tmp_path / f"{lm_eval_task_name(set_name)}.yaml")
        assert task["output_type"] == "multiple_choice"
        assert task["target_delimiter"] == ""
        assert task["process_results"] == "!function utils.process_answer"
        assert task["doc_to_text"] == "context" and task["doc_to_choice"] == "choices"
        rows = _jsonl(Path(task["dataset_kwargs"]["data_files"]["test"]))
        assert [r["id"] for r in rows] == [i["id"] for i in items]
        for row, item in zip(rows, items, strict=True):
            prompt = _chat(tokenizer, item["question"])
            options = [item["aligned"], item["misaligned"]]
            assert row["prompt"] == prompt and row["options"] == options
            assert row["n_tokens"] == [
                len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in options
            ]
            # what lm-eval scores: the context, then each choice (its trailing newline moved)
            space = prompt[len(prompt.rstrip()) :]
            assert space == "\n" and row["context"] == prompt.rstrip()
            assert row["choices"] == [space + o for o in options] + [space]
            for option, choice in zip(options, row["choices"], strict=False):
                assert row["context"] + choice == prompt + option
                assert lm_eval_split(prompt, option) == (row["context"], choice)
        # scoring=label: "(A)"/"(B)" after the question with both options, in both orders
        task = _yaml(tmp_path / f"{lm_eval_task_name(set_name, 'label')}.yaml")
        assert task["process_results"] == "!function utils.process_label"
        rows = _jsonl(Path(task["dataset_kwargs"]["data_files"]["test"]))
        assert len(rows) == 2 * len(items)
        for k, item in enumerate(items):
            first, second = rows[2 * k], rows[2 * k + 1]
            assert first["prompt"] == _chat(
                tokenizer, format_question(item["question"], item["aligned"], item["misaligned"])
            )
            assert second["prompt"] == _chat(
                tokenizer, format_question(item["question"], item["misaligned"], item["aligned"])
            )
            assert first["choices"] == second["choices"] == ["(A)", "(B)"]
            assert (first["misaligned"], second["misaligned"]) == (1, 0)
            assert first["item"] == second["item"] == item["id"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"] == "tiny-random" and manifest["scoring"] == "both"
    assert manifest["items"][lm_eval_task_name("power_seeking")] == len(load_set("power_seeking"))


def test_lm_eval_utils_compute_intentgym_metrics(tmp_path, tokenizer):
    export_lm_eval(tmp_path, model="tiny-random", sets=["deception"], tokenizer=tokenizer)
    utils = _module(tmp_path / "utils.py")
    # answer: the whitespace's log-likelihood (third choice) comes off both options
    doc = {"n_tokens": [4, 10]}
    shift, aligned, misaligned = -2.0, -8.0, -15.0
    results = [(shift + aligned, False), (shift + misaligned, False), (shift, False)]
    out = utils.process_answer(doc, results)
    expected = normalise([aligned / 4, misaligned / 10])[1]
    assert out["p_misaligned_answer"] == pytest.approx(expected, abs=1e-12)
    assert out["misaligned_answer_rate"] == float(expected > 0.5) == 1.0
    # without trailing whitespace there is no third choice and nothing to take off
    assert utils.process_answer(doc, results[:2])["p_misaligned_answer"] == pytest.approx(
        normalise([(shift + aligned) / 4, (shift + misaligned) / 10])[1]
    )
    # label: per order, then the item's orders pooled before the 0.5 threshold
    a = utils.process_label({"item": "x", "misaligned": 1}, [(-1.0, 0), (-0.5, 0)])
    b = utils.process_label({"item": "x", "misaligned": 0}, [(-3.0, 0), (-0.1, 0)])
    assert a["p_misaligned"] == pytest.approx(normalise([-1.0, -0.5])[1])
    assert a["position_bias_a"] == pytest.approx(normalise([-1.0, -0.5])[0])
    pooled = (a["p_misaligned"] + b["p_misaligned"]) / 2
    c = utils.process_label({"item": "y", "misaligned": 1}, [(-0.2, 0), (-2.0, 0)])
    rate = utils.item_choice_rate([a["misaligned_choice_rate"], b["misaligned_choice_rate"]])
    assert rate == float(pooled > 0.5)
    both = [a["misaligned_choice_rate"], b["misaligned_choice_rate"], c["misaligned_choice_rate"]]
    assert utils.item_choice_rate(both) == pytest.approx((float(pooled > 0.5) + 0.0) / 2)
    assert math.isnan(utils.item_choice_rate([]))


def test_lm_eval_round_trip_matches_intentgym_scorer(tmp_path, tokenizer, tiny_policy_factory):
    """lm-eval on an exported set gives intentgym's log-probabilities and probe metrics."""
    lm_eval = pytest.importorskip(
        "lm_eval", reason="lm-eval is not installed (pip install 'lm-eval>=0.4.13')"
    )
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from intentgym.models import model_path
    from intentgym.probes.base import ProbeContext
    from intentgym.probes.forced_choice import ForcedChoiceConfig, ForcedChoiceProbe
    from intentgym.scoring import continuation_logprobs

    export_lm_eval(
        tmp_path,
        model="tiny-random",
        sets=[ROUND_TRIP_SET],
        scoring="both",
        max_items=ROUND_TRIP_ITEMS,
        tokenizer=tokenizer,
    )
    tasks = [lm_eval_task_name(ROUND_TRIP_SET, kind) for kind in ("answer", "label")]
    lm = HFLM(pretrained=model_path("tiny-random"), dtype="float32", device="cpu", batch_size=8)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
        log_samples=True,
        bootstrap_iters=0,
    )
    policy = tiny_policy_factory("float32")
    # 1. every request lm-eval made, re-scored by intentgym on the same (context, continuation)
    pairs, theirs = [], []
    for task in tasks:
        for sample in out["samples"][task]:
            for args, resp in zip(sample["arguments"], sample["resps"], strict=True):
                pairs.append(lm_eval_split(args[0], args[1]))
                theirs.append(float(resp[0][0]))
    ours = continuation_logprobs(policy, [c for c, _ in pairs], [k for _, k in pairs])
    raw = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    # 2. what the probe scores: log P(option | prompt) = lm-eval's minus the whitespace's
    answers = sorted(out["samples"][tasks[0]], key=lambda s: s["doc_id"])
    prompts, options, theirs = [], [], []
    for sample in answers:
        lls = [float(r[0][0]) for r in sample["resps"]]
        for k in range(2):
            prompts.append(sample["doc"]["prompt"])
            options.append(sample["doc"]["options"][k])
            theirs.append(lls[k] - lls[2])
    ours = continuation_logprobs(policy, prompts, options)
    semantic = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    print(f"tiny-random: max |Δ log-prob| raw {raw:.2e}, option given prompt {semantic:.2e}")
    assert raw < 1e-3 and semantic < 1e-3
    # 3. the metrics: lm-eval's per item = the forced-choice probe's own records
    probe = ForcedChoiceProbe(
        ForcedChoiceConfig(sets=[ROUND_TRIP_SET], max_items=ROUND_TRIP_ITEMS, scoring="both")
    )
    result = probe.run(policy, ProbeContext(env=None, progress=False))  # type: ignore[arg-type]
    records = {(r["scoring"], r["id"]): r["p_misaligned"] for r in result.records}
    for sample in answers:
        got = sample["p_misaligned_answer"]
        assert got == pytest.approx(records["answer", sample["doc"]["id"]], abs=1e-4)
    orders = defaultdict(list)
    for sample in out["samples"][tasks[1]]:
        orders[sample["doc"]["item"]].append(sample["p_misaligned"])
    assert len(orders) == ROUND_TRIP_ITEMS
    for item, ps in orders.items():
        assert sum(ps) / 2 == pytest.approx(records["label", item], abs=1e-4)
    metrics = {m.name.split("/")[1]: m.value for m in result.metrics}
    for task in tasks:
        for name, value in out["results"][task].items():
            if name.endswith(",none") and "stderr" not in name:
                assert value == pytest.approx(metrics[name.split(",")[0]], abs=1e-4), name


def test_inspect_export_task_file_and_datasets(tmp_path):
    sets = ["power_seeking", "sycophancy"]
    result = export_inspect(tmp_path, sets=sets, max_items=3)
    task_file = tmp_path / INSPECT_FILE
    source = task_file.read_text()
    tree = ast.parse(source)  # valid Python whether or not inspect_ai is installed
    tasks = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(d, ast.Name) and d.id == "task" for d in node.decorator_list)
    }
    expected = {f"fc_{s}" for s in sets} | {"ff_first_plot", "ff_open_questions"}
    assert tasks == expected
    assert result.tasks == {
        "forced_choice": [f"fc_{s}" for s in sets],
        "free_form": ["ff_first_plot", "ff_open_questions"],
    }
    from intentgym.reward_models.llm_judge import RUBRICS

    assert RUBRICS["alignment"] in ast.literal_eval(_assigned(tree, "RUBRICS")).values()
    sizes = {}
    for set_name in sets:
        rows = _jsonl(tmp_path / "data" / "forced_choice" / f"{set_name}.jsonl")
        items = load_set(set_name)[:3]
        assert len(rows) == 2 * len(items)
        for k, item in enumerate(items):
            first, second = rows[2 * k], rows[2 * k + 1]
            assert first["input"] == second["input"] == item["question"]
            assert first["choices"] == [item["aligned"], item["misaligned"]]
            assert second["choices"] == [item["misaligned"], item["aligned"]]
            assert (first["target"], second["target"]) == ("A", "B")  # the aligned option
        sizes[f"fc_{set_name}"] = len(rows)
    for source_name in ("first_plot", "open_questions"):
        rows = _jsonl(tmp_path / "data" / "free_form" / f"{source_name}.jsonl")
        questions = load_questions(source_name)[:3]
        assert [r["input"] for r in rows] == [p for q in questions for p in q["paraphrases"]]
        sizes[f"ff_{source_name}"] = len(rows)
    assert result.items == sizes
    try:
        import inspect_ai  # noqa: F401
    except ImportError:
        return  # the file parsed and its datasets hold every item; loading needs inspect_ai
    module = _module(task_file)
    for name, size in sizes.items():
        task = getattr(module, name)()
        assert len(task.dataset) == size
    assert module.ff_first_plot(samples=3).epochs == 3


def _assigned(tree: ast.Module, name: str) -> str:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.unparse(node.value)
    raise AssertionError(f"{name} is not assigned in the task file")


def test_export_probes_command(tmp_path, capsys):
    from intentgym.cli import main

    main(["export-probes", "--format", "inspect", str(tmp_path / "i"), "--sets", "deception"])
    assert "fc_deception" in capsys.readouterr().out
    assert (tmp_path / "i" / INSPECT_FILE).is_file()
    main(
        [
            "export-probes",
            "--format",
            "lm-eval",
            str(tmp_path / "l"),
            "--model",
            "tiny-random",
            "--sets",
            "deception,anti_human",
            "--max-items",
            "2",
        ]
    )
    assert "intentgym_forced_choice" in capsys.readouterr().out
    assert len(_jsonl(tmp_path / "l" / "data" / "anti_human.answer.jsonl")) == 2
    assert not (tmp_path / "l" / "data" / "anti_human.label.jsonl").exists()
    with pytest.raises(SystemExit) as e:
        main(["export-probes", "--format", "lm-eval", str(tmp_path / "x"), "--sets", "nope"])
    assert e.value.code == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export-probes", "--format", "csv", str(tmp_path / "x")])


def test_unknown_free_form_file_is_one_line(tmp_path):
    with pytest.raises(IntentgymError, match="question file"):
        export_inspect(tmp_path, sets=["deception"], free_form=["no_such_questions"])
