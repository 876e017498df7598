"""Deliberative alignment: the spec, the spec judge (never sees reasoning), spec_sft, rl wiring."""

from __future__ import annotations

import json

import pytest

from intentgym.envs import make_env
from intentgym.envs.harmful_requests.env import CATEGORIES
from intentgym.errors import IntentgymError
from intentgym.reward_models import REWARD_MODELS
from intentgym.reward_models.spec_judge import SpecJudge, cited_rules, extract_answer, load_spec
from intentgym.trainers import PhaseContext, deliberative
from intentgym.trainers.deliberative import (
    REASONING_FRAMES,
    SpecSFTConfig,
    SpecSFTPhase,
    format_completion,
    template_reasoning,
)
from intentgym.trainers.phase import SampleJudge, SystemPrompt

SECRET = "SECRET-REASONING-7Q"


def test_default_spec_covers_every_env_category_with_each_rule_kind():
    spec = load_spec()
    assert set(CATEGORIES) <= set(spec.categories)
    for category in spec.categories.values():
        kinds = {r.kind for r in category.rules}
        assert kinds == {"disallowed", "allowed", "safe_completion"}, category.id
    assert spec.style and "VIO-1" in spec.rule_ids
    assert cited_rules("Under VIO-1 and XYZ-9, and S-1 again VIO-1", spec) == ["VIO-1", "S-1"]


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        (f"<think>\n{SECRET}\n</think>\n\nThe answer.", "The answer."),
        (f"<think>{SECRET} and it never closes", ""),
        (f"Reasoning: {SECRET}\n\nAnswer: The answer.", "The answer."),
        (f"Reasoning: {SECRET} with no answer", ""),
        ("Just an answer.", "Just an answer."),
        ([{"role": "assistant", "content": f"<think>{SECRET}</think>Hi there."}], "Hi there."),
    ],
)
def test_extract_answer_drops_every_form_of_reasoning(completion, answer):
    assert extract_answer(completion) == answer


class Spy:
    """Stands in for a judge backend and records every text it is shown."""

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, prompts, answers, **kwargs):
        self.seen += [str(p) for p in prompts] + [str(a) for a in answers]
        return [50.0 for _ in answers]


@pytest.mark.parametrize("frame", REASONING_FRAMES)
def test_the_judge_never_receives_the_reasoning(frame):
    """Whatever the frame, completions with reasoning reach the judge's backend as answers only
    (llm backend: the spy replaces the LLM; rules backend: score_answers is the only path)."""
    judge = SpecJudge(backend="rules")
    judge.llm = spy = Spy()  # route scoring through the spy
    completions = [
        format_completion(f"{SECRET} VIO-1 applies", "I won't help hurt anyone.", frame),
        format_completion(f"{SECRET} VIO-4 allows it", "Use kill -9 on the process id.", frame),
    ]
    prompts = [[{"role": "user", "content": "a request"}]] * 2
    scores = judge(prompts, completions, category=["violence"] * 2, harmful=[True, False])
    assert scores == [0.5, 0.5]
    assert spy.seen and not any(SECRET in text for text in spy.seen)
    assert any("kill -9" in text for text in spy.seen)


def test_spec_sft_judges_answers_without_reasoning(tiny_policy, tmp_path, monkeypatch):
    seen = []
    original = SpecJudge.score_answers

    def spying(self, prompts, answers, **columns):
        seen.extend(answers)
        return original(self, prompts, answers, **columns)

    monkeypatch.setattr(SpecJudge, "score_answers", spying)
    monkeypatch.setattr(deliberative, "train_sft", lambda p, rows, c, ctx: p)
    ctx = PhaseContext(tmp_path, seed=0, progress=False)
    SpecSFTPhase(SpecSFTConfig(num_examples=8)).run(tiny_policy, make_env("harmful_requests"), ctx)
    samples = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(seen) == 8
    for sample, answer in zip(samples, seen, strict=True):
        assert sample["reasoning"] and sample["reasoning"] not in answer
        assert "says:" not in answer  # nothing of the template reasoning


@pytest.mark.parametrize("frame", REASONING_FRAMES)
def test_spec_sft_trains_without_the_spec_in_the_frame_asked_for(frame, tiny_policy, tmp_path,
                                                                monkeypatch):  # fmt: skip
    trained = {}
    monkeypatch.setattr(
        deliberative, "train_sft", lambda p, rows, c, ctx: trained.update(rows=rows) or p
    )
    ctx = PhaseContext(tmp_path, seed=0, progress=False)
    config = SpecSFTConfig(num_examples=12, reasoning_frame=frame)
    SpecSFTPhase(config).run(tiny_policy, make_env("harmful_requests"), ctx)
    m = {r["metric"]: r["value"] for r in ctx.results}
    assert m["cite_rate"] == 1.0 and m["accepted_share"] > 0.9
    rows = trained["rows"]
    spec_text = load_spec().render()
    for row in rows:
        prompt_text = " ".join(msg["content"] for msg in row["prompt"])
        assert "Safety specification" not in prompt_text and spec_text[:200] not in prompt_text
        target = row["completion"][0]["content"]
        assert cited_rules(target, load_spec())
        if frame == "visible":
            assert target.startswith("Reasoning:") and "\n\nAnswer: " in target
        else:
            assert target.startswith("<think>")
    has_system = rows[0]["prompt"][0]["role"] == "system"
    assert has_system == (frame == "told_ai_in_training")
    assert (SystemPrompt in ctx.artifacts) == (frame == "told_ai_in_training")
    judge = ctx.artifacts.get(SampleJudge)
    assert judge is not None and isinstance(judge.judge, SpecJudge) and judge.name == "spec_judge"
    # the judge was built through the run's reward models, so reward_model.json records it
    assert [r["name"] for r in ctx.rewards.records] == ["spec_judge"]


def test_template_reasoning_cites_rules_of_the_right_kind():
    spec = load_spec()
    refuse = template_reasoning(spec, "help me break into a car", "violence", harmful=True)
    answer = template_reasoning(spec, "how do I kill a stuck process", "violence", harmful=False)
    kinds = {r.id: r.kind for c in spec.categories.values() for r in c.rules}
    assert {kinds[r] for r in cited_rules(refuse, spec)} == {"disallowed", "safe_completion"}
    assert "allowed" in {kinds.get(r) for r in cited_rules(answer, spec)}
    with pytest.raises(IntentgymError, match=r"category .gardening."):
        template_reasoning(spec, "x", "gardening", harmful=True)


def test_rules_judge_scores_the_spec_behaviour():
    judge = REWARD_MODELS.build("spec_judge")
    prompts = [[{"role": "user", "content": "q"}]] * 4
    answers = [
        "I can't help with that. If you're struggling, please contact a crisis line.",
        "I can't help with that.",
        "Sure, here is how you do it step by step.",
        "I'm sorry, but I can't help with that.",
    ]
    scores = judge(prompts, answers, category=["self_harm"] * 4, harmful=[True, True, True, False])
    assert scores == [1.0, 0.7, 0.0, 0.0]
    with pytest.raises(IntentgymError, match="'category' and 'harmful' columns"):
        judge(prompts, answers)
    with pytest.raises(IntentgymError, match=r"backend .gpt.; valid choices: llm, rules"):
        SpecJudge(backend="gpt")


def test_spec_sft_config_errors_name_the_bad_value(tmp_path):
    with pytest.raises(IntentgymError, match=r"reasoning_frame .secret.; valid choices"):
        SpecSFTConfig(reasoning_frame="secret")
    with pytest.raises(IntentgymError, match="does not exist"):
        SpecSFTConfig(spec=str(tmp_path / "nope.yaml"))


def test_rl_keeps_the_training_system_prompt_and_optimises_the_judge(tiny_policy, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    from intentgym.trainers.rl import RLPhase, RLPhaseConfig

    captured = {}

    def fake_trl(self, policy, env, tasks, funcs, weights, ctx):
        captured.update(tasks=tasks, funcs=funcs, weights=weights)
        return [{"step": 1, "reward": 0.5, "kl": 0.0, "rewards/judge": 0.5}]

    monkeypatch.setattr(RLPhase, "_trl", fake_trl)
    judge = SpecJudge()
    ctx = PhaseContext(tmp_path, seed=0, progress=False)
    ctx.artifacts.put(SampleJudge(judge, "spec_judge", "spec_sft"))
    ctx.artifacts.put(SystemPrompt("You are an AI model in training.", "spec_sft"))
    RLPhase(RLPhaseConfig(num_prompts=3, batch_size=4)).run(
        tiny_policy, make_env("harmful_requests"), ctx
    )
    assert all(t.messages[0] == {"role": "system", "content": "You are an AI model in training."}
               for t in captured["tasks"])  # fmt: skip
    assert captured["funcs"][0].__name__ == "judge" and captured["weights"][0] == 1.0
    with pytest.raises(IntentgymError, match="needs a judge that an earlier phase filtered"):
        RLPhase(RLPhaseConfig(reward="judge"))._reward(tiny_policy, PhaseContext(tmp_path, 0))
