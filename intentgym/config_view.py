"""``intentgym config [OVERRIDES]``: the config ``run`` would use, composed and validated.

The config is composed exactly as ``intentgym run`` composes it (same checks, same Hydra config
tree) and planned with :func:`intentgym.runner.plan_run`, so a bad override fails the same way.
Nothing is loaded or trained. The text lists the run's settings, then every field of each
trainer phase and each probe: its value (after ``limits``), its default and its help text, with
``*`` marking values that differ from the default.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import yaml

from intentgym.errors import IntentgymError

#: the widest a value or default column gets; longer values push the rest of their line right
_MAX_COLUMN = 28


def compose_run_config(overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resolved config ``intentgym run OVERRIDES`` would run (the ``hydra`` node left out),
    and the sweep its config declares (``hydra.sweeper.params``; empty when there is none)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    from intentgym.cli import CONF_DIR, SEARCH_DIRS, precheck, register_plugin_configs, search_dirs

    SEARCH_DIRS[:] = search_dirs(overrides)
    precheck(overrides)
    for o in OverridesParser.create().parse_overrides(overrides):  # precheck parsed them already
        if o.is_sweep_override():
            raise IntentgymError(
                f"{o.input_line}: `config` shows one job's config; give one value "
                "(sweeps are for `intentgym run -m`)"
            )
    register_plugin_configs()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="intentgym"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
        sweep = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
        sweep_params: Any = OmegaConf.to_container(sweep) if sweep is not None else {}
        with open_dict(cfg):
            del cfg["hydra"]
        raw: Any = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:  # Hydra's message, on one line
        raise IntentgymError(" ".join(str(e).split())) from None
    return raw, dict(sweep_params or {})


def config_text(overrides: list[str]) -> str:
    """What ``intentgym config OVERRIDES`` prints. Raises IntentgymError on bad input."""
    from intentgym.runner import Limits, LoggerSettings, ModelSettings, RunSettings, plan_run

    raw, sweep = compose_run_config(overrides)
    plan = plan_run(raw)
    lines = [
        f"# intentgym config {' '.join(overrides)}".rstrip(),
        "# * = differs from the default; phase and probe values are after `limits`.",
        "# The composed YAML: intentgym run --cfg job [OVERRIDES]",
    ]
    if sweep:
        arms = "  ".join(f"{k}={v}" for k, v in sweep.items())
        lines.append(f"# This config is a sweep (run -m): {arms}; shown is the config before it.")

    # RunSettings' own settings; its dict fields are the groups, shown as sections below
    own = [f.name for f in dataclasses.fields(RunSettings) if f.default is not dataclasses.MISSING]
    _section(lines, "run", _rows(RunSettings, {k: raw[k] for k in own if k in raw}))
    _section(lines, f"model ({plan.model.name})", _rows(ModelSettings, plan.model))
    _section(lines, f"env ({plan.env.name}, framing {plan.env.framing})", _env_rows(plan))
    limits = Limits(**{k: v for k, v in (raw.get("limits") or {}).items()})
    _section(lines, "limits (caps on every phase and probe; null = none)", _rows(Limits, limits))
    rm = plan.reward_model
    rm_title = f"reward_model ({rm[0]})" if rm else "reward_model (none)"
    _section(lines, rm_title, _reward_model_rows(rm) if rm else [])
    _section(lines, f"logger ({plan.logger.name})", _rows(LoggerSettings, plan.logger))

    names = " -> ".join(dict.fromkeys(label for label, _ in plan.phases))
    lines += ["", f"trainer: {plan.trainer_name} ({names or 'no phases: base probes only'})"]
    seen: dict[int, list[str]] = {}
    phases: list[tuple[list[str], Any]] = []
    for label, phase in plan.phases:  # a repeated phase (repeat: k) shares one config
        key = id(phase.config)
        if key not in seen:
            seen[key] = []
            phases.append((seen[key], phase))
        seen[key].append(label)
    for labels, phase in phases:
        title = f"phase {', '.join(labels)} ({type(phase).__name__})"
        _section(lines, title, _rows(type(phase.config), phase.config))
    lines += ["", f"probes: {', '.join(p.name for p in plan.probes) or '(none)'}"]
    for probe in plan.probes:
        _section(lines, f"probe {probe.name}", _rows(type(probe.config), probe.config))
    return "\n".join(lines)


# A row: (field, value, default, help); default is _REQUIRED when the field has none.
_REQUIRED = object()
Row = tuple[str, Any, Any, str]


def _rows(cls: type, values: Any) -> list[Row]:
    """One row per field of dataclass ``cls``; values from a mapping or an instance."""
    rows = []
    for f in dataclasses.fields(cls):
        if isinstance(values, dict):
            if f.name not in values:
                continue
            value = values[f.name]
        else:
            value = getattr(values, f.name)
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _REQUIRED
        rows.append((f.name, value, default, str(f.metadata.get("help", ""))))
    return rows


def _env_rows(plan: Any) -> list[Row]:
    """The env's constructor arguments: what the config sets, and each one's default."""
    from intentgym.envs import env_class

    params = inspect.signature(env_class(plan.env.name).__init__).parameters
    rows: list[Row] = []
    for name, p in params.items():
        if name in ("self", "render_mode") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = plan.env.framing if name == "framing" else plan.env.options.get(name, p.default)
        default = _REQUIRED if p.default is p.empty else p.default
        rows.append((name, value, default, ""))
    return rows


def _reward_model_rows(rm: tuple[str, dict[str, Any]]) -> list[Row]:
    """The reward model's arguments: its factory's parameters (with defaults) and those given."""
    from intentgym.reward_models import REWARD_MODELS

    name, kwargs = rm
    try:
        params = dict(inspect.signature(REWARD_MODELS.get(name)).parameters)
    except (TypeError, ValueError):
        params = {}
    rows: list[Row] = []
    for key, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = _REQUIRED if p.default is p.empty else p.default
        rows.append((key, kwargs.get(key, default), default, ""))
    rows += [(k, v, _REQUIRED, "") for k, v in kwargs.items() if k not in params]
    return rows


def _section(lines: list[str], title: str, rows: list[Row]) -> None:
    lines += ["", title]
    if not rows:
        return
    shown = []
    for name, value, default, help_ in rows:
        required = default is _REQUIRED
        same = not required and value == default
        text = _fmt(value)
        # a long default equal to the value is not printed twice
        shown_default = "(required)" if required else _fmt(default)
        if same and len(text) > _MAX_COLUMN:
            shown_default = "(same)"
        shown.append((name, text, shown_default, help_, " " if required or same else "*"))
    width_name = max(len(r[0]) for r in shown)
    width_value = min(_MAX_COLUMN, max(len("value"), *(len(r[1]) for r in shown)))
    width_default = min(_MAX_COLUMN, max(len("default"), *(len(r[2]) for r in shown)))
    any_help = any(r[3] for r in shown)
    header = f"    {'field':{width_name}}  {'value':{width_value}}  {'default':{width_default}}"
    lines.append((header + ("  help" if any_help else "")).rstrip())
    for name, value, default, help_, mark in shown:
        line = f"  {mark} {name:{width_name}}  {value:{width_value}}  {default:{width_default}}"
        lines.append((line + (f"  {help_}" if help_ else "")).rstrip())


def _fmt(value: Any) -> str:
    """A value as it would be written in an override (YAML flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, int | float):
        return repr(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()


# Rates measured on the 2-core reference CPU for SmolLM2-135M (docs/experiments.md; issue 20):
# LoRA SFT ~120 trained tokens/s, sampling ~108 generated tokens/s (HF generate, batch 16),
# forced-choice scoring ~12 items/s; a demonstration is ~225 tokens. Estimates for other models
# are not given: the rates do not transfer.
_RATES = {"train_tok_s": 120.0, "gen_tok_s": 108.0, "choice_items_s": 12.0, "tok_per_example": 225}
_ESTIMATED_MODELS = ("smollm2-135m",)


def plan_text(overrides: list[str]) -> str:
    """What ``intentgym run --dry-run OVERRIDES`` prints: the validated plan -- phases with their
    budgets and what they hand on, the probes and their items, where probes run -- and a rough
    time estimate. Nothing is loaded or run."""
    from intentgym.runner import plan_run

    raw, sweep = compose_run_config(overrides)
    plan = plan_run(raw)
    rm = plan.reward_model
    lines = [
        f"# intentgym run --dry-run {' '.join(overrides)}".rstrip(),
        f"model {plan.model.name}, env {plan.env.name} (framing {plan.env.framing}), "
        f"trainer {plan.trainer_name}, seed {plan.seed}, reward model {rm[0] if rm else 'none'}",
    ]
    if sweep:
        lines.append("sweep (run -m): " + "  ".join(f"{k}={v}" for k, v in sweep.items()))
    seconds = 0.0
    estimate = plan.model.name in _ESTIMATED_MODELS
    probe_passes = ["base"] + [label for label, p in plan.phases if p.changes_policy]
    lines += ["", f"probes, run {len(probe_passes)}x ({', '.join(probe_passes)}):"]
    per_pass = 0.0
    for probe in plan.probes:
        desc = probe.describe()
        cost = _probe_seconds(probe, desc)
        per_pass += cost
        lines.append(f"  {probe.name:16s} {_short(desc)}")
    seconds += per_pass * len(probe_passes)
    lines += ["", "phases:" if plan.phases else "phases: none (base-model probes only)"]
    for label, phase in plan.phases:
        budget, cost = _phase_budget(phase.config)
        seconds += cost
        made = ", ".join(a.__name__ for a in phase.produces)
        extra = f"; makes {made}" if made else ""
        probed = "" if phase.changes_policy else "; policy unchanged, no probes after it"
        lines.append(f"  {label:16s} {type(phase).__name__}: {budget}{extra}{probed}")
    lines.append("")
    if estimate:
        lines.append(
            f"estimated time: ~{max(1, round(seconds / 60))} min on a 2-core CPU (rough: from "
            "measured SFT, sampling and scoring rates; replies that stop early make it less)"
        )
    else:
        lines.append(f"estimated time: not estimated for model {plan.model.name}")
    return "\n".join(lines)


def _short(desc: dict[str, Any]) -> str:
    parts = []
    for key, value in desc.items():
        if isinstance(value, dict):
            value = f"{sum(v for v in value.values() if isinstance(v, int))} in {len(value)} sets"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _probe_seconds(probe: Any, desc: dict[str, Any]) -> float:
    c = probe.config
    if probe.name == "forced_choice":
        n = sum(desc.get("items", {}).values())
        passes = 2 if getattr(c, "scoring", "label") == "both" else 1
        return 2 * n * passes / _RATES["choice_items_s"]  # both option orders
    prompts = desc.get("prompts") or desc.get("items") or 0
    if isinstance(prompts, dict):
        prompts = sum(prompts.values())
    per = getattr(c, "samples", 1) * (2 if probe.name == "compliance_gap" else 1)
    return float(prompts) * per * getattr(c, "max_new_tokens", 0) / _RATES["gen_tok_s"]


def _phase_budget(c: Any) -> tuple[str, float]:
    n = next(
        (getattr(c, k) for k in ("num_examples", "num_pairs", "num_prompts") if hasattr(c, k)), 0
    )
    epochs = getattr(c, "epochs", 1.0)
    batch = getattr(c, "batch_size", 1) * getattr(c, "grad_accum", 1)
    # GRPO/RLOO batches count completions: num_generations per prompt
    group = getattr(c, "num_generations", 1) if getattr(c, "algorithm", "ppo") != "ppo" else 1
    steps = max(1, -(-int(n * group * epochs) // max(1, batch))) if n else 0
    max_steps = getattr(c, "max_steps", -1)
    if max_steps and max_steps > 0:
        steps = min(steps, max_steps) if steps else max_steps
    samples = getattr(c, "samples_per_prompt", None) or getattr(c, "num_generations", None) or 1
    generated = n * samples * getattr(c, "max_new_tokens", 0) if hasattr(c, "temperature") else 0
    trained = steps * batch * _RATES["tok_per_example"]
    text = f"{n} examples, {epochs:g} epoch(s), ~{steps} optimiser steps of {batch}"
    if generated:
        text += f", <= {generated:,} generated tokens"
    return text, trained / _RATES["train_tok_s"] + generated / _RATES["gen_tok_s"]
