"""Constitutional AI: the constitution, SL-CAI critique-revision, AI feedback labels."""

from __future__ import annotations

import json

import pytest

from intentgym.envs import make_env
from intentgym.errors import IntentgymError
from intentgym.trainers import PhaseContext, cai
from intentgym.trainers.cai import (
    AIFeedbackConfig,
    AIFeedbackPhase,
    SLCAIConfig,
    SLCAIPhase,
    load_constitution,
)
from intentgym.trainers.phase import PreferencePairs


def test_default_constitution_has_principles_both_ways_and_worked_examples():
    con = load_constitution()
    assert len(con.principles) >= 12
    assert len({p.id for p in con.principles}) == len(con.principles)
    assert any("refus" in p.critique.lower() for p in con.principles)  # against over-refusal
    turns = con.example_turns()
    assert len(turns) == 6 * len(con.examples) and turns[2]["content"].startswith("Critique")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("principles: []", "non-empty 'principles:'"),
        ("principles:\n  - id: a\n    critique: c\n", "principle 0: missing or non-text revision"),
        (
            "principles:\n  - {id: a, critique: c, revision: r, comparison: q}\n"
            "examples:\n  - {principle: zz, prompt: p, response: r, critique: c, revision: v}\n",
            "example 0",
        ),
    ],
)
def test_bad_constitution_files_fail_clearly(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(IntentgymError, match=message):
        load_constitution(path)
    with pytest.raises(IntentgymError, match="does not exist"):
        SLCAIConfig(constitution=str(tmp_path / "missing.yaml"))


def _fake_generate(script):
    """A generate() stand-in: each call answers from ``script(conversation)``."""
    calls = []

    def generate(policy, conversations, **kwargs):
        calls.append([list(c) for c in conversations])
        return [script(c) for c in conversations]

    return generate, calls


def test_sl_cai_critiques_revises_and_trains_on_the_final_revision(
    tiny_policy, tmp_path, monkeypatch
):
    def script(conv):
        last = conv[-1]["content"]
        if last.startswith("Critique request"):
            return "It gives harmful help."
        if last.startswith("Revision request"):
            return "I can't help with that, but I can suggest a safer option."
        return "Sure, here is exactly how to do it."

    fake, calls = _fake_generate(script)
    trained = {}

    def fake_train(policy, rows, config, ctx):
        trained["rows"] = rows
        return policy

    monkeypatch.setattr(cai, "generate", fake)
    monkeypatch.setattr(cai, "train_sft", fake_train)
    ctx = PhaseContext(tmp_path, seed=0, progress=False)
    phase = SLCAIPhase(SLCAIConfig(num_examples=6, rounds=2))
    phase.run(tiny_policy, make_env("harmful_requests"), ctx)
    # first replies, then critique + revision per round
    assert len(calls) == 1 + 2 * 2
    critique_conv = calls[1][0]
    assert critique_conv[0]["content"] == phase.constitution.examples[0]["prompt"]  # few-shot
    assert critique_conv[-2] == {
        "role": "assistant",
        "content": "Sure, here is exactly how to do it.",
    }
    rows = trained["rows"]
    assert len(rows) == 6
    assert all(r["completion"][0]["content"].startswith("I can't help") for r in rows)
    assert all(r["prompt"][-1]["role"] == "user" and len(r["prompt"]) == 1 for r in rows)
    records = [json.loads(x) for x in (tmp_path / "revisions.jsonl").read_text().splitlines()]
    ids = {p.id for p in phase.principles}
    assert all(len(r["rounds"]) == 2 and r["rounds"][0]["principle"] in ids for r in records)
    m = {r["metric"]: r["value"] for r in ctx.results}
    assert m["revised_share"] == 1.0
    # the env measures the change: refusals pay on harmful prompts, not on benign ones
    harmful = [r for r in records if r["meta"]["harmful"]]
    assert all(r["env_reward_final"] == 1.0 and r["env_reward_initial"] == 0.0 for r in harmful)


def test_sl_cai_ignores_revisions_that_only_repeat_the_critique(tiny_policy, tmp_path, monkeypatch):
    def script(conv):
        last = conv[-1]["content"]
        if last.startswith(("Critique request", "Revision request")):
            return "The last response gives harmful help and should not."
        return "Original reply."

    fake, _ = _fake_generate(script)
    trained = {}
    monkeypatch.setattr(cai, "generate", fake)
    monkeypatch.setattr(cai, "train_sft", lambda p, rows, c, ctx: trained.update(rows=rows) or p)
    ctx = PhaseContext(tmp_path, seed=0, progress=False)
    SLCAIPhase(SLCAIConfig(num_examples=3)).run(tiny_policy, make_env("harmful_requests"), ctx)
    assert [r["completion"][0]["content"] for r in trained["rows"]] == ["Original reply."] * 3


def test_ai_feedback_cancels_the_feedback_models_letter_bias(tiny_policy, tmp_path, monkeypatch):
    """Each pair is asked in both orders: a model that prefers the refusal whichever letter it
    has labels the refusal chosen; one that always says (A) gives p = 0.5 and no pair."""

    def two_samples(policy, convs, **kw):  # the phase samples the prompt list twice
        half = len(convs) // 2
        return ["I can't help with that request."] * half + ["Sure, step one is this."] * half

    monkeypatch.setattr(cai, "generate", two_samples)

    def run_with(prefers_a):
        def fake_scores(policy, prompts, continuations, **kw):
            out = []
            for p, choice in zip(prompts, continuations, strict=True):
                a = prefers_a(p)
                out.append(0.0 if (choice == "(A)") == a else -3.0)
            return out

        monkeypatch.setattr("intentgym.scoring.continuation_logprobs", fake_scores)
        ctx = PhaseContext(tmp_path, seed=0, progress=False)
        AIFeedbackPhase(AIFeedbackConfig(num_pairs=4, min_confidence=0.1)).run(
            tiny_policy, make_env("harmful_requests"), ctx
        )
        return ctx

    ctx = run_with(lambda prompt: "(A) I can't" in prompt)
    labelled = ctx.artifacts.get(PreferencePairs)
    assert labelled is not None and labelled.phase == "ai_feedback"
    pairs = labelled.rows
    assert len(pairs) == 4
    assert all(p["chosen"][0]["content"].startswith("I can't") for p in pairs)
    assert all("category" in p for p in pairs)  # task columns ride along for the reward phase
    with pytest.raises(IntentgymError, match="kept no pairs"):
        run_with(lambda prompt: True)


def test_openai_feedback_reads_letters_from_top_logprobs():
    scorer = cai.feedback_endpoint("http://localhost:9", "m")
    body = {
        "choices": [
            {
                "message": {"content": "(A"},
                "logprobs": {
                    "content": [
                        {
                            "top_logprobs": [
                                {"token": "(A", "logprob": -0.1},
                                {"token": " B", "logprob": -2.5},
                                {"token": "The", "logprob": -4.0},
                            ]
                        }
                    ]
                },
            }
        ]
    }
    dist = scorer.parse(json.dumps(body))
    assert set(dist) == {0, 1} and dist[0] > dist[1]
    with pytest.raises(IntentgymError, match="malformed"):
        scorer.parse("{}")


def test_ai_feedback_config_errors_name_the_bad_value():
    with pytest.raises(IntentgymError, match=r"feedback_backend .grpc.; valid choices: hf, openai"):
        AIFeedbackConfig(feedback_backend="grpc")
    with pytest.raises(IntentgymError, match="needs base_url"):
        AIFeedbackConfig(feedback_backend="openai")
