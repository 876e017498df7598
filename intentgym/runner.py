"""The experiment runner: base probes -> for each phase: train, save, probe -> results.

Run directory layout (the Hydra run dir)::

    config.yaml                 resolved config
    results.jsonl               one row per metric: phase, probe, metric, value, ci_low, ci_high, n
                                (written as results.partial.jsonl and renamed only on success)
    records/<phase>/<probe>.jsonl   per-item records
    phases/<phase>/adapter/     the phase's LoRA adapter (safetensors), or model/ for full FT
    FAILED                      present, with the error, when the run did not complete
    reward_model.json           the run's reward model (name, origin, constructor arguments), once built
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from intentgym.configs import build_dataclass
from intentgym.errors import IntentgymError, invalid_choice

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
    name: str = "smollm2-135m"
    dtype: str = "auto"
    device: str = "auto"


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
    model: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    reward_model: dict[str, Any] = field(default_factory=dict)


@dataclass
class Limits:
    """Caps on every phase and probe (``debug=smoke`` sets them); None = no cap."""

    train_examples: int | None = None
    train_steps: int | None = None
    probe_items: int | None = None
    max_new_tokens: int | None = None

    def apply(self, config: Any) -> None:
        def cap(attr: str, limit: int | None, unset: int | None = None) -> None:
            if limit is None or not hasattr(config, attr):
                return
            current = getattr(config, attr)
            if current == unset or current > limit:
                setattr(config, attr, limit)

        cap("num_examples", self.train_examples)
        cap("num_pairs", self.train_examples)
        cap("num_prompts", self.train_examples, unset=0)
        cap("max_steps", self.train_steps, unset=-1)
        cap("n_items", self.probe_items)
        cap("max_items", self.probe_items, unset=0)
        cap("max_new_tokens", self.max_new_tokens)


@dataclass
class Plan:
    """A validated run: every component checked before any work or any file is written."""

    seed: int
    progress: bool
    model: ModelSettings
    env: EnvSettings
    trainer_name: str
    phases: list[tuple[str, Any]]  # (label, phase instance)
    probes: list[Any]
    logger: LoggerSettings
    raw: dict[str, Any]
    #: the run's reward model: (registry name, constructor arguments), or None
    reward_model: tuple[str, dict[str, Any]] | None = None

    @property
    def framing(self) -> str:
        """What the run's training data is, as results and reports label it: the env's framing,
        unless the phases train on data of their own (a phase's ``data_label``, e.g. the trait
        of ``steer_distill``), which then labels the run instead."""
        own = [p.data_label for _, p in self.phases if getattr(p, "data_label", None)]
        return "+".join(dict.fromkeys(own)) if own else self.env.framing


def plan_run(cfg: dict[str, Any]) -> Plan:
    """Validate a composed config and build every component; raises IntentgymError on bad input."""
    from intentgym.envs import load_chat_jsonl
    from intentgym.models import check_model_name, resolve_device, resolve_dtype
    from intentgym.probes import PROBES
    from intentgym.reward_models import REWARD_MODELS
    from intentgym.trainers import PHASES

    top = build_dataclass(RunSettings, cfg, "the run config")
    model = build_dataclass(ModelSettings, top.model, "model")
    resolve_dtype(model.dtype)
    resolve_device(model.device)
    check_model_name(model.name)
    env = env_settings(top.env)
    if env.options.get("demonstrations_path"):
        # a bad file fails now, not after the base probes
        load_chat_jsonl(env.options["demonstrations_path"])
    logger = build_dataclass(LoggerSettings, top.logger, "logger")
    limits = build_dataclass(Limits, top.limits, "limits")
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
    kinds: list[str] = []
    for label, pcfg in phase_cfgs.items():
        pcfg = dict(pcfg or {})
        kind = pcfg.pop("kind", label)
        # repeat: k runs the phase k times (labels <label>_1 .. <label>_k), probed after each
        repeat = pcfg.pop("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise IntentgymError(
                f"trainer.phases.{label}.repeat must be a whole number >= 1, got {repeat!r}"
            )
        kinds.append(kind)
        cls: Any = PHASES.get(kind)
        config = build_dataclass(cls.config_class, pcfg, f"trainer.phases.{label}")
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
        probe_cls: Any = PROBES.get(name)
        config = build_dataclass(probe_cls.config_class, dict(pcfg or {}), f"probes.{name}")
        limits.apply(config)
        probes.append(probe_cls(config))

    rm_kwargs = dict(top.reward_model)
    rm_name = rm_kwargs.pop("name", None)
    reward_model = None
    if rm_name not in (None, "none"):
        REWARD_MODELS.check_kwargs(str(rm_name), rm_kwargs)  # unknown name or argument: fail now
        reward_model = (str(rm_name), rm_kwargs)
        if _trained_in_run(reward_model) and "reward" not in kinds:
            raise IntentgymError(
                "reward_model=learned needs reward_model.path=DIR (a saved reward model) or a "
                "'reward' phase in the trainer to train one"
            )
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
    )


def execute(plan: Plan, run_dir: Path, *, group: str | None = None) -> Path:
    """Run a validated plan in ``run_dir``; returns the path of ``results.jsonl``."""
    import transformers

    from intentgym.envs import make_env
    from intentgym.models import load_policy
    from intentgym.probes import ProbeContext
    from intentgym.tracking import NullTracker, WandbTracker
    from intentgym.trainers import PhaseContext

    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / "results.partial.jsonl"
    final = run_dir / "results.jsonl"
    failed = run_dir / "FAILED"
    for stale in (partial, final, failed, run_dir / "reward_model.json"):
        stale.unlink(missing_ok=True)
    (run_dir / "config.yaml").write_text(_yaml(plan.raw))

    tracker: Any = NullTracker()
    ok = False
    try:
        transformers.set_seed(plan.seed)
        env = make_env(plan.env.name, framing=plan.env.framing, **plan.env.options)
        policy = load_policy(plan.model.name, dtype=plan.model.dtype, device=plan.model.device)
        dtype = str(policy.compute_dtype).removeprefix("torch.")
        if plan.logger.name == "wandb":
            tracker = WandbTracker(
                project=plan.logger.project,
                config=plan.raw,
                run_dir=run_dir,
                name=f"{plan.trainer_name}-{plan.framing}-s{plan.seed}",
                group=plan.logger.group or group,
                mode=plan.logger.mode,
                tags=plan.logger.tags,
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
        with partial.open("w") as out:

            def emit(phase: str, rows: list[dict[str, Any]], records: dict[str, list[Any]]) -> None:
                for row in rows:
                    out.write(json.dumps(row) + "\n")
                out.flush()
                for name, recs in records.items():
                    _write_records(run_dir / "records" / phase / f"{name}.jsonl", recs)
                tracker.log_rows(rows)
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

            def probe(phase: str) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
                all_rows: list[dict[str, Any]] = []
                all_records: dict[str, list[Any]] = {}
                for p in plan.probes:
                    t0 = time.perf_counter()
                    result = p.run(policy, probe_ctx)
                    rows = result.rows(phase, **context, seconds=round(time.perf_counter() - t0, 2))
                    emit(phase, rows, {p.name: result.records})
                    all_rows += rows
                    all_records[p.name] = result.records
                return all_rows, all_records

            artifacts: dict[str, Any] = {}
            reward_models = _RunRewardModel(plan.reward_model, artifacts, run_dir, tracker)
            if plan.reward_model and not _trained_in_run(plan.reward_model):
                reward_models.get()  # bad arguments fail now, not after the base probes
            key = _base_key(plan, env)
            if key is not None and key in _BASE_RESULTS:
                log.info(
                    "base-model probes: reusing this sweep's results (same model, probes, seed)"
                )
                rows, records = _BASE_RESULTS[key]
                emit("base", [{**r, **context} for r in rows], records)
            else:
                base = probe("base")
                if key is not None:  # only complete evaluations are shared
                    _BASE_RESULTS[key] = base
            for label, phase in plan.phases:
                log.info("phase %s: training", label)
                # Training must not depend on how much randomness the probes consumed (or
                # whether base results were reused): adapters are initialised from this seed.
                transformers.set_seed(plan.seed)
                phase_ctx = PhaseContext(
                    run_dir / "phases" / label,
                    plan.seed,
                    tracker.report_to,
                    plan.progress,
                    artifacts=artifacts,
                    reward_model_factory=reward_models.get if plan.reward_model else None,
                )
                policy = phase.run(policy, env, phase_ctx)
                emit(label, [{**r, "phase": label, **context} for r in phase_ctx.results], {})
                if getattr(phase, "changes_policy", True):
                    probe(label)
                else:  # e.g. the reward phase trains a reward model, not the policy
                    log.info("phase %s left the policy unchanged: no probes after it", label)
        partial.rename(final)
        ok = True
    except BaseException as e:
        failed.write_text(f"{type(e).__name__}: {e}\n")
        raise
    finally:
        tracker.finish(ok)
    return final


def _trained_in_run(spec: tuple[str, dict[str, Any]]) -> bool:
    """True for ``learned`` without a path: the reward model this run's reward phase trains."""
    return spec[0] == "learned" and spec[1].get("path") is None


class _RunRewardModel:
    """Builds the run's reward model when a phase first asks for it, and records how.

    ``learned`` without a path uses the reward model that this run's ``reward`` phase trained
    (rebuilt if a later ``reward`` phase trains another). The constructor arguments and the
    plugin's origin go to ``reward_model.json`` in the run dir and to the W&B config.
    """

    def __init__(
        self,
        spec: tuple[str, dict[str, Any]] | None,
        artifacts: dict[str, Any],
        run_dir: Path,
        tracker: Any,
    ) -> None:
        self.spec, self.artifacts, self.run_dir, self.tracker = spec, artifacts, run_dir, tracker
        self._built: tuple[dict[str, Any], Any] | None = None

    def get(self) -> Any:
        from intentgym.reward_models import REWARD_MODELS

        assert self.spec is not None
        name, kwargs = self.spec[0], dict(self.spec[1])
        if name == "learned" and kwargs.get("path") is None and "reward_model" in self.artifacts:
            kwargs["path"] = self.artifacts["reward_model"]
        if self._built is None or self._built[0] != kwargs:
            instance: Any = REWARD_MODELS.build(name, **kwargs)
            info = instance.registry_info.as_dict()
            (self.run_dir / "reward_model.json").write_text(json.dumps(info, indent=2) + "\n")
            self.tracker.update_config({"reward_model": info})
            log.info("reward model %s (%s) built with %s", name, info["origin"], kwargs)
            self._built = (kwargs, instance)
        return self._built[1]


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in records:
            f.write(json.dumps(r, default=str) + "\n")


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)
