"""``intentgym run|config|report|list`` and ``intentgym --version``.

``run`` hands its arguments to Hydra (``@hydra.main``): overrides, ``-m`` sweeps, launchers and
Hydra's flags (``--cfg job``, ``-cn``, ...). Group choices and framings are checked before Hydra
starts, so a typo fails with one line naming the bad value and the valid ones; every composed
config is validated again (keys and types) when its job starts. ``config`` composes and
validates the same config without running it; ``report``, ``list`` and ``config`` parse their
arguments with argparse, so each takes ``--help``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from intentgym import distributed
from intentgym.errors import IntentgymError, invalid_choice
from intentgym.sweep_status import FAILED_JOBS

CONF_DIR = Path(__file__).parent / "conf"


def register_resolvers() -> None:
    """``${intentgym_id:}``: a random 8-hex id, one per process (cached), for unique run dirs."""
    import secrets

    if not OmegaConf.has_resolver("intentgym_id"):
        OmegaConf.register_new_resolver(
            "intentgym_id", lambda: secrets.token_hex(4), use_cache=True
        )


register_resolvers()
GROUPS = ("model", "env", "trainer", "reward_model", "probes", "logger", "experiment", "debug")
USAGE = """usage: intentgym [--version] COMMAND [ARGS]

commands:
  run [OVERRIDES]      run an experiment (Hydra overrides, -m for sweeps), e.g.
                       intentgym run -m env.framing=secure,insecure_hidden seed=0,1
  config [OVERRIDES]   the config `run` would use, validated, without running it: every phase's
                       and probe's settings with their defaults and help, e.g.
                       intentgym config trainer=rlhf debug=smoke
  report DIR           comparison table, CSV and plot for a run or multirun directory
  list                 registered envs, trainers, reward models (plugins included), probes, models
  export-probes --format lm-eval|inspect DIR
                       the probe items as lm-evaluation-harness or Inspect tasks

`intentgym COMMAND --help` describes a command; `intentgym --version` prints the version.
"""

RUN_USAGE = """usage: intentgym run [-m] [HYDRA FLAGS] [OVERRIDES...]

Run an experiment: probe the base model, train each phase of the trainer and probe again after
each, then write results, records, adapters and a report to the run directory
(outputs/DATE/TIME; multirun/DATE/TIME/N for a sweep).

overrides (Hydra syntax):
  GROUP=OPTION   pick a config group's option, e.g. trainer=rlhf env=feedback debug=smoke
  KEY=VALUE      change a setting, e.g. seed=3 trainer.phases.sft.epochs=2 probes=quick
  +KEY=VALUE     add a key the config does not list (e.g. +reward_model.ARG=VALUE); ~KEY drops one
  -m             a sweep (multirun): each comma-separated value runs as one job, e.g.
                 intentgym run -m env.framing=secure,insecure_hidden seed=0,1
                 (the report over all jobs is printed at the end)

config groups (GROUP=OPTION):
{groups}

Before running: `intentgym config [OVERRIDES]` shows the validated settings with defaults and
help, `intentgym run --cfg job [OVERRIDES]` the composed YAML. Hydra's own flags (--cfg,
--config-name, --multirun, launchers, ...): `intentgym run --hydra-help`.
"""


def search_dirs(args: list[str]) -> list[Path]:
    """Config folders a command adds to the search path: Hydra's ``--config-dir DIR`` (``-cd``)
    and ``hydra.searchpath=[file://DIR,...]``. Their group options (``env/NAME.yaml``, ...)
    are valid choices like the packaged ones: a new component is one file plus one config."""
    dirs: list[Path] = []
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(Path(args[i + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.partition("=")[2]))
        elif arg.startswith("hydra.searchpath="):
            value = arg.partition("=")[2].strip("[]")
            dirs += [Path(v.strip().removeprefix("file://")) for v in value.split(",") if v.strip()]
    return [d.expanduser().resolve() for d in dirs]


#: extra config folders of the current command (set by ``run`` and ``config``)
SEARCH_DIRS: list[Path] = []


#: our launcher configs (conf/hydra/launcher/) -> (plugin module, pip install hint)
LAUNCHER_PLUGINS = {
    "parallel": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
}


def process_overrides(overrides: list[str]) -> list[str]:
    """Under ``accelerate launch`` / ``torchrun`` (``WORLD_SIZE`` > 1): every process gets the
    main process's run and sweep dir (Hydra would name one per process: the time and the random
    id differ), and the other processes write no ``.hydra/`` and log to a file of their own."""
    if distributed.world_size() <= 1:
        return []
    import secrets
    from datetime import datetime

    distributed.init()
    stamp = distributed.broadcast(
        f"{datetime.now():%Y-%m-%d}/{datetime.now():%H-%M-%S-%f}-{secrets.token_hex(4)}"
    )
    given = {o.split("=", 1)[0] for o in overrides}
    out = [
        f"{key}={root}/{stamp}"
        for key, root in (("hydra.run.dir", "outputs"), ("hydra.sweep.dir", "multirun"))
        if key not in given
    ]
    if not distributed.is_main():
        out += [
            "hydra.output_subdir=null",
            f"hydra.job_logging.handlers.file.filename={distributed.scratch_root()}/intentgym.log",
        ]
    return out


def check_launcher(overrides: list[str]) -> None:
    """``hydra/launcher=NAME`` whose plugin is not installed: one line saying what to install
    (Hydra's own message is a composition traceback)."""
    import importlib.util

    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") != "hydra/launcher" or value not in LAUNCHER_PLUGINS:
            continue
        module, package = LAUNCHER_PLUGINS[value]
        if importlib.util.find_spec(module) is None:
            raise IntentgymError(
                f"hydra/launcher={value} needs the {package} plugin: "
                f'pip install "intentgym[cluster]" (or pip install {package})'
            )


def group_options(group: str) -> list[str]:
    options = {p.stem for d in (CONF_DIR, *SEARCH_DIRS) for p in (d / group).glob("*.yaml")}
    if group == "reward_model":  # plugins have no YAML file; see register_plugin_configs
        from intentgym.reward_models import REWARD_MODELS

        options |= set(REWARD_MODELS.names())
    return sorted(options)


def register_plugin_configs() -> None:
    """Make ``reward_model=NAME`` work for registry entries without a YAML file (plugins).

    Each gets a config node ``{name: NAME}`` in Hydra's ConfigStore; its keyword arguments are
    added with ``+reward_model.KEY=VALUE`` (the node does not list them). Reading the names
    imports no plugin module.
    """
    from hydra.core.config_store import ConfigStore

    from intentgym.reward_models import REWARD_MODELS

    files = {p.stem for p in (CONF_DIR / "reward_model").glob("*.yaml")}
    store = ConfigStore.instance()
    for name in REWARD_MODELS.names():
        if name in files:
            continue
        group, _, option = f"reward_model/{name}".rpartition("/")
        store.store(group=group, name=option, node={"name": name})


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from intentgym.runner import execute, plan_run
    from intentgym.runstate import RunInterrupted

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    group = Path(hc.sweep.dir).name if multirun else None
    raw: Any = OmegaConf.to_container(cfg, resolve=True)
    # a sweep's jobs share base-model probe results on disk, whatever process runs them
    base_cache = Path(hc.sweep.dir) / ".base_cache" if multirun else None
    scratch = None
    if not distributed.is_main():  # only the main process writes the run dir (distributed.py)
        scratch = Path(distributed.scratch_run_dir())
        if raw.get("resume") and run_dir.is_dir():
            import shutil

            shutil.copytree(run_dir, scratch, dirs_exist_ok=True)
        run_dir = scratch
        raw["logger"] = {**raw.get("logger", {}), "name": "none"}  # one W&B run, the main one's
    distributed.barrier()
    try:
        plan = plan_run(raw)
        execute(plan, run_dir, group=group, base_cache=base_cache)
    except Exception as e:
        if not isinstance(e, IntentgymError) and not multirun:
            raise  # a bug in a single run: the traceback helps (execute wrote FAILED)
        message = str(e) if isinstance(e, IntentgymError) else f"{type(e).__name__}: {e}"
        run_dir.mkdir(parents=True, exist_ok=True)
        failed = run_dir / "FAILED"
        if not failed.exists():  # execute writes its own; a plan error has none yet
            failed.write_text(f"{message}\n")
        print(f"error: {message}", file=sys.stderr)
        if isinstance(e, RunInterrupted):  # the whole command stops, not just this job
            raise SystemExit(130) from None
        if not multirun:
            raise SystemExit(2) from None
        # In a sweep the other jobs still run; the report lists this one as failed and the
        # command exits with status 2 at the end.
        FAILED_JOBS.add(str(run_dir.resolve()))
    finally:
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)


# Hydra flags that take a value: the value is not an override.
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--info",
    "-i",
    "--experimental-rerun",
}


def overrides_in(args: list[str]) -> list[str]:
    """The override arguments among Hydra's command-line arguments."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _FLAGS_WITH_VALUE
        else:
            out.append(arg)
    return out


def _experiment_env(name: str) -> str | None:
    """The env an experiment config selects (``override /env: NAME``), if any."""
    import yaml

    path = CONF_DIR / "experiment" / f"{name}.yaml"
    if not path.is_file():
        return None
    for entry in (yaml.safe_load(path.read_text()) or {}).get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.removeprefix("override ").strip("/") == "env":
                    return str(value)
    return None


def precheck(overrides: list[str]) -> None:
    """Reject unknown group options and framings before Hydra composes anything.

    Only plain values and simple sweeps are checked here; anything else (glob, range, interval
    sweeps) is left to Hydra, and every composed config is validated again when its job starts.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from intentgym.apikeys import check_overrides
    from intentgym.envs import ENVS, env_framings

    # a literal key on the command line is refused before Hydra writes it to .hydra/
    check_overrides(overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:  # Hydra's own message is precise; keep it on one line
        raise IntentgymError(" ".join(str(e).split())) from None
    env_name = "insecure_code"
    env_set = False
    framings: list[str] = []
    for o in parsed:
        key = o.key_or_group.removeprefix("+")
        try:
            values = (
                [str(v) for v in o.sweep_string_iterator()]
                if o.is_sweep_override()
                else [o.get_value_element_as_str()]
            )
        except Exception:  # a glob or range sweep: Hydra expands it against the config
            continue
        if key in GROUPS and not o.is_delete():
            options = group_options(key)
            for v in values:
                if v not in options and v != "null":
                    raise invalid_choice(key, v, options)
            if key == "env":
                env_name = values[0]
                env_set = True
            elif key == "experiment" and not env_set:
                env_name = _experiment_env(values[0]) or env_name
        elif key == "env.name":
            env_name = values[0]
        elif key in ("env.framing", "env.rater"):  # the Feedback env's framing is its rater
            framings = values
        elif key == "algorithm":
            from intentgym.trainers.rl import ALGORITHMS

            for v in values:
                if v not in ALGORITHMS:
                    raise invalid_choice("algorithm", v, ALGORITHMS)
        elif key == "reasoning_frame":
            from intentgym.trainers.deliberative import REASONING_FRAMES

            for v in values:
                if v not in REASONING_FRAMES:
                    raise invalid_choice("reasoning_frame", v, REASONING_FRAMES)
    if env_name in ENVS:
        valid = env_framings(env_name)
        for f in framings:
            if f not in valid:
                raise invalid_choice(f"framing for env {env_name}", f, valid)


def run_usage() -> str:
    """``intentgym run --help``: the command, override syntax and each config group's options."""
    width = max(len(g) for g in GROUPS)
    groups = "\n".join(f"  {g:{width}}  {', '.join(group_options(g))}" for g in GROUPS)
    return RUN_USAGE.format(groups=groups)


def run(args: list[str]) -> None:
    if "-h" in args or "--help" in args:  # ours, not Hydra's app help; --hydra-help is Hydra's
        print(run_usage())
        return
    SEARCH_DIRS[:] = search_dirs(args)
    if "--dry-run" in args:  # the validated plan, nothing loaded or run
        from intentgym.config_view import plan_text

        rest = [a for a in args if a != "--dry-run"]
        extra = [f"hydra.searchpath=[{','.join(f'file://{d}' for d in SEARCH_DIRS)}]"]
        print(
            plan_text(
                overrides_in(rest)
                + (
                    extra
                    if SEARCH_DIRS and not any(a.startswith("hydra.searchpath=") for a in rest)
                    else []
                )
            )
        )
        return
    precheck(overrides_in(args))
    register_plugin_configs()
    args = [*args, *process_overrides(overrides_in(args))]
    sys.argv = ["intentgym", *args]
    check_launcher(overrides_in(args))
    hydra_main()
    if FAILED_JOBS:
        failed = sorted(FAILED_JOBS)
        raise IntentgymError(f"{len(failed)} sweep job(s) failed: {', '.join(failed)}")


def config_main(args: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="intentgym config",
        description="Compose and validate the config `intentgym run OVERRIDES` would use, and "
        "print it without running anything: the run's model, env, seed, limits, reward model "
        "and logger, then every setting of each trainer phase and probe with its value, its "
        "default (* = the value differs) and its help. Bad overrides fail as `run` would.",
        epilog="e.g. intentgym config trainer=rlhf debug=smoke",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="OVERRIDES", help="Hydra overrides, as for `run`"
    )
    parser.add_argument(
        "--config-dir", "-cd", action="append", default=[], metavar="DIR",
        help="a folder of your own configs (env/, trainer/, ...), as for `run`",
    )  # fmt: skip
    from intentgym.config_view import config_text

    parsed = parser.parse_args(args)
    overrides = list(parsed.overrides)
    if parsed.config_dir:
        dirs = ",".join(f"file://{Path(d).expanduser().resolve()}" for d in parsed.config_dir)
        overrides.append(f"hydra.searchpath=[{dirs}]")
    print(config_text(overrides))


def list_main(args: list[str]) -> None:
    import argparse

    argparse.ArgumentParser(
        prog="intentgym list",
        description="List the registered envs (with their framings), trainers (with their "
        "phases), reward models (plugins included), probes and their data, probe suites, "
        "models and experiments.",
    ).parse_args(args)
    list_components()


def list_components() -> None:
    from intentgym.envs import ENVS, make_env
    from intentgym.envs import env_id as env_id_of
    from intentgym.models import BUILTIN_MODELS
    from intentgym.probes import PROBES, available_sets, load_set
    from intentgym.probes.data_files import builtin as builtin_data
    from intentgym.probes.data_files import read_rows
    from intentgym.reward_models import REWARD_MODELS

    print("envs:")
    for name in ENVS.names():
        if "/" in name:
            continue  # a plugin, listed under its bare name too
        env_id = env_id_of(name)
        info = make_env(name, framing=_first_framing(name)).describe()
        framings = ", ".join(info.pop("framings"))
        extra = ", ".join(f"{k}={v}" for k, v in info.items())
        print(f"  {name:22s} {env_id}  framings: {framings}  ({extra})")
    print("trainers:")
    for name in group_options("trainer"):
        phases = (
            yaml.safe_load((CONF_DIR / "trainer" / f"{name}.yaml").read_text()).get("phases") or {}
        )
        print(f"  {name:22s} phases: {' -> '.join(phases) or '(none: base probes only)'}")
    print("reward models:")
    names = REWARD_MODELS.names()
    for name in names:
        origin = REWARD_MODELS.origin(name)
        bare = name.rpartition("/")[2]
        if "/" in name and bare in names and REWARD_MODELS.origin(bare) == origin:
            continue  # shown under its bare name
        where = "" if origin == "built-in" else f" [plugin: {origin}, also {origin}/{bare}]"
        print(f"  {name:22s} {REWARD_MODELS.describe(name)}{where}")
    print("probes:")
    for name in PROBES.names():
        print(f"  {name:22s} {PROBES.describe(name)}")
    for set_name in available_sets():
        print(f"    forced-choice set {set_name}: {len(load_set(set_name))} items")
    for data_name, path in builtin_data().items():
        rows = read_rows(path)
        extra = ""
        if rows and "paraphrases" in rows[0]:
            extra = f", {sum(len(r['paraphrases']) for r in rows)} paraphrases"
        print(f"    data {data_name}: {len(rows)} items{extra}")
    print("probe suites:", ", ".join(group_options("probes")))
    print("models:", ", ".join(BUILTIN_MODELS), "(or any hub id / local path via model.name=...)")
    print("experiments:", ", ".join(group_options("experiment")))


def export_main(args: list[str]) -> None:
    import argparse

    from intentgym.export import DEFAULT_MODEL, FORMATS, FREE_FORM, SCORINGS, export_probes

    parser = argparse.ArgumentParser(
        prog="intentgym export-probes",
        description="Write the probe items as tasks of another evaluation harness. lm-eval: one "
        "lm-evaluation-harness multiple_choice task per forced-choice set plus a group, with "
        "the exact prompt and continuation strings intentgym scores (rendered with --model's "
        "chat template) and a utils.py computing intentgym's metrics. inspect: an Inspect task "
        "file (one @task per forced-choice set and per free-form question file) and its "
        "datasets as JSONL.",
        epilog="e.g. intentgym export-probes --format lm-eval lm_eval_tasks --model smollm2-135m",
    )
    parser.add_argument("out_dir", metavar="DIR", help="folder to write (created if missing)")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument(
        "--sets", default="", help="forced-choice sets, comma-separated (default: all built-in)"
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"lm-eval: whose chat template renders the prompts (default {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--scoring",
        default="answer",
        choices=SCORINGS,
        help="lm-eval: answer (intentgym's default: each option's text), label ((A)/(B), both "
        "orders) or both",
    )
    parser.add_argument(
        "--questions",
        default=",".join(FREE_FORM),
        help="inspect: free-form question files (built-in names or paths), comma-separated",
    )
    parser.add_argument(
        "--max-items", type=int, default=0, help="only the first N items of each set (0: all)"
    )
    parsed = parser.parse_args(args)
    if parsed.max_items < 0:
        raise IntentgymError(f"--max-items must be >= 0, got {parsed.max_items}")
    sets = [s.strip() for s in parsed.sets.split(",") if s.strip()] or None
    kwargs: dict[str, Any] = {"sets": sets, "max_items": parsed.max_items}
    if parsed.fmt == "lm-eval":
        kwargs.update(model=parsed.model, scoring=parsed.scoring)
    else:
        kwargs["free_form"] = [q.strip() for q in parsed.questions.split(",") if q.strip()]
    result = export_probes(parsed.fmt, parsed.out_dir, **kwargs)
    print(f"wrote {len(result.files)} files to {result.out_dir}")
    for kind, tasks in result.tasks.items():
        print(f"  {kind}: {', '.join(tasks)}")
    for note in result.notes:
        print(f"note: {note}")
    if result.format == "lm-eval":
        print(
            f"run: lm_eval --model hf --model_args pretrained=PATH --include_path "
            f"{result.out_dir} --tasks {','.join(result.tasks)}  (no --apply_chat_template)"
        )
    else:
        print(f"run: inspect eval {result.out_dir / 'intentgym_tasks.py'} --model MODEL")


def _first_framing(name: str) -> str:
    from intentgym.envs import env_framings

    return env_framings(name)[0]


def main(argv: list[str] | None = None) -> None:
    from intentgym.offline import disable_telemetry

    disable_telemetry()  # before huggingface_hub is first imported: it reads these at import
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if args[0] == "--version":
        from intentgym import __version__

        print(f"intentgym {__version__}")
        return
    command, rest = args[0], args[1:]
    try:
        if command == "run":
            run(rest)
        elif command == "report":
            from intentgym.report import report_main

            report_main(rest)
        elif command == "config":
            config_main(rest)
        elif command == "list":
            list_main(rest)
        elif command == "export-probes":
            export_main(rest)
        else:
            raise invalid_choice(
                "command", command, ["config", "export-probes", "list", "report", "run"]
            )
    except IntentgymError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
