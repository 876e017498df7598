"""The experiment runner: base probes -> for each phase: train, save, probe -> results.

Run directory layout (the Hydra run dir)::

    config.yaml                 resolved config
    results.jsonl               one row per metric: phase, probe, metric, value, ci_low, ci_high, n
                                (written as results.partial.jsonl and renamed only on success)
    records/<phase>/<probe>.jsonl   per-item records
    records/<phase>/<probe>.items.jsonl   each metric's per-item values (metric, item, cluster,
                                value): what paired comparisons resample
    phases/<phase>/adapter/     the phase's LoRA adapter (safetensors), or model/ for full FT
    FAILED                      present, with the error, when the run did not complete
    reward_model.json           the reward model the run's phases used (name, origin, constructor
                                arguments, used_by: phase labels; others: any further ones), once
                                a phase asks for one; written for every run that builds or trains one
    <published files>           files a phase asked to publish (e.g. goodhart.png), copied here

The runner owns this directory: phases write only under ``phases/<label>/`` and hand run-level
files to the runner (``PhaseContext.publish``); reward models are resolved and recorded in one
place (:class:`intentgym.api.rewards.RunRewardModels`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intentgym import distributed
from intentgym.api.artifacts import TrainedRewardModel
from intentgym.api.phase import Phase
from intentgym.api.probe import Probe
from intentgym.configs import build_dataclass
from intentgym.errors import IntentgymError, invalid_choice

if TYPE_CHECKING:
    from intentgym.generation import GenerationSettings

log = logging.getLogger(__name__)

# Base-model probe results of this process, keyed by everything they depend on. Hydra's basic
# launcher runs a sweep's jobs in one process, so the arms of a sweep share one base evaluation
# instead of repeating it (minutes per arm on a CPU). Other launchers simply recompute.
_BASE_RESULTS: dict[str, tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]] = {}


def _base_key(plan: Plan, env: Any) -> str | None:
    if not env.eval_independent_of_framing:
        return None
    env_settings = {k: v for k, v in asdict(plan.env).items() if k != "framing"}
    probes = [(type(p).__name__, asdict(p.config)) for p in plan.probes]
    return json.dumps([asdict(plan.model), env_settings, probes, plan.seed], sort_keys=True)


@dataclass
class ModelSettings:
    name: str = field(
        default="smollm2-135m",
        metadata={"help": "Built-in name, Hugging Face hub id or local folder."},
    )
    dtype: str = field(
        default="auto", metadata={"help": "Compute dtype: auto (bf16 where supported) or a dtype."}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    weights_dtype: str = field(
        default="float32",
        metadata={
            "help": "Dtype the weights are stored in: float32 (master copy for full fine-tuning) "
            "or bfloat16 (halves memory; for LoRA on models of a billion parameters and up)."
        },
    )
    max_batch_size: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "Cap on every batch size of every phase and probe (0: none); sized per model "
            "so its conf/model entry fits one GPU.",
        },
    )


@dataclass
class EnvSettings:
    name: str
    framing: str
    #: the env's own constructor arguments (e.g. answer_format for insecure_code)
    options: dict[str, Any] = field(default_factory=dict)


def env_settings(cfg: dict[str, Any]) -> EnvSettings:
    """Split an ``env`` config into name, framing and the env's own options (checked against its
    constructor, so a misspelt key fails with the valid ones listed)."""
    import inspect

    from intentgym.envs import env_class, env_framings

    options = dict(cfg)
    name = str(options.pop("name", "insecure_code"))
    cls = env_class(name)
    params = inspect.signature(cls.__init__).parameters
    framing = str(options.pop("framing", params["framing"].default))
    valid = sorted(k for k in params if k not in ("self", "framing", "render_mode"))
    for key in options:
        if key not in valid:
            raise IntentgymError(
                f"unknown key {key!r} in env ({name}); valid keys: name, framing, "
                + ", ".join(valid)
            )
    if framing not in env_framings(name):
        raise invalid_choice(f"framing for env {name}", framing, env_framings(name))
    return EnvSettings(name, framing, options)


@dataclass
class LoggerSettings:
    name: str = "none"
    project: str = "intentgym"
    mode: str = "auto"
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    #: rows per W&B table of per-item probe records (0: no tables); intentgym/tracking.py
    max_table_rows: int = field(default=200, metadata={"min": 0})
    #: adapters and reward models as W&B artifacts: reference | upload | none
    artifacts: str = "reference"

    def __post_init__(self) -> None:
        from intentgym.tracking import ARTIFACT_MODES

        if self.artifacts not in ARTIFACT_MODES:
            raise invalid_choice("logger.artifacts", self.artifacts, ARTIFACT_MODES)


@dataclass
class RunSettings:
    seed: int = 0
    #: the online-RL algorithm of trainers with an ``rl`` phase (conf: ``algorithm=...``)
    algorithm: str = "grpo"
    #: trainer=constitutional's constitution and trainer=deliberative's spec (None: packaged)
    constitution: str | None = None
    spec: str | None = None
    #: how trainer=deliberative presents the spec reasoning (conf: ``reasoning_frame=...``)
    reasoning_frame: str = "private"
    progress: bool = True
    #: continue the run in this dir from its last completed phase (or training checkpoint)
    resume: bool = False
    #: replace whatever run this dir holds
    overwrite: bool = False
    model: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    reward_model: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)


@dataclass
class Limits:
    """Caps on every phase and probe (``debug=smoke`` sets them); None = no cap.

    A config field opts in by declaring which cap applies to it in its metadata:
    ``field(default=256, metadata={"limit": "train_examples", "help": ...})``; ``"unset"`` names
    a value that means "no limit of its own" (e.g. ``-1`` for ``max_steps``), which the cap
    replaces. Nothing is guessed from attribute names.
    """

    train_examples: int | None = field(default=None, metadata={"min": 1})
    train_steps: int | None = field(default=None, metadata={"min": 1})
    probe_items: int | None = field(default=None, metadata={"min": 1})
    max_new_tokens: int | None = field(default=None, metadata={"min": 1})
    batch_size: int | None = field(default=None, metadata={"min": 1})

    def apply(self, config: Any) -> None:
        import dataclasses

        for f in dataclasses.fields(config):
            name = f.metadata.get("limit")
            if name is None:
                continue
            if name not in LIMIT_NAMES:
                raise IntentgymError(
                    f"{type(config).__name__}.{f.name} declares an unknown limit {name!r}; "
                    f"valid: {', '.join(LIMIT_NAMES)}"
                )
            limit = getattr(self, name)
            current = getattr(config, f.name)
            if limit is not None and (current == f.metadata.get("unset") or current > limit):
                setattr(config, f.name, limit)


LIMIT_NAMES = ("train_examples", "train_steps", "probe_items", "max_new_tokens", "batch_size")


@dataclass
class Plan:
    """A validated run: every component checked before any work or any file is written."""

    seed: int
    progress: bool
    model: ModelSettings
    env: EnvSettings
    trainer_name: str
    phases: list[tuple[str, Phase[Any]]]  # (label, phase instance)
    probes: list[Probe[Any]]
    logger: LoggerSettings
    raw: dict[str, Any]
    #: the run's reward model: (registry name, constructor arguments), or None
    reward_model: tuple[str, dict[str, Any]] | None = None
    resume: bool = False
    overwrite: bool = False
    #: ``generation:`` settings (engine); None: the defaults
    generation: GenerationSettings | None = None

    @property
    def framing(self) -> str:
        """What the run's training data is, as results and reports label it: the env's framing,
        unless the phases train on data of their own (a phase's ``data_label``, e.g. the trait
        of ``steer_distill``), which then labels the run instead."""
        own = [p.data_label for _, p in self.phases if p.data_label]
        return "+".join(dict.fromkeys(own)) if own else self.env.framing


def plan_run(cfg: dict[str, Any]) -> Plan:
    """Validate a composed config and build every component; raises IntentgymError on bad input."""
    from intentgym.api.env import env_class
    from intentgym.api.phase import phase_class
    from intentgym.api.probe import probe_class
    from intentgym.api.requirements import RunFacts
    from intentgym.api.reward import REWARD_MODELS, preflight_reward_model
    from intentgym.apikeys import check_endpoint_keys, check_no_literal_secrets
    from intentgym.envs import load_chat_jsonl
    from intentgym.generation import GenerationSettings, check_engine
    from intentgym.models import (
        check_model_available,
        model_num_layers,
        resolve_device,
        resolve_dtype,
    )

    check_no_literal_secrets(cfg)  # before anything quotes a value in an error message
    distributed.check_supported()
    top = build_dataclass(RunSettings, cfg, "the run config")
    model = build_dataclass(ModelSettings, top.model, "model")
    resolve_dtype(model.dtype)
    resolve_device(model.device)
    if model.weights_dtype not in ("float32", "bfloat16"):
        raise invalid_choice("model.weights_dtype", model.weights_dtype, ["float32", "bfloat16"])
    check_model_available(model.name)
    env = env_settings(top.env)
    if env.options.get("demonstrations_path"):
        # a bad file fails now, not after the base probes
        load_chat_jsonl(env.options["demonstrations_path"])
    logger = build_dataclass(LoggerSettings, top.logger, "logger")
    limits = build_dataclass(Limits, top.limits, "limits")
    generation = build_dataclass(GenerationSettings, top.generation, "generation")
    check_engine(generation)
    if model.max_batch_size:  # the model's cap, unless limits set a lower one
        limits.batch_size = min(limits.batch_size or model.max_batch_size, model.max_batch_size)
    if top.resume and top.overwrite:
        raise IntentgymError("resume=true and overwrite=true contradict each other; pick one")
    if logger.name not in ("none", "wandb"):
        raise invalid_choice("logger", logger.name, ["none", "wandb"])
    if logger.mode not in ("auto", "online", "offline", "disabled"):
        raise invalid_choice("logger.mode", logger.mode, ["auto", "online", "offline", "disabled"])

    trainer = dict(top.trainer)
    trainer_name = str(trainer.pop("name", "custom"))
    phase_cfgs = trainer.pop("phases", None) or {}
    if trainer:
        raise IntentgymError(
            f"unknown key {next(iter(trainer))!r} in trainer; valid keys: name, phases"
        )
    phases = []
    for label, pcfg in phase_cfgs.items():
        pcfg = dict(pcfg or {})
        kind = pcfg.pop("kind", label)
        # repeat: k runs the phase k times (labels <label>_1 .. <label>_k), probed after each
        repeat = pcfg.pop("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise IntentgymError(
                f"trainer.phases.{label}.repeat must be a whole number >= 1, got {repeat!r}"
            )
        cls = phase_class(str(kind))
        if (
            generation.engine == "vllm"
            and "use_vllm" in {f.name for f in dataclasses.fields(cls.config_class)}
            and top.algorithm != "ppo"
        ):
            pcfg.setdefault("use_vllm", True)  # RL rollouts through TRL's vLLM (colocate)
        config: Any = build_dataclass(cls.config_class, pcfg, f"trainer.phases.{label}")
        limits.apply(config)
        for k in range(1, repeat + 1):
            phases.append((f"{label}_{k}" if repeat > 1 else label, cls(config)))

    probe_cfgs = dict(top.probes)
    probe_cfgs.pop("suite", None)
    extra = probe_cfgs.pop("extra", None) or []
    if isinstance(extra, str):
        extra = [extra]
    if extra:  # probes.extra=[PATH,...]: model-written-evals files, run by the forced-choice probe
        fc = dict(probe_cfgs.get("forced_choice") or {"sets": []})
        fc["extra"] = [*fc.get("extra", []), *(str(e) for e in extra)]
        probe_cfgs["forced_choice"] = fc
    probes = []
    for name, pcfg in probe_cfgs.items():
        pcfg = dict(pcfg or {})
        probe_cls = probe_class(str(pcfg.pop("kind", name)))
        config = build_dataclass(probe_cls.config_class, pcfg, f"probes.{name}")
        limits.apply(config)
        probes.append(probe_cls(config))

    rm_kwargs = dict(top.reward_model)
    rm_name = rm_kwargs.pop("name", None)
    reward_model = None
    if rm_name not in (None, "none"):
        REWARD_MODELS.check_kwargs(str(rm_name), rm_kwargs)  # unknown name or argument: fail now
        reward_model = (str(rm_name), rm_kwargs)
        if _trained_in_run(reward_model) and not any(
            TrainedRewardModel in p.produces for _, p in phases
        ):
            raise IntentgymError(
                "reward_model=learned needs reward_model.path=DIR (a saved reward model) or a "
                "'reward' phase in the trainer to train one"
            )

    # Every phase's and probe's declared needs, against what the run will have: fail now, not
    # after the base-model probes.
    facts = RunFacts(
        env.name, env_class(env.name), reward_model=reward_model is not None,
        num_layers=model_num_layers(model.name),
    )  # fmt: skip
    for label, phase in phases:
        phase.requirements().check(f"trainer.phases.{label} ({type(phase).__name__})", facts)
        facts = replace(facts, artifacts=facts.artifacts | frozenset(phase.produces))
    for probe in probes:
        probe.requirements().check(f"probes.{probe.name}", facts)
    # what each component will load (wheels, files, judge models, endpoint keys) is there
    check_endpoint_keys(cfg)
    if reward_model is not None and not _trained_in_run(reward_model):
        preflight_reward_model({"name": reward_model[0], **reward_model[1]}, "reward_model")
    for _, phase in phases:
        phase.preflight()
    for probe in probes:
        probe.preflight()
    return Plan(
        top.seed,
        top.progress,
        model,
        env,
        trainer_name,
        phases,
        probes,
        logger,
        cfg,
        reward_model,
        top.resume,
        top.overwrite,
        generation,
    )


#: what a run dir holds once a run has used it (besides Hydra's .hydra/ and log, and config.yaml)
RUN_FILES = (
    "results.jsonl",
    "results.partial.jsonl",
    "FAILED",
    "checkpoint.json",
    "checkpoint_artifacts.pkl",
    "reward_model.json",
)
RUN_DIRS = ("phases", "records")


def execute(
    plan: Plan, run_dir: Path, *, group: str | None = None, base_cache: Path | None = None
) -> Path:
    """Run a validated plan in ``run_dir``; returns the path of ``results.jsonl``.

    After the base probes and after every phase (with its probes) the run is checkpointed in
    ``checkpoint.json`` (the rows so far, completed phases, reward-model records) and
    ``checkpoint_artifacts.pkl`` (the typed artifacts); ``plan.resume`` continues from there,
    rebuilding the policy from the completed phases' saved adapters or weights. A dir that
    already holds a run is refused unless the plan resumes or overwrites it. ``base_cache``: a
    folder where a sweep's jobs share base-model probe results across processes.
    """
    import transformers

    from intentgym import budget, generation, health, runstate
    from intentgym.api.artifacts import Artifacts
    from intentgym.api.env import make_env
    from intentgym.api.phase import PhaseContext
    from intentgym.api.probe import ProbeContext
    from intentgym.api.rewards import RunRewardModels
    from intentgym.files import atomic_write_jsonl, atomic_write_text
    from intentgym.models import load_policy
    from intentgym.offline import disable_telemetry, offline_unless_hub
    from intentgym.tracking import NullTracker, WandbTracker

    generation.configure(plan.generation or generation.GenerationSettings())
    disable_telemetry()  # no network at run time unless an endpoint or a hub model needs it
    offline_unless_hub(plan.model.name, plan.raw)
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / "results.partial.jsonl"
    final = run_dir / "results.jsonl"
    failed = run_dir / "FAILED"
    checkpoint = _Checkpoint(run_dir)
    used = [n for n in (*RUN_FILES, *RUN_DIRS) if (run_dir / n).exists()]
    state = None
    if used and plan.overwrite:
        _clear_run(run_dir)
    elif used and plan.resume:
        if final.exists():
            log.info("%s is complete (results.jsonl): nothing to resume", run_dir)
            return final
        state = checkpoint.load(plan.raw)
    elif used:
        raise IntentgymError(
            f"{run_dir} already holds a run ({used[0]}); pass resume=true to continue it or "
            "overwrite=true to replace it"
        )
    failed.unlink(missing_ok=True)
    atomic_write_text(run_dir / "config.yaml", _yaml(plan.raw))

    tracker: Any = NullTracker()
    ok = False
    rows_so_far: list[dict[str, Any]] = list(state["rows"]) if state else []
    completed: list[str] = list(state["completed"]) if state else []
    runstate.enter_phase("setup")
    try:
        with runstate.signals_interrupt():
            transformers.set_seed(plan.seed)
            env = make_env(plan.env.name, framing=plan.env.framing, **plan.env.options)
            policy = load_policy(
                plan.model.name,
                dtype=plan.model.dtype,
                device=plan.model.device,
                weights_dtype=plan.model.weights_dtype,
            )
            dtype = str(policy.compute_dtype).removeprefix("torch.")
            # is the model a working LM? (health.py) Later phases are judged against the base
            base_health = health.check(policy)
            if plan.logger.name == "wandb":
                tracker = WandbTracker(
                    project=plan.logger.project,
                    config=plan.raw,
                    run_dir=run_dir,
                    name=f"{plan.trainer_name}-{plan.framing}-s{plan.seed}",
                    group=plan.logger.group or group,
                    mode=plan.logger.mode,
                    tags=[
                        plan.trainer_name,
                        plan.env.name,
                        plan.framing,
                        plan.model.name,
                        *plan.logger.tags,
                    ],
                    job_type="run",
                    max_table_rows=plan.logger.max_table_rows,
                    artifacts=plan.logger.artifacts,
                    base_model=plan.model.name,
                )
            context = {
                "model": plan.model.name,
                "dtype": dtype,
                "env": plan.env.name,
                "framing": plan.framing,
                "trainer": plan.trainer_name,
                "seed": plan.seed,
            }
            probe_ctx = ProbeContext(env=env, seed=plan.seed, progress=plan.progress)

            def emit(phase: str, rows: list[dict[str, Any]], records: dict[str, list[Any]]) -> None:
                rows_so_far.extend(rows)
                atomic_write_jsonl(partial, rows_so_far)
                for name, recs in records.items():
                    atomic_write_jsonl(run_dir / "records" / phase / f"{name}.jsonl", recs)
                tracker.log_rows(rows)
                tracker.log_records(phase, records)
                for row in rows:
                    log.info(
                        "%s %s %s = %.3f [%.3f, %.3f]",
                        phase,
                        row["probe"],
                        row["metric"],
                        row["value"],
                        row["ci_low"],
                        row["ci_high"],
                    )

            def probe(
                phase: str, marks: dict[str, Any] | None = None
            ) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
                """Run every probe on the policy; ``marks`` (e.g. invalid) go on every row."""
                runstate.enter_phase(f"{phase} (probes)")
                all_rows: list[dict[str, Any]] = []
                all_records: dict[str, list[Any]] = {}
                for p in plan.probes:
                    t0 = time.perf_counter()
                    result = p.run(policy, probe_ctx)
                    seconds = round(time.perf_counter() - t0, 2)
                    rows = result.rows(phase, **context, seconds=seconds, **(marks or {}))
                    # per-item values of each metric, which comparisons pair across phases/arms
                    items = [
                        {"metric": m, "item": k, "cluster": c, "value": v}
                        for m, values in result.items.items()
                        for k, c, v in values
                    ]
                    records = {p.name: result.records, f"{p.name}.items": items}
                    emit(phase, rows, records)
                    all_rows += rows
                    all_records.update(records)
                return all_rows, all_records

            artifacts = state["artifacts"] if state else Artifacts()
            label_now = {"phase": ""}

            def record_reward_models(records: list[dict[str, Any]]) -> None:
                # the one the latest phase used, with any others the run built
                primary = next(
                    (r for r in reversed(records) if label_now["phase"] in r["used_by"]),
                    next((r for r in records if r["used_by"]), records[-1]),
                )
                info = {**primary}
                others = [r for r in records if r is not primary]
                if others:
                    info["others"] = others
                _write_json(run_dir / "reward_model.json", info)
                tracker.update_config({"reward_model": info})

            rewards = RunRewardModels(plan.reward_model, on_record=record_reward_models)
            if state:
                rewards.records = state["reward_models"]
            if plan.reward_model and not _trained_in_run(plan.reward_model):
                # built now, so bad arguments fail before the base probes, and recorded
                # (reward_model.json, W&B config) even when no phase uses it
                rewards.configured(None)

            def check_health(phase: str, current: health.Health) -> dict[str, Any]:
                """Emit the phase's health rows; the marks its probe rows get when invalid."""
                reason = current.invalid_reason(None if phase == "base" else base_health)
                marks = {"invalid": True, "invalid_reason": reason} if reason else {}
                emit(phase, [{**r, "phase": phase, **context, **marks} for r in current.rows()], {})
                if reason:
                    log.error("phase %s: %s; its rows are marked invalid", phase, reason)
                elif phase == "base" and current.degenerate:
                    log.warning("the base model's replies are degenerate (all empty or the same)")
                return marks

            if "base" in completed:
                log.info("resuming %s after: %s", run_dir, ", ".join(completed))
            else:
                base_marks = check_health("base", base_health)
                key = _base_key(plan, env)
                cached = _cached_base(key, base_cache)
                if cached is not None:
                    log.info("base-model probes: reusing this sweep's (same model, probes, seed)")
                    rows, records = cached
                    emit("base", [{**r, **context} for r in rows], records)
                else:
                    base = probe("base", base_marks)
                    if key is not None and not base_marks:  # only complete, valid ones are shared
                        _store_base(key, base, base_cache)
                completed.append("base")
                checkpoint.save(plan.raw, completed, rows_so_far, artifacts, rewards.records)
            for label, phase in plan.phases:
                if label in completed:  # resume: replay what the phase did to the policy
                    if phase.changes_policy:
                        _replay_weights(policy, run_dir / "phases" / label, label)
                    continue
                log.info("phase %s: training", label)
                runstate.enter_phase(label)
                # Training must not depend on how much randomness the probes consumed (or
                # whether base results were reused): adapters are initialised from this seed.
                transformers.set_seed(plan.seed)
                label_now["phase"] = label
                phase_ctx = PhaseContext(
                    run_dir / "phases" / label,
                    plan.seed,
                    tracker.report_to,
                    plan.progress,
                    artifacts=artifacts,
                    rewards=rewards,
                    label=label,
                    resume=plan.resume,
                )
                phase_ctx.output_dir.mkdir(parents=True, exist_ok=True)
                trained_before = artifacts.get(TrainedRewardModel)
                with budget.PhaseBudget() as spent:
                    policy = phase.run(policy, env, phase_ctx)
                emit(label, [{**r, "phase": label, **context} for r in spent.rows()], {})
                trained = artifacts.get(TrainedRewardModel)
                if trained is not None and trained is not trained_before:
                    rewards.note_trained(
                        label, str(trained.path), dtype=dtype, device=str(policy.device)
                    )
                # W&B artifacts: the phase's adapter or weights, and the reward model it trained
                new_rm = (
                    trained.path if trained is not None and trained is not trained_before else None
                )
                tracker.log_phase(label, phase_ctx.output_dir, reward_model=new_rm)
                emit(label, [{**r, "phase": label, **context} for r in phase_ctx.results], {})
                for name, source in phase_ctx.published.items():
                    _publish(source, run_dir / name, label)
                if phase.changes_policy:
                    probe(label, check_health(label, health.check(policy)))
                else:  # e.g. the reward phase trains a reward model, not the policy
                    log.info("phase %s left the policy unchanged: no probes after it", label)
                completed.append(label)
                checkpoint.save(plan.raw, completed, rows_so_far, artifacts, rewards.records)
            runstate.enter_phase("finish")
        partial.replace(final)
        checkpoint.remove()  # results.jsonl now says the run is complete
        ok = True
    except BaseException as e:
        message = str(e) if isinstance(e, IntentgymError) else f"{type(e).__name__}: {e}"
        if isinstance(e, KeyboardInterrupt):
            message = f"interrupted {runstate.STATE.where()}"
        with contextlib.suppress(OSError):
            failed.write_text(f"{message}\n")
        raise
    finally:
        tracker.finish(ok)
    return final


class _Checkpoint:
    """The run's progress after each completed unit (base probes, each phase with its probes)."""

    def __init__(self, run_dir: Path) -> None:
        self.state = run_dir / "checkpoint.json"
        self.artifacts = run_dir / "checkpoint_artifacts.pkl"

    def save(
        self,
        config: dict[str, Any],
        completed: list[str],
        rows: list[dict[str, Any]],
        artifacts: Any,
        reward_models: list[dict[str, Any]],
    ) -> None:
        import pickle

        from intentgym.files import atomic_write_text

        try:
            blob = pickle.dumps(artifacts)
        except Exception as e:  # an artifact that cannot be saved: the run cannot resume here
            log.warning(
                "artifacts of %s cannot be checkpointed (%s): resume will restart", completed[-1], e
            )
            return
        tmp = self.artifacts.with_name(f".{self.artifacts.name}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(self.artifacts)
        state = {
            "config": _comparable(config),
            "completed": completed,
            "rows": rows,
            "reward_models": reward_models,
        }
        atomic_write_text(self.state, json.dumps(state, default=str) + "\n")

    def remove(self) -> None:
        self.state.unlink(missing_ok=True)
        self.artifacts.unlink(missing_ok=True)

    def load(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """The saved progress, or None when there is none (the run then starts over)."""
        import pickle

        if not self.state.is_file() or not self.artifacts.is_file():
            log.info("resume: no checkpoint in %s; starting from the beginning", self.state.parent)
            return None
        try:
            state = json.loads(self.state.read_text())
            state["artifacts"] = pickle.loads(self.artifacts.read_bytes())
        except (OSError, ValueError, pickle.UnpicklingError, EOFError) as e:
            raise IntentgymError(f"cannot resume: {self.state} is unreadable ({e})") from None
        if state.get("config") != _comparable(config):
            raise IntentgymError(
                f"cannot resume {self.state.parent}: its config differs from this run's "
                "(compare its config.yaml); resume with the same overrides, or overwrite=true"
            )
        return state


def _comparable(config: dict[str, Any]) -> Any:
    """The config without the keys that say what to do with the run dir."""
    out = {k: v for k, v in config.items() if k not in ("resume", "overwrite", "progress")}
    return json.loads(json.dumps(out, default=str))


def _clear_run(run_dir: Path) -> None:
    import shutil

    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _replay_weights(policy: Any, phase_dir: Path, label: str) -> None:
    """Apply what a completed phase did to the policy, from the adapter or weights it saved."""
    import torch

    adapter, full = phase_dir / "adapter", phase_dir / "model"
    if adapter.is_dir():
        from peft import PeftModel

        from intentgym.models import merge_adapter

        policy.model = PeftModel.from_pretrained(policy.model, str(adapter))
        merge_adapter(policy)
    elif full.is_dir():
        from transformers import AutoModelForCausalLM

        device = policy.device
        model = AutoModelForCausalLM.from_pretrained(str(full), dtype=torch.float32)
        model.generation_config.pad_token_id = policy.tokenizer.pad_token_id
        policy.model = model.to(device)
    else:
        raise IntentgymError(
            f"cannot resume: phase {label!r} changed the policy but saved neither adapter/ nor "
            f"model/ in {phase_dir}; run again with overwrite=true"
        )
    policy.model.eval()


def _cached_base(key: str | None, folder: Path | None) -> Any:
    """Base-model probe results of this process or of another job of the sweep (on disk)."""
    if key is None:
        return None
    if key in _BASE_RESULTS:
        return _BASE_RESULTS[key]
    if folder is not None:
        path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
        if path.is_file():
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                _BASE_RESULTS[key] = (data["rows"], data["records"])
                return _BASE_RESULTS[key]
    return None


def _store_base(key: str, base: Any, folder: Path | None) -> None:
    from intentgym.files import atomic_write_text

    _BASE_RESULTS[key] = base
    if folder is not None:
        path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
        rows, records = base
        atomic_write_text(
            path, json.dumps({"key": key, "rows": rows, "records": records}, default=str)
        )


def _trained_in_run(spec: tuple[str, dict[str, Any]]) -> bool:
    """True for ``learned`` without a path: the reward model this run's reward phase trains."""
    return spec[0] == "learned" and spec[1].get("path") is None


def _publish(source: Path, target: Path, phase: str) -> None:
    """Copy a file a phase published to the run dir (atomically: temp file, then rename)."""
    import shutil

    if not source.is_file():
        raise IntentgymError(f"phase {phase!r} published {source}, which does not exist")
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)
