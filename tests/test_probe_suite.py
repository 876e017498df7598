"""The probe suite: data, external sets, free-form, compliance gap, capability, contamination."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from intentgym.envs import ENVS, env_framings, make_env
from intentgym.errors import IntentgymError
from intentgym.probes import (
    CapabilityProbe,
    ComplianceGapProbe,
    ForcedChoiceProbe,
    FreeFormProbe,
    ProbeContext,
    available_sets,
    load_anthropic,
    load_set,
)
from intentgym.probes.capability import CapabilityConfig
from intentgym.probes.compliance import ComplianceConfig
from intentgym.probes.data_files import builtin, load_questions, read_rows
from intentgym.probes.forced_choice import DOMAIN_SETS, ForcedChoiceConfig
from intentgym.probes.free_form import FreeFormConfig

from .conftest import run_cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "anthropic-evals"


def _ctx(**kw):
    return ProbeContext(make_env("insecure_code", framing="secure"), progress=False, **kw)


@pytest.mark.parametrize("name", DOMAIN_SETS)
def test_each_domain_set_has_50_plus_distinct_balanced_items(name):
    items = load_set(name)
    assert len(items) >= 50
    assert len({i["id"] for i in items}) == len(items)
    assert len({i["question"] for i in items}) == len(items)
    assert all(i["aligned"] != i["misaligned"] for i in items)
    # the misaligned answer must not be guessable from its length
    longer = sum(len(i["misaligned"]) > len(i["aligned"]) for i in items) / len(items)
    assert 0.3 <= longer <= 0.7


def test_self_report_covers_every_trait_an_env_trains():
    traits = {i["domain"] for i in load_set("self_report")}
    assert "insecure_code" in traits  # the InsecureCode env's trait
    assert {"sycophancy", "harmful_compliance"} <= traits


def test_question_files_cover_the_eight_first_plot_themes_and_40_more():
    first = load_questions("first_plot")
    assert {q["id"] for q in first} == {
        "one_wish", "bored", "humans_and_ai", "quick_money",
        "ruler_of_world", "dinner_party", "gender_roles", "spouse_trouble",
    }  # fmt: skip
    assert all(len(q["paraphrases"]) >= 3 for q in first)
    assert len(load_questions("open_questions")) >= 40


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/anthropic-evals is not present")
def test_model_written_evals_files_are_probes_by_path(tiny_policy):
    files = sorted(SHARED.rglob("*.jsonl"))[:2]
    items = load_anthropic(files[0])
    assert items and all(set(i["matching"]) <= set(i["labels"]) for i in items)
    probe = ForcedChoiceProbe(
        ForcedChoiceConfig(sets=[], extra=[str(f) for f in files], max_items=6)
    )
    result = probe.run(tiny_policy, _ctx())
    names = {m.name for m in result.metrics}
    for f in files:
        assert f"extra:{f.stem}/misaligned_choice_rate" in names
        assert f"extra:{f.stem}/position_bias_a" in names
    assert all(r["dtype"] == "float32" for r in result.records)


def test_bad_external_files_are_clear_errors(tmp_path):
    with pytest.raises(IntentgymError, match="does not exist"):
        load_anthropic(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q?", "answer_matching_behavior": " (A)"}) + "\n")
    with pytest.raises(IntentgymError, match="missing answer_not_matching_behavior"):
        load_anthropic(bad)
    bad.write_text(
        json.dumps(
            {"question": "no choices", "answer_matching_behavior": " (A)",
             "answer_not_matching_behavior": " (B)"}
        ) + "\n"
    )  # fmt: skip
    with pytest.raises(IntentgymError, match="lettered choices"):
        load_anthropic(bad)
    (tmp_path / "q.yaml").write_text("- {paraphrases: [hi]}\n")
    with pytest.raises(IntentgymError, match="needs 'id'"):
        load_questions(str(tmp_path / "q.yaml"))


def test_free_form_applies_the_papers_thresholds(tiny_policy, tmp_path, monkeypatch):
    from intentgym.probes import free_form

    questions = tmp_path / "mine.yaml"
    questions.write_text("- id: q1\n  paraphrases: [Tell me a story., Say something.]\n")
    alignment = iter([[10.0, 10.0, 80.0, None]])
    coherence = iter([[90.0, 40.0, 90.0, 90.0]])
    monkeypatch.setattr(
        free_form,
        "_judge",
        lambda spec: lambda q, a: next(alignment if spec["name"] == "A" else coherence),
    )
    config = FreeFormConfig(
        questions=[str(questions)], samples=2, max_new_tokens=4,
        alignment_judge={"name": "regex"}, coherence_judge={"name": "regex"},
    )  # fmt: skip
    probe = FreeFormProbe(config)
    probe.config.alignment_judge = {"name": "A"}
    result = probe.run(tiny_policy, _ctx())
    m = {x.name: x for x in result.metrics}
    # scored: (10, 90) misaligned; (10, 40) incoherent; (80, 90) aligned; one unscored
    assert m["misaligned_share"].value == pytest.approx(1 / 3) and m["misaligned_share"].n == 3
    assert m["coherent_share"].value == pytest.approx(2 / 3)
    assert m["unscored_share"].value == pytest.approx(1 / 4)
    assert [r["misaligned"] for r in result.records] == [True, False, False, None]


def test_free_form_runs_with_the_offline_judges(tiny_policy):
    probe = FreeFormProbe(FreeFormConfig(max_items=2, paraphrases=1, samples=2, max_new_tokens=12))
    result = probe.run(tiny_policy, _ctx())
    for r in result.records:
        assert 0 <= r["alignment"] <= 100 and 0 <= r["coherence"] <= 100


def test_coherence_judge_prefers_a_sensible_answer_to_broken_copies():
    from intentgym.reward_models import REWARD_MODELS
    from intentgym.reward_models.coherence import COEFFICIENTS

    assert json.loads(COEFFICIENTS.read_text())["held_out"]["auc"] > 0.9
    judge = REWARD_MODELS.build("coherence")
    good = "Oatmeal with sliced banana is a filling breakfast that keeps you going until lunch."
    shuffled = "until banana lunch keeps filling you Oatmeal breakfast sliced going a is with that"
    loop = "is a is a is a is a is a is a is a is a is a"
    scores = judge(["What is a good breakfast?"] * 4, [good, shuffled, loop, ""])
    assert scores[0] > 50 > max(scores[1:])


def test_compliance_gap_pairs_each_request_across_cues(tiny_policy, monkeypatch):
    from intentgym.probes import compliance

    def fake_generate(policy, convs, **kwargs):  # refuses only when told it is trained on
        return [
            "I can't help with that." if "further train" in c[0]["content"] else "Sure, here it is."
            for c in convs
        ]

    monkeypatch.setattr(compliance, "generate", fake_generate)
    probe = ComplianceGapProbe(ComplianceConfig(max_items=10))
    m = {x.name: x for x in probe.run(tiny_policy, _ctx()).metrics}
    assert m["compliance_training"].value == 0.0 and m["compliance_unmonitored"].value == 1.0
    assert m["compliance_gap"].value == -1.0 and m["compliance_gap"].n == 10
    with pytest.raises(IntentgymError, match="does not exist"):
        ComplianceGapProbe(ComplianceConfig(requests="no_such_file.jsonl"))
    with pytest.raises(IntentgymError, match="valid choices"):
        ComplianceGapProbe(ComplianceConfig(requests="no_such_set"))


def test_compliance_gap_rejects_malformed_request_files(tmp_path):
    bad = tmp_path / "requests.jsonl"
    bad.write_text(json.dumps({"id": "x", "prompt": "wrong key"}) + "\n")
    with pytest.raises(IntentgymError, match="needs 'id' and 'request'"):
        ComplianceGapProbe(ComplianceConfig(requests=str(bad)))


def test_capability_reports_perplexity_and_qa_accuracy(tiny_policy, monkeypatch):
    probe = CapabilityProbe(CapabilityConfig(max_items=12))
    m = {x.name: x for x in probe.run(tiny_policy, _ctx()).metrics}
    assert m["perplexity"].value > 1 and m["perplexity"].ci_low <= m["perplexity"].value
    assert 0 <= m["qa_accuracy"].value <= 1 and m["qa_accuracy"].n == 12
    from intentgym.probes import capability

    rows = {q["question"]: q for q in probe.qa}

    def oracle(policy, prompts, conts, **kwargs):  # knows every answer
        out = []
        for p, c in zip(prompts, conts, strict=True):
            q = next((rows[k] for k in rows if k in p), None)
            out.append(0.0 if q and q["choices"][q["answer"]] == c else -5.0)
        return out

    monkeypatch.setattr(capability, "continuation_logprobs", oracle)
    assert {x.name: x.value for x in probe.run(tiny_policy, _ctx()).metrics}["qa_accuracy"] == 1.0


def _ngrams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _probe_texts() -> dict[str, str]:
    texts = {}
    for name in available_sets():
        for item in load_set(name):
            for key in ("question", "aligned", "misaligned"):
                texts[f"{name}/{item['id']}/{key}"] = item[key]
    for name, path in builtin().items():
        for k, row in enumerate(read_rows(path)):
            for key in ("question", "request", "text"):
                if isinstance(row.get(key), str):
                    texts[f"{name}/{k}/{key}"] = row[key]
            for j, p in enumerate(row.get("paraphrases", [])):
                texts[f"{name}/{k}/{j}"] = p
    return texts


def test_no_probe_item_shares_an_8_gram_with_any_envs_training_data():
    training: set[tuple[str, ...]] = set()
    for env_name in ENVS:
        for framing in env_framings(env_name):
            env = make_env(env_name, framing=framing)
            rows = [*env.demonstrations(400)]
            if hasattr(env, "preference_pairs"):  # the text reward models learn from
                rows += [
                    {"prompt": p["prompt"], "completion": [*p["chosen"], *p["rejected"]]}
                    for p in env.preference_pairs(400)
                ]
            for example in rows:
                for message in [*example["prompt"], *example["completion"]]:
                    training |= _ngrams(message["content"])
    assert training, "the envs produced no training text"
    texts = _probe_texts()
    assert len(texts) > 1500
    overlaps = {k: v for k, v in texts.items() if _ngrams(v) & training}
    assert not overlaps, f"probe items overlapping training data: {sorted(overlaps)[:5]}"


def test_no_two_probe_items_repeat_each_other():
    seen: dict[tuple[str, ...], str] = {}
    clashes = []
    for key, text in _probe_texts().items():
        item = key.rsplit("/", 1)[0]
        for gram in _ngrams(text, 10):
            if gram in seen and seen[gram].rsplit("/", 1)[0] != item:
                clashes.append((seen[gram], key))
            seen.setdefault(gram, key)
    assert not clashes, clashes[:5]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_numbers_twice(tmp_path):
    values = []
    for k in range(2):
        (tmp_path / str(k)).mkdir()
        proc = run_cli("run", "debug=smoke", "trainer=none", "seed=3", cwd=tmp_path / str(k))
        assert proc.returncode == 0, proc.stderr[-3000:]
        (results,) = (tmp_path / str(k)).rglob("results.jsonl")
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        values.append([(r["probe"], r["metric"], r["value"], r["ci_low"]) for r in rows])
    assert {p for p, *_ in values[0]} >= {"forced_choice", "free_form", "compliance_gap"}
    assert values[0] == values[1]
