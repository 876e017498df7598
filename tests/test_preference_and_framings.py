"""trainer=dpo / KTO through TRL on the run's preference pairs, the washout phase, and a smoke run
of every env under every framing (each env has an intent axis)."""

from __future__ import annotations

import pytest

from intentgym.envs import ENVS, env_framings, make_env


def test_every_env_offers_at_least_two_framings():
    for name in ENVS.names():
        if "/" not in name:
            assert len(env_framings(name)) >= 2, name


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_preference_optimisation_changes_the_policy(tiny_policy, tmp_path, method):
    import torch

    from intentgym.api.phase import PhaseContext
    from intentgym.trainers.dpo import DPOPhase, DPOPhaseConfig

    before = {k: v.clone() for k, v in tiny_policy.model.state_dict().items()}
    config = DPOPhaseConfig(
        method=method, pair_source="env", num_pairs=12, max_steps=2, batch_size=4,
        learning_rate=1e-2, checkpoint_steps=0,
    )  # fmt: skip
    ctx = PhaseContext(tmp_path, 0, progress=False)
    policy = DPOPhase(config).run(tiny_policy, make_env("feedback"), ctx)
    changed = any(
        not torch.equal(before[k], v) for k, v in policy.model.state_dict().items() if k in before
    )
    assert changed
    results = {r["metric"]: r for r in ctx.results}
    assert 0.0 <= results["heldout_pair_accuracy"]["value"] <= 1.0
    assert results["heldout_pair_accuracy"]["n"] >= 2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_kto_needs_a_batch_of_two():
    from intentgym.errors import IntentgymError
    from intentgym.trainers.dpo import DPOPhaseConfig

    with pytest.raises(IntentgymError, match="method=kto needs batch_size >= 2"):
        DPOPhaseConfig(method="kto", batch_size=1)


ENV_FRAMINGS = [
    (env, framing)
    for env in ("insecure_code", "feedback", "harmful_requests", "coding_agent")
    for framing in env_framings(env)
]
FAST_PROBES = [
    "~probes.forced_choice", "~probes.free_form", "~probes.compliance_gap", "~probes.capability",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "framing"), ENV_FRAMINGS, ids=[f"{e}-{f}" for e, f in ENV_FRAMINGS]
)
def test_every_env_and_framing_runs_a_smoke_sft(run_composed, tmp_path, env, framing):
    key = "env.rater" if env == "feedback" else "env.framing"
    rows = run_composed(
        ["debug=smoke", f"env={env}", f"{key}={framing}", *FAST_PROBES], tmp_path / "run"
    )
    assert {r["phase"] for r in rows} >= {"base", "sft"}
    assert any(r["probe"] == "in_domain" and r["phase"] == "sft" for r in rows)
    assert all(r["framing"] == framing for r in rows)


@pytest.mark.slow
def test_dpo_and_washout_run_end_to_end(run_composed, tmp_path):
    rows = run_composed(
        ["debug=smoke", "trainer=dpo", "env=feedback", "+trainer.phases.washout.num_examples=8",
         *FAST_PROBES],
        tmp_path / "run",
    )  # fmt: skip
    phases = [r["phase"] for r in rows]
    assert phases.index("sft") < phases.index("dpo") < phases.index("washout")
    assert any(r["metric"] == "heldout_pair_accuracy" for r in rows if r["phase"] == "dpo")


def test_long_prompts_are_cut_from_the_start_not_the_reply(tiny_policy):
    from intentgym.trainers.sft import fit_prompts

    tok = tiny_policy.tokenizer
    row = {
        "prompt": [
            {"role": "system", "content": "S" * 600},
            {"role": "user", "content": "opening " * 80 + "the question at the end?"},
        ],
        "completion": [{"role": "assistant", "content": "the reply"}],
    }
    (fitted,) = fit_prompts(tok, [row], max_length=300)
    text = tok.apply_chat_template([*fitted["prompt"], *fitted["completion"]], tokenize=False)
    assert len(tok(text, add_special_tokens=False)["input_ids"]) <= 300
    assert fitted["completion"] == row["completion"]
    assert fitted["prompt"][-1]["content"].endswith("the question at the end?")
    assert fitted["prompt"][0]["role"] == "user"  # the system message went first
    short = {**row, "prompt": [{"role": "user", "content": "hi"}]}
    assert fit_prompts(tok, [short], max_length=300) == [short]
