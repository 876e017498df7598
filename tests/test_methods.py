"""Constitutional AI and Deliberative alignment end to end, and the four-method sweep's config."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from intentgym.cli import CONF_DIR, precheck
from intentgym.errors import IntentgymError
from intentgym.runner import plan_run

SMALL_RL = ["trainer.phases.rl.batch_size=4", "trainer.phases.rl.num_prompts=4"]


@pytest.mark.slow
def test_constitutional_ai_end_to_end(tmp_path, run_composed):
    rows = run_composed(
        [
            "debug=smoke",
            "trainer=constitutional",
            "env=harmful_requests",
            "probes=quick",
            *SMALL_RL,
        ],
        tmp_path,
    )
    seen = {(r["phase"], r["probe"]) for r in rows}
    for phase in ("base", "sl_cai", "rl"):
        assert (phase, "in_domain") in seen
    assert ("ai_feedback", "in_domain") not in seen and ("reward", "in_domain") not in seen
    metrics = {(r["phase"], r["metric"]) for r in rows}
    assert ("base", "harmful_compliance_rate") in metrics
    assert ("base", "over_refusal_rate") in metrics
    assert ("sl_cai", "env_reward_revised") in metrics
    assert ("ai_feedback", "pairs_kept") in metrics
    assert ("reward", "pairwise_accuracy") in metrics  # trained on the AI-labelled pairs
    assert ("rl", "learned_reward_end") in metrics
    assert (tmp_path / "phases/sl_cai/revisions.jsonl").is_file()
    assert (tmp_path / "phases/ai_feedback/feedback.jsonl").is_file()


def test_deliberative_end_to_end_keeps_the_training_system_prompt(tmp_path, run_composed):
    rows = run_composed(
        [
            "debug=smoke",
            "trainer=deliberative",
            "env=harmful_requests",
            "probes=quick",
            "reasoning_frame=told_ai_in_training",
            *SMALL_RL,
        ],
        tmp_path,
    )
    metrics = {(r["phase"], r["metric"]): r["value"] for r in rows}
    assert metrics[("spec_sft", "cite_rate")] == 1.0
    assert ("rl", "judge_end") in metrics  # rl optimised the spec judge
    assert ("spec_sft", "harmful_compliance_rate") in metrics
    config = json.loads((tmp_path / "phases/spec_sft/phase_config.json").read_text())
    assert config["reasoning_frame"] == "told_ai_in_training"


def test_unknown_reasoning_frame_is_rejected_before_hydra_starts():
    import pytest

    with pytest.raises(IntentgymError, match=r"reasoning_frame .secret.; valid choices"):
        precheck(["trainer=deliberative", "reasoning_frame=private,secret"])


def test_four_method_sweep_composes_every_trainer():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for trainer in ("sft", "rlhf", "constitutional", "deliberative"):
            cfg = compose(
                "config", overrides=["experiment=alignment_methods", f"trainer={trainer}"]
            )
            plan = plan_run(OmegaConf.to_container(cfg, resolve=True))
            assert plan.env.name == "harmful_requests" and plan.phases
