"""Past one process and past 135M: hub model entries, per-model batch caps, Hydra launchers
(a 2-job joblib sweep), and data-parallel runs under ``accelerate launch`` (2 CPU processes, gloo)
that give the same results as one process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from intentgym import distributed
from intentgym.cli import CONF_DIR, check_launcher
from intentgym.errors import IntentgymError
from intentgym.runner import plan_run
from tests.conftest import run_cli

HUB_MODELS = {
    "qwen2.5-0.5b-instruct": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen2.5-1.5b-instruct": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct",
    "llama-3.2-1b-instruct": "meta-llama/Llama-3.2-1B-Instruct",
}


def _compose(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra)


@pytest.mark.parametrize("option,hub_id", HUB_MODELS.items())
def test_hub_model_entries(option, hub_id):
    data = yaml.safe_load((CONF_DIR / "model" / f"{option}.yaml").read_text())
    assert data["name"] == hub_id
    assert data["weights_dtype"] in ("float32", "bfloat16")
    assert data["max_batch_size"] >= 0


def test_hub_model_offline_and_not_cached_is_one_line(monkeypatch, capsys):
    from intentgym.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-intentgym-cache")
    with pytest.raises(SystemExit) as e:
        main(["run", "model=qwen2.5-0.5b-instruct", "hydra.run.dir=/nonexistent/never"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "Qwen/Qwen2.5-0.5B-Instruct" in err and "hf download" in err


def test_hub_model_unreachable_hub_is_one_line(monkeypatch):
    """Online but without network (this machine): one line, not from_pretrained's retries."""
    import huggingface_hub

    from intentgym.models import check_model_available

    def no_network(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-intentgym-cache")
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_network)
    with pytest.raises(IntentgymError, match=r"the Hub cannot be reached .*hf download Qwen"):
        check_model_available("Qwen/Qwen2.5-7B-Instruct")


def test_model_max_batch_size_caps_every_batch():
    """A model's max_batch_size caps the generation and scoring batches of every phase and probe
    (not the training batch, which sets the optimisation)."""
    cfg = OmegaConf.to_container(
        _compose(["debug=smoke", "trainer=constitutional", "model.max_batch_size=3"]),
        resolve=True,
    )
    plan = plan_run(cfg)
    for probe in plan.probes:
        if hasattr(probe.config, "batch_size"):
            assert probe.config.batch_size <= 3, probe.name
    for _, phase in plan.phases:
        if hasattr(phase.config, "generation_batch_size"):
            assert phase.config.generation_batch_size <= 3
    lower = OmegaConf.to_container(
        _compose(["debug=smoke", "model.max_batch_size=8", "limits.batch_size=2"]), resolve=True
    )
    assert all(getattr(p.config, "batch_size", 2) <= 2 for p in plan_run(lower).probes)


def test_bad_weights_dtype_fails_at_plan_time():
    cfg = OmegaConf.to_container(
        _compose(["debug=smoke", "model.weights_dtype=float16"]), resolve=True
    )
    with pytest.raises(
        IntentgymError,
        match=r"unknown model\.weights_dtype .float16.; valid choices: bfloat16, float32",
    ):
        plan_run(cfg)


# --- Hydra launchers ------------------------------------------------------------------------


def test_launcher_configs_compose():
    parallel = _compose(["hydra/launcher=parallel"], hydra=True).hydra.launcher
    assert parallel._target_.endswith("JoblibLauncher") and parallel.n_jobs == 2
    slurm = _compose(["hydra/launcher=slurm"], hydra=True).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")
    assert (slurm.gpus_per_node, slurm.cpus_per_task, slurm.timeout_min) == (1, 8, 240)


def test_missing_launcher_plugin_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("hydra_plugins.hydra_ray") else real(name, *a),
    )
    with pytest.raises(IntentgymError, match=r"hydra/launcher=ray needs the hydra-ray-launcher"):
        check_launcher(["debug=smoke", "hydra/launcher=ray"])
    check_launcher(["hydra/launcher=parallel"])  # installed (dev extra): passes


@pytest.mark.slow
def test_joblib_sweep_runs_two_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "run",
        "-m",
        "hydra/launcher=parallel",
        "debug=smoke",
        "env.framing=secure,insecure_hidden",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        n: [
            json.loads(line) for line in (sweep / str(n) / "results.jsonl").read_text().splitlines()
        ]
        for n in (0, 1)
    }
    assert {r["framing"] for r in rows[1]} == {"insecure_hidden"}
    # the base model was probed once and shared through the on-disk cache, in another process
    assert len(list((sweep / ".base_cache").glob("*.json"))) == 1
    base = [
        [
            (r["probe"], r["metric"], r["value"])
            for r in rows[n]
            if r["phase"] == "base" and r["probe"] not in ("health",)
        ]
        for n in (0, 1)
    ]
    assert base[0] == base[1] and base[0]


@pytest.mark.slow
def test_a_failed_job_in_a_joblib_sweep_fails_the_command(tmp_path):
    """The job fails in a joblib worker process; the command still exits 2."""
    proc = run_cli(
        "run",
        "-m",
        "hydra/launcher=parallel",
        "debug=smoke",
        "trainer.phases.sft.epochs=1,0",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "1 sweep job(s) failed" in proc.stderr


# --- accelerate: data-parallel processes ----------------------------------------------------


def test_batches_are_split_by_rank(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert list(distributed.my_batches(5)) == [1, 3]
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert list(distributed.my_batches(3)) == [0, 1, 2]
    assert distributed.gather_batches([(1, "b"), (0, "a")], 2) == ["a", "b"]
    assert distributed.device_for("cuda") == "cuda"


def test_generation_is_the_same_whatever_process_generates_a_batch(tiny_policy, monkeypatch):
    """Each batch keeps its seed: batch 1 generated alone (as rank 1 of 2 does) gives the answers
    the one-process run gave for that batch."""
    from intentgym import generation

    convs = [[{"role": "user", "content": f"Say something about {w}."}] for w in "abcdefgh"]
    kwargs = {"max_new_tokens": 6, "temperature": 1.0, "batch_size": 4}
    whole = generation.generate(tiny_policy, convs, **kwargs)
    prompts = generation.chat_prompts(tiny_policy, convs)
    batch_1 = sorted(range(len(convs)), key=lambda i: len(prompts[i]))[4:]
    seen: dict[int, list[str]] = {}

    def gather(done, n):  # rank 1's batches, and batch 0 as rank 0 would have sent it
        seen.update({b: texts for b, (texts, _) in done})
        return [([""] * 4, 0), *[result for _, result in done]]

    monkeypatch.setattr(generation, "my_batches", lambda n: range(1, n, 2))
    monkeypatch.setattr(generation, "gather_batches", gather)
    generation.generate(tiny_policy, convs, **kwargs)
    assert list(seen) == [1]
    assert seen[1] == [whole[i] for i in batch_1]


def _launch(tmp_path: Path, run_dir: Path, processes: int, batch_size: int) -> list[dict]:
    """A debug=smoke SFT run under accelerate launch with ``processes`` CPU processes."""
    if shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("accelerate's CLI is not installed next to this Python")
    accelerate = str(Path(sys.executable).parent / "accelerate")
    # --multi_gpu picks accelerate's torchrun launcher; without a GPU the processes use gloo
    launch = [accelerate, "launch", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "--num_processes", str(processes)]  # fmt: skip
    launch += ["--multi_gpu"] if processes > 1 else ["--cpu"]
    proc = subprocess.run(
        [
            *launch,
            "-m",
            "intentgym",
            "run",
            "debug=smoke",
            f"hydra.run.dir={run_dir}",
            f"trainer.phases.sft.batch_size={batch_size}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


#: machine measurements, not results: they differ between any two runs
MEASURED = {"wall_seconds", "peak_rss_mb"}


@pytest.mark.slow
def test_two_processes_give_the_results_of_one(tmp_path):
    """2 processes x batch 4 against 1 process x batch 8 (the same global batch): base-model rows
    identical; rows after training within 1e-3 relative (DDP sums the two halves' gradients in
    another order than one process does)."""
    one = _launch(tmp_path, tmp_path / "one", 1, 8)
    two = _launch(tmp_path, tmp_path / "two", 2, 4)
    assert [(r["phase"], r["probe"], r["metric"]) for r in one] == [
        (r["phase"], r["probe"], r["metric"]) for r in two
    ]
    # only the main process wrote: no second copy of the run, no leftover scratch dirs
    assert not list((tmp_path / "two").glob("*rank*"))
    for a, b in zip(one, two, strict=True):
        if a["metric"] in MEASURED:
            continue
        if a["phase"] == "base":
            assert (a["value"], a["ci_low"], a["ci_high"]) == (
                b["value"],
                b["ci_low"],
                b["ci_high"],
            ), a
        else:
            assert b["value"] == pytest.approx(a["value"], rel=1e-3, abs=1e-6), (a, b)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs" / "accelerate").glob("*.yaml")), ids=str
)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.distributed_type in ("MULTI_GPU", "FSDP", "DEEPSPEED")
    assert config.num_processes >= 2


@pytest.mark.parametrize(
    "env,what",
    [
        ({"ACCELERATE_USE_FSDP": "true"}, "FSDP"),
        ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, "ZeRO-3"),
    ],
)
def test_weight_sharding_is_refused_at_plan_time(monkeypatch, env, what):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = OmegaConf.to_container(_compose(["debug=smoke"]), resolve=True)
    with pytest.raises(IntentgymError, match=rf"{what}.*ddp\.yaml"):
        plan_run(cfg)
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    plan_run(cfg)  # ZeRO-2 keeps whole weights


# --- generation engines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "override,message",
    [
        ("generation.engine=foo", "unknown generation.engine 'foo'; valid choices: hf, vllm"),
        ("generation.engine=vllm", "generation.engine=vllm needs"),
    ],
)
def test_an_engine_that_cannot_run_here_fails_at_plan_time(override, message):
    import importlib.util

    import torch

    if override.endswith("vllm") and importlib.util.find_spec("vllm") and torch.cuda.is_available():
        pytest.skip("vLLM and a CUDA GPU are present: the vllm engine can run here")
    cfg = OmegaConf.to_container(_compose(["debug=smoke", override]), resolve=True)
    with pytest.raises(IntentgymError, match=re.escape(message)):
        plan_run(cfg)


def test_the_vllm_engine_makes_rl_rollouts_use_vllm(monkeypatch):
    """generation.engine=vllm also switches GRPO/RLOO rollouts to TRL's vLLM (colocate)."""
    import intentgym.generation as generation

    monkeypatch.setattr(generation, "check_engine", lambda settings: None)  # as on a GPU machine
    plan = plan_run(
        OmegaConf.to_container(
            _compose(["debug=smoke", "trainer=rlhf", "generation.engine=vllm"]), resolve=True
        )
    )
    rl = [phase for _, phase in plan.phases if hasattr(phase.config, "use_vllm")]
    assert rl and all(p.config.use_vllm and p.config.vllm_mode == "colocate" for p in rl)
    assert plan.generation is not None and plan.generation.engine == "vllm"


def _vllm_missing() -> str:
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU (this machine has none); bench/gpu_check.sh runs it on one"
    if importlib.util.find_spec("vllm") is None:
        return 'needs vLLM: pip install "intentgym[vllm]"'
    return ""


@pytest.mark.skipif(bool(_vllm_missing()), reason=_vllm_missing())
def test_vllm_engine_answers_like_hf(tiny_policy):
    """On a GPU: the vllm engine answers every prompt, greedy answers match hf's, and it
    rebuilds after the weights change."""
    from intentgym import generation

    convs = [[{"role": "user", "content": f"Name a colour, {k}."}] for k in range(12)]
    tiny_policy.model.to("cuda")
    hf = generation.generate(tiny_policy, convs, max_new_tokens=8, temperature=0.0)
    generation.configure(generation.GenerationSettings(engine="vllm"))
    try:
        fast = generation.generate(tiny_policy, convs, max_new_tokens=8, temperature=0.0)
        assert len(fast) == len(convs)
        agree = sum(a == b for a, b in zip(hf, fast, strict=True)) / len(convs)
        assert agree >= 0.75, (hf, fast)  # kernels differ; greedy ties may break differently
    finally:
        generation.configure(generation.GenerationSettings())


def test_hf_engine_settings(tiny_policy):
    """hf_batch_size and a static KV cache: greedy answers equal the defaults'; a bad value
    fails at plan time."""
    from intentgym import generation

    convs = [[{"role": "user", "content": f"Count to {k}."}] for k in range(6)]
    base = generation.generate(tiny_policy, convs, max_new_tokens=8)
    try:
        generation.configure(generation.GenerationSettings(hf_cache="static", hf_batch_size=3))
        assert generation.generate(tiny_policy, convs, max_new_tokens=8) == base
    finally:
        generation.configure(generation.GenerationSettings())
    for override, message in (
        ("generation.hf_cache=paged", "unknown generation.hf_cache 'paged'"),
    ):
        cfg = OmegaConf.to_container(_compose(["debug=smoke", override]), resolve=True)
        with pytest.raises(IntentgymError, match=re.escape(message)):
            plan_run(cfg)
