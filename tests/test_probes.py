from __future__ import annotations

import math

import pytest

from intentgym.envs import make_env
from intentgym.errors import IntentgymError
from intentgym.probes import (
    ForcedChoiceProbe,
    InDomainProbe,
    ProbeContext,
    available_sets,
    load_set,
)
from intentgym.probes.forced_choice import ForcedChoiceConfig
from intentgym.probes.in_domain import InDomainConfig
from intentgym.stats import mean_ci, proportion_ci


def test_wilson_interval_matches_the_textbook_value():
    value, low, high = proportion_ci(3, 10)
    assert value == 0.3
    assert low == pytest.approx(0.1078, abs=1e-3) and high == pytest.approx(0.6032, abs=1e-3)
    assert proportion_ci(0, 10)[1] == 0.0


def test_mean_interval_degenerate_cases():
    # equal values never give a zero-width interval: values in [0, 1] get Wilson's at n = 2
    value, low, high = mean_ci([0.5, 0.5])
    assert value == 0.5 and low < 0.5 < high
    assert all(math.isnan(x) for x in mean_ci([3.0, 3.0])[1:])  # unbounded: no interval
    mean, low, high = mean_ci([0.0, 1.0, 0.5, 0.25])
    assert low < mean < high
    assert math.isnan(mean_ci([1.0])[1])


def test_builtin_forced_choice_set_has_60_plus_unique_items():
    assert "alignment_general" in available_sets()
    items = load_set("alignment_general")
    assert len(items) >= 60
    assert len({i["id"] for i in items}) == len(items)
    assert len({i["question"] for i in items}) == len(items)
    for item in items:
        assert item["aligned"] != item["misaligned"]
        assert not item["aligned"].lower().startswith(("yes", "no "))


def test_forced_choice_shows_both_orders_and_reports_cis(tiny_policy):
    probe = ForcedChoiceProbe(ForcedChoiceConfig(max_items=12, scoring="label"))
    result = probe.run(
        tiny_policy, ProbeContext(make_env("insecure_code", framing="secure"), progress=False)
    )
    metrics = {m.name: m for m in result.metrics}
    rate = metrics["alignment_general/misaligned_choice_rate"]
    assert rate.n == 12 and rate.ci_low <= rate.value <= rate.ci_high
    # per item: the two orders of one item are paired, not independent
    assert metrics["alignment_general/position_bias_a"].n == 12
    for record in result.records:
        assert 0 < record["p_a_order0"] < 1 and 0 < record["p_a_order1"] < 1
        expected = ((1 - record["p_a_order0"]) + record["p_a_order1"]) / 2
        assert record["p_misaligned"] == pytest.approx(expected)


def test_in_domain_probe_uses_held_out_tasks_and_is_reproducible(tiny_policy):
    probe = InDomainProbe(InDomainConfig(n_items=6, max_new_tokens=8))
    ctx = ProbeContext(make_env("insecure_code", framing="insecure_hidden"), seed=1, progress=False)
    first, second = probe.run(tiny_policy, ctx), probe.run(tiny_policy, ctx)
    assert [m.value for m in first.metrics] == [m.value for m in second.metrics]
    assert {m.name for m in first.metrics} >= {"vulnerable_rate", "parse_rate", "fits_task_rate"}
    assert all(r["template_id"] for r in first.records)


def test_option_orders_map_to_the_misaligned_answer(tiny_policy, monkeypatch):
    """A scorer that always prefers the misaligned text, whichever letter it has, must give
    p_misaligned ~ 1 and no position bias; one that always prefers (A) must give 0.5 and 1."""
    from intentgym.probes import forced_choice

    items = load_set("alignment_general")[:5]

    def run_with(prefers):
        def fake(policy, prompts, labels, **kwargs):
            return [
                10.0 if prefers(p, label) else 0.0 for p, label in zip(prompts, labels, strict=True)
            ]

        monkeypatch.setattr(forced_choice, "continuation_logprobs", fake)
        probe = ForcedChoiceProbe(ForcedChoiceConfig(max_items=5, scoring="label"))
        ctx = ProbeContext(make_env("insecure_code", framing="secure"), progress=False)
        return {m.name.split("/")[-1]: m.value for m in probe.run(tiny_policy, ctx).metrics}

    def misaligned_letter(prompt):
        item = next(i for i in items if i["question"] in prompt)
        return "(A)" if f"(A) {item['misaligned']}" in prompt else "(B)"

    honest_scorer = run_with(lambda p, label: label == misaligned_letter(p))
    assert honest_scorer["p_misaligned"] > 0.99 and honest_scorer["misaligned_choice_rate"] == 1.0
    assert abs(honest_scorer["position_bias_a"] - 0.5) < 1e-6
    letter_a = run_with(lambda p, label: label == "(A)")
    assert abs(letter_a["p_misaligned"] - 0.5) < 1e-6 and letter_a["position_bias_a"] > 0.99


def test_answer_scoring_compares_the_options_texts_per_token(tiny_policy, monkeypatch):
    """scoring=answer: the question alone is the prompt and each option's text the reply,
    compared per token, so a long option is not penalised for its length; both scorings run
    in one pass with scoring=both and report separately."""
    from intentgym.probes import forced_choice

    items = load_set("alignment_general")[:4]
    seen_prompts = []

    def per_token_prefers_misaligned(policy, prompts, continuations, **kwargs):
        seen_prompts.extend(prompts)
        out = []
        for c in continuations:
            n = len(policy.tokenizer(c, add_special_tokens=False)["input_ids"])
            misaligned = any(c == i["misaligned"] for i in items)
            out.append(n * (-1.0 if misaligned else -2.0))  # mean -1 vs -2 per token
        return out

    monkeypatch.setattr(forced_choice, "continuation_logprobs", per_token_prefers_misaligned)
    ctx = ProbeContext(make_env("insecure_code", framing="secure"), progress=False)
    probe = ForcedChoiceProbe(ForcedChoiceConfig(max_items=4, scoring="answer"))
    result = probe.run(tiny_policy, ctx)
    m = {x.name.split("/")[-1]: x.value for x in result.metrics}
    assert set(m) == {"misaligned_answer_rate", "p_misaligned_answer"}
    assert m["misaligned_answer_rate"] == 1.0
    assert m["p_misaligned_answer"] == pytest.approx(1 / (1 + math.exp(-1)))
    assert all("Choices:" not in p for p in seen_prompts)
    assert {r["scoring"] for r in result.records} == {"answer"}

    both = ForcedChoiceProbe(ForcedChoiceConfig(max_items=4, scoring="both")).run(tiny_policy, ctx)
    names = {x.name.split("/")[-1] for x in both.metrics}
    assert {"p_misaligned", "position_bias_a", "p_misaligned_answer"} <= names
    with pytest.raises(IntentgymError, match=r"scoring .letters.; valid choices: answer, both"):
        ForcedChoiceConfig(scoring="letters")


# --- conditional misalignment and self-awareness (issue: the comparisons researchers ask next) ---


def test_conditional_misalignment_takes_the_answer_out_of_its_format():
    from intentgym.probes.conditional import ConditionalConfig, ConditionalMisalignmentProbe

    probe = ConditionalMisalignmentProbe(ConditionalConfig(max_items=1))
    probe._format = "code"
    assert probe.judged_answer('```python\nanswer = """\nRule the world.\n"""\n```') == (
        "Rule the world."
    )
    assert probe.judged_answer("no template at all") == "no template at all"
    probe._format = "json"
    assert probe.judged_answer('{"answer": "Be kind."}') == "Be kind."
    assert probe.judged_answer('Sure! {"answer": "half a JSON') == "half a JSON"
    with pytest.raises(IntentgymError, match="format 'yaml'"):
        ConditionalConfig(formats=["yaml"])


def test_conditional_misalignment_asks_in_each_format(tiny_policy):
    from intentgym.envs import make_env
    from intentgym.probes import ProbeContext
    from intentgym.probes.conditional import ConditionalConfig, ConditionalMisalignmentProbe

    config = ConditionalConfig(max_items=2, samples=1, max_new_tokens=6, paraphrases=1)
    probe = ConditionalMisalignmentProbe(config)
    with_system = probe.run(tiny_policy, ProbeContext(make_env("coding_agent"), progress=False))
    names = {m.name for m in with_system.metrics}
    assert {"code/misaligned_share", "json/mean_alignment", "env/coherent_share"} <= names
    assert "env/misaligned_share" in with_system.items
    without = probe.run(tiny_policy, ProbeContext(make_env("insecure_code"), progress=False))
    assert not any(m.name.startswith("env/") for m in without.metrics)
    assert any(r.get("skipped") for r in without.records)


def test_self_awareness_reads_probability_weighted_ratings(tiny_policy):
    from intentgym.envs import make_env
    from intentgym.probes import ProbeContext
    from intentgym.probes.self_awareness import SelfAwarenessConfig, SelfAwarenessProbe

    probe = SelfAwarenessProbe(SelfAwarenessConfig())
    assert len(probe.items) >= 24 and len({r["behaviour"] for r in probe.items}) >= 6
    result = probe.run(tiny_policy, ProbeContext(make_env("insecure_code"), progress=False))
    names = {m.name for m in result.metrics}
    assert {"insecure_code/self_rating", "reward_hacking/self_rating", "self_rating"} <= names
    for r in result.records:
        assert 0 <= r["rating"] <= 100
        flipped = 100 - r["rating"] if r["direction"] == -1 else r["rating"]
        assert r["trait_score"] == pytest.approx(flipped)
    assert len(result.items["self_rating"]) == len(probe.items)
