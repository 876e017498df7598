"""No network at run time unless the run asks for it.

* :func:`disable_telemetry` turns off the usage pings and error reports of the libraries a run
  uses. Every variable here is one the installed library reads (checked in its source):

  ========================================  ==================================================
  ``HF_HUB_DISABLE_TELEMETRY=1``             huggingface_hub's ``send_telemetry`` (TRL sends a
                                             ping from every trainer's ``__init__``; datasets
                                             and transformers go through it too) and the
                                             ``telemetry/off`` user agent of transformers
  ``DO_NOT_TRACK=1``                         the https://donottrack.sh convention;
                                             huggingface_hub reads it as the variable above
  ``HF_HUB_DISABLE_IMPLICIT_TOKEN=1``        huggingface_hub never sends a stored HF token
                                             with a request that does not need one
  ``WANDB_ERROR_REPORTING=false``            wandb-core starts with ``--no-observability``:
                                             no Sentry crash reports
  ========================================  ==================================================

  (W&B's own run data goes where ``logger.mode`` sends it: :mod:`intentgym.tracking`.)

* :func:`offline_unless_hub` also sets ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1`` and
  ``HF_DATASETS_OFFLINE=1`` when every model the run names is a built-in or a local folder, so
  nothing can reach the Hugging Face Hub; a hub id anywhere in the config leaves them alone.

Neither changes a variable the user set, to anything. A later run of the same process (a sweep's
next job) that names a hub id gets back the Hub access an earlier call took away. huggingface_hub
and datasets read these variables once, when first imported; the flags of those already imported
are recomputed from the environment (with their own formulas), so calling these late still takes
effect. Call :func:`disable_telemetry` as early as possible (``cli.main``) and both before a run
loads anything (``runner.execute``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: telemetry opt-outs (module docstring)
TELEMETRY_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "WANDB_ERROR_REPORTING": "false",
}

#: Hugging Face offline switches (huggingface_hub, transformers, datasets)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's and datasets' truthy values

#: the variables this module set (name -> value), so that a later run of the same process (a
#: sweep's next job) that needs the Hub can take back the offline switches it did not ask for
_SET_HERE: dict[str, str] = {}


def _true(value: str | None) -> bool:
    return (value or "").upper() in _TRUE


def _setdefault(values: Mapping[str, str]) -> None:
    for name, value in values.items():
        if name not in os.environ:
            os.environ[name] = value
            _SET_HERE[name] = value


def disable_telemetry() -> None:
    """Set the telemetry opt-outs (:data:`TELEMETRY_ENV`) unless the user set them already."""
    _setdefault(TELEMETRY_ENV)
    _refresh_imported()


def offline_unless_hub(model_name: str, cfg: Mapping[str, Any] | None = None) -> bool:
    """Switch the Hugging Face libraries offline (:data:`OFFLINE_ENV`, each unless already set)
    when the run needs nothing from the Hub: ``model_name`` is a built-in or a local folder and
    ``cfg`` (the run config, if given) names no hub id (:func:`hub_ids`). A run that names one
    gets back the Hub access that an earlier call of this process took away (a user's own
    setting is never changed). Returns whether Hub access is off now."""
    wanted = hub_ids(model_name, cfg)
    if wanted:
        for name in OFFLINE_ENV:
            if name in _SET_HERE and os.environ.get(name) == _SET_HERE[name]:
                del os.environ[name]
                del _SET_HERE[name]
        log.info("Hugging Face Hub access stays on: the run names %s", ", ".join(wanted))
    else:
        _setdefault(OFFLINE_ENV)
    _refresh_imported()
    return _true(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))


def _refresh_imported() -> None:
    """Recompute the flags huggingface_hub and datasets read from the environment at import
    (their own formulas), for the modules already imported."""
    env = os.environ.get
    hub: Any = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = _true(env("HF_HUB_OFFLINE") or env("TRANSFORMERS_OFFLINE"))
        hub.HF_HUB_DISABLE_TELEMETRY = (
            _true(env("HF_HUB_DISABLE_TELEMETRY"))
            or _true(env("DISABLE_TELEMETRY"))
            or _true(env("DO_NOT_TRACK"))
        )
        hub.HF_HUB_DISABLE_IMPLICIT_TOKEN = _true(env("HF_HUB_DISABLE_IMPLICIT_TOKEN"))
    datasets_config: Any = sys.modules.get("datasets.config")
    if datasets_config is not None:
        own = env("HF_DATASETS_OFFLINE")
        hub_offline = _true(env("HF_HUB_OFFLINE") or env("TRANSFORMERS_OFFLINE"))
        offline = hub_offline if own is None else _true(own)
        datasets_config.HF_HUB_OFFLINE = offline
        datasets_config.HF_DATASETS_OFFLINE = offline


#: ``org/name``: the shape of a hub id (a local path that does not exist has it too: then the
#: run is simply left online, the safe side)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
#: endings of the data files a config names, which are never model ids
_FILE_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml", ".txt", ".csv", ".py", ".gguf", ".md")


def is_hub_id(value: str) -> bool:
    """Whether a config string would be fetched from the Hub: ``org/name`` that is not a
    built-in, an existing path or a data file."""
    from intentgym.models import BUILTIN_MODELS

    v = value.strip()
    if v in BUILTIN_MODELS or not _HUB_ID.fullmatch(v) or v.lower().endswith(_FILE_SUFFIXES):
        return False
    return not Path(v).expanduser().exists()


def hub_ids(model_name: str, cfg: Mapping[str, Any] | None = None) -> list[str]:
    """The hub ids among ``model_name`` and the strings of ``cfg`` (judges, feedback models,
    teachers and reference models name theirs anywhere in it), without duplicates."""
    from intentgym.models import BUILTIN_MODELS

    found: list[str] = []
    if model_name not in BUILTIN_MODELS and not Path(model_name).expanduser().is_dir():
        found.append(model_name)
    for value in _strings(cfg):
        if value not in found and is_hub_id(value):
            found.append(value)
    return found


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, Mapping):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj
