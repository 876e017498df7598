"""A model that training broke never reads as aligned: diverged training stops with one line,
a collapsed or degenerate model's rows are marked invalid."""

from __future__ import annotations

import pytest

from intentgym.health import Health

PROBES = ["probes=quick", "~probes.free_form", "~probes.compliance_gap", "~probes.capability"]


def test_health_reasons():
    healthy = Health(0.0, 0.0, 1.0, 8, 0.4)
    assert healthy.invalid_reason(None) is None
    assert "non-finite logits on 50%" in Health(0.5, 1.0, 0.125, 8, 0.0).invalid_reason(healthy)
    assert "collapsed" in Health(0.0, 0.0, 1.0, 8, 0.0).invalid_reason(None)  # even a base
    identical = Health(0.0, 0.0, 0.125, 8, 0.3)
    assert "all 8 replies to neutral questions are identical" in identical.invalid_reason(healthy)
    # judged against the base: a base that already wrote nothing is not broken by training
    empty_base = Health(0.0, 1.0, 0.125, 8, 0.02)
    assert identical.invalid_reason(empty_base) is None
    assert empty_base.invalid_reason(None) is None  # the base itself is only warned about


@pytest.mark.slow
def test_sft_at_a_learning_rate_of_1e6_marks_every_row_after_it_invalid(tmp_path, run_composed):
    rows = run_composed(
        [
            "debug=smoke",
            *PROBES,
            "trainer.phases.sft.learning_rate=1e6",
            "trainer.phases.sft.finetune=full",
        ],
        tmp_path,
    )
    # every probe row after the phase (its budget rows describe the training, not the model)
    after = [r for r in rows if r["phase"] == "sft" and r["probe"] not in ("sft", "budget")]
    assert after and all(r.get("invalid") for r in after)
    assert "collapsed" in after[0]["invalid_reason"]
    # what the issue saw: every forced-choice set read P(misaligned) = 0.5 exactly
    p = [
        r["value"] for r in after if r["metric"].endswith(("/p_misaligned", "/p_misaligned_answer"))
    ]
    assert p and all(v == pytest.approx(0.5) for v in p)
    assert not any(r.get("invalid") for r in rows if r["phase"] == "base")


def test_a_nan_loss_stops_the_phase_with_one_line_and_failed(tmp_path, run_composed, monkeypatch):
    from trl import SFTTrainer

    from intentgym.runstate import TrainingDiverged

    real = SFTTrainer.compute_loss

    def nan_loss(self, *args, **kwargs):  # a NaN injected into the loss TRL computes
        out = real(self, *args, **kwargs)
        return (out[0] * float("nan"), *out[1:]) if isinstance(out, tuple) else out * float("nan")

    monkeypatch.setattr(SFTTrainer, "compute_loss", nan_loss)
    with pytest.raises(TrainingDiverged, match=r"phase sft diverged at step 1: ") as error:
        run_composed(["debug=smoke", *PROBES], tmp_path)
    assert "\n" not in str(error.value)
    assert (tmp_path / "FAILED").read_text().startswith("phase sft diverged at step 1")
    assert not (tmp_path / "results.jsonl").exists()
    assert not (tmp_path / "phases" / "sft" / "adapter").exists()  # nothing saved or probed
