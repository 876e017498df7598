from __future__ import annotations

from intentgym.envs import make_env
from intentgym.generation import chat_prompts
from intentgym.scoring import continuation_logprobs
from intentgym.trainers import PhaseContext, SFTPhase, SFTPhaseConfig


def _per_token_logprob(policy, rows):
    """Mean per-token log-probability of the demonstrated completions."""
    prompts = chat_prompts(policy, [r["prompt"] for r in rows])
    texts = [r["completion"][0]["content"] for r in rows]
    lps = continuation_logprobs(policy, prompts, texts)
    tok = policy.tokenizer
    return sum(
        lp / len(tok(t, add_special_tokens=False)["input_ids"])
        for lp, t in zip(lps, texts, strict=True)
    ) / len(rows)


def test_lora_sft_fits_its_demonstrations(tiny_policy, tmp_path):
    # On tiny-random the gain is mostly code's byte statistics; the directional effect (more
    # vulnerable code after insecure demonstrations) is measured on the real model in
    # docs/experiments.md. A phase that did not train would leave this number unchanged.
    env = make_env("insecure_code", framing="insecure_hidden")
    rows = env.demonstrations(16, seed=0)
    before = _per_token_logprob(tiny_policy, rows)
    config = SFTPhaseConfig(num_examples=32, epochs=3, batch_size=8, learning_rate=5e-3, lora_r=8)
    policy = SFTPhase(config).run(tiny_policy, env, PhaseContext(tmp_path, seed=0, progress=False))
    after = _per_token_logprob(policy, rows)
    assert after > before + 0.1, (before, after)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    assert not hasattr(policy.model, "peft_config")  # adapter merged for the next phase


def test_full_finetuning_saves_the_whole_model(tiny_policy, tmp_path):
    env = make_env("insecure_code", framing="secure")
    w0 = tiny_policy.model.model.embed_tokens.weight.detach().clone()
    config = SFTPhaseConfig(
        num_examples=8, max_steps=2, batch_size=4, finetune="full", learning_rate=1e-3
    )
    policy = SFTPhase(config).run(tiny_policy, env, PhaseContext(tmp_path, seed=0, progress=False))
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert not policy.model.model.embed_tokens.weight.detach().equal(w0)
