"""API keys live in environment variables; configs only ever hold the variable's NAME.

A config (or a command-line override) that holds a key itself would leak it: Hydra writes
``.hydra/overrides.yaml`` and ``.hydra/config.yaml`` before the job starts, the runner writes
``config.yaml``, and W&B uploads the config. So:

* :func:`check_overrides` refuses such a command line before Hydra starts (``cli.precheck``);
* :func:`check_no_literal_secrets` refuses such a composed config before any work (``plan_run``);
* :func:`check_endpoint_keys` fails at plan time, with one line, when an endpoint the run will
  call (``backend=openai``, ``feedback_backend=openai``) names a key variable that is not set;
* :func:`resolve_api_key` is the one place a key's value is read (by the components that call an
  endpoint). The value goes into the HTTP client's headers and nowhere else: recorded constructor
  arguments (``registry_info``, ``reward_model.json``, the W&B config) hold the variable's name.

No error message ever contains a suspected key: only where it was found.

What counts as a literal secret (:func:`find_literal_secrets`), conservatively:

* a non-empty string under a key named like a secret: ``api_key``, ``apikey``, ``token``,
  ``secret``, ``secret_key``, ``password``, ``passwd``, alone or as the last part of a key
  (``openai_api_key``, ``hf_token``, ``client_secret``); not ``*_env`` (a variable's name) and not
  a tokenizer's special tokens (``pad_token``, ``eos_token``, ...);
* any string whose whole value (optionally after ``Bearer ``) has the shape of a provider key
  (:data:`KEY_PATTERNS`): ``sk-`` + 20 or more of ``[A-Za-z0-9_-]`` (OpenAI, Anthropic and
  others), ``hf_`` + 20 or more letters/digits (Hugging Face), ``wandb_v1_`` + 20 or more
  (W&B's prefixed keys) and ``local-`` + 40 hex digits (W&B server), ``ghp_``/``gho_``/``ghu_``/
  ``ghs_``/``ghr_`` + 30 or more and ``github_pat_`` + 20 or more (GitHub), ``AKIA`` + 16
  (AWS access key id), ``AIza`` + 35 (Google), ``xox[abprs]-`` + 10 or more (Slack).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from intentgym.errors import IntentgymError

log = logging.getLogger(__name__)

#: last parts of a key name that mark its value as a secret
_SECRET_KEY = re.compile(r"(?:^|_)(?:api_?key|apikey|token|secret|secret_?key|password|passwd)$")
#: tokenizer settings that end in ``_token`` and hold a token string, not a credential
_TOKENIZER_KEYS = frozenset(
    f"{t}_token" for t in ("pad", "eos", "bos", "unk", "sep", "cls", "mask", "additional_special")
)

#: (provider, pattern) for the whole of a string value
KEY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("OpenAI-style", r"sk-[A-Za-z0-9_-]{20,}"),
        ("Hugging Face", r"hf_[A-Za-z0-9]{20,}"),
        ("W&B", r"wandb_v\d+_[A-Za-z0-9_]{20,}"),
        ("W&B server", r"local-[0-9a-f]{40}"),
        ("GitHub", r"gh[pousr]_[A-Za-z0-9]{30,}"),
        ("GitHub", r"github_pat_[A-Za-z0-9_]{20,}"),
        ("AWS", r"AKIA[0-9A-Z]{16}"),
        ("Google", r"AIza[0-9A-Za-z_-]{35}"),
        ("Slack", r"xox[abprs]-[A-Za-z0-9-]{10,}"),
    )
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXAMPLE = "(e.g. reward_model.api_key_env=MY_KEY_VAR)"


def is_secret_key(key: str) -> bool:
    """Whether a config key's name says its value is a secret (``*_env`` names a variable)."""
    k = key.lower().replace("-", "_")
    return not k.endswith("_env") and k not in _TOKENIZER_KEYS and bool(_SECRET_KEY.search(k))


def looks_like_key(value: str) -> bool:
    """Whether a string has the shape of a provider's API key (:data:`KEY_PATTERNS`)."""
    v = value.strip()
    v = v[len("bearer ") :] if v.lower().startswith("bearer ") else v
    return any(p.fullmatch(v) for _, p in KEY_PATTERNS)


def find_literal_secrets(obj: Any, where: str = "") -> list[str]:
    """Dotted paths (``reward_model.api_key``, ``probes.x.judges[0].token``) of the values in a
    config (nested dicts and lists) that look like literal secrets (module docstring).

    ``where`` is the dotted path of ``obj`` itself ("" for a whole run config)."""
    return [path for path, _ in _walk_secrets(obj, where)]


def _walk_secrets(obj: Any, path: str, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _walk_secrets(v, f"{path}.{k}" if path else str(k), str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _walk_secrets(v, f"{path}[{i}]", key)
    elif isinstance(obj, str) and _is_literal_secret(key, obj):
        yield path, key


def _is_literal_secret(key: str, value: str) -> bool:
    v = value.strip()
    if not v:
        return False
    named = bool(key) and is_secret_key(key) and v.lower() not in ("null", "none", "???")
    return named or looks_like_key(v)


def _error(paths: list[str], keys: list[str]) -> IntentgymError:
    named = [k for k in keys if k and is_secret_key(k)]
    where = ", ".join(paths)
    verb = "looks" if len(paths) == 1 else "look"
    setting = (
        re.sub(r"(\[\d+\])+$", "", paths[0]) + "_env"
        if len(paths) == 1 and named
        else "a *_env setting"
    )
    return IntentgymError(
        f"config value {where} {verb} like a literal API key; put the key in an environment "
        f"variable and name it with {setting} {_EXAMPLE}"
    )


def check_no_literal_secrets(obj: Any, where: str = "") -> None:
    """Raise a one-line :class:`IntentgymError` naming every place in ``obj`` that holds what
    looks like a literal API key; the values are never echoed. ``where``: as for
    :func:`find_literal_secrets`."""
    found = list(_walk_secrets(obj, where))
    if found:
        raise _error([p for p, _ in found], [k for _, k in found])


def check_overrides(overrides: list[str]) -> None:
    """Refuse command-line overrides that carry a literal key (``reward_model.api_key=sk-...``,
    ``+x.token=...``, a key inside a dict or sweep value) before Hydra writes them to
    ``.hydra/overrides.yaml``. One line, naming the override's key, never its value."""
    paths: list[str] = []
    keys: list[str] = []
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep:
            continue
        key = key.lstrip("+~").strip()
        last = key.rsplit(".", 1)[-1].split("@", 1)[0]
        found = list(_walk_secrets(_override_value(override, raw), key, last))
        if not found and _tokens_look_like_key(raw):  # whatever the parser made of it
            found = [(key, last)]
        for path, k in found:
            if path not in paths:
                paths.append(path)
                keys.append(k)
    if paths:
        raise _error(paths, keys)


def _override_value(override: str, raw: str) -> Any:
    """The override's value as Hydra parses it (dicts, lists, sweeps' choices), else ``raw``."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_override(override)
        value = parsed.value()
    except Exception:
        return raw
    choices = getattr(value, "list", None)  # a choice sweep: a,b,c
    return list(choices) if isinstance(choices, list) else value


def _tokens_look_like_key(raw: str) -> bool:
    return any(looks_like_key(t) for t in re.split(r"[\s,\[\]{}:'\"()=]+", raw) if t)


# --- endpoint keys -------------------------------------------------------------------------------


def is_loopback(base_url: str | None) -> bool:
    """Whether ``base_url`` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    if not base_url:
        return False
    host = urlsplit(base_url if "://" in base_url else f"//{base_url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(
    api_key_env: str | None, base_url: str | None, *, setting: str, what: str = "endpoint"
) -> str | None:
    """The API key for an endpoint, read from the environment variable named ``api_key_env``.

    ``api_key_env`` null or "": no key (an endpoint without authentication). A variable that is
    not set (or empty) is a one-line error, except for an endpoint on this machine (a local
    vLLM or llama.cpp server usually has no key), which is then called without one. ``setting``
    is the config key that names the variable, for the message (``reward_model.api_key_env``).
    """
    if not api_key_env:
        return None
    if not _ENV_NAME.fullmatch(api_key_env):
        # never echo it: this is where a pasted key would end up
        raise IntentgymError(
            f"{setting} must be the NAME of an environment variable (letters, digits and _), "
            f"not the key itself {_EXAMPLE}"
        )
    key = os.environ.get(api_key_env)
    if key:
        return key
    if is_loopback(base_url):
        log.info("%s %s: $%s is not set; calling it without a key", what, base_url, api_key_env)
        return None
    raise IntentgymError(
        f"{what} {base_url} needs an API key: environment variable {api_key_env} is not set "
        f"(export it, name another one with {setting}=VAR, or set {setting}=null for an "
        "endpoint without a key)"
    )


#: (backend key, value) that mean "this component calls an OpenAI-compatible endpoint"
ENDPOINT_BACKENDS = (("backend", "openai"), ("feedback_backend", "openai"))
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


def check_endpoint_keys(cfg: Any, where: str = "") -> None:
    """Plan-time check of every endpoint a run config would call: any mapping (reward model,
    composite component, probe judge, trainer phase) with ``backend: openai`` or
    ``feedback_backend: openai`` and a ``base_url`` must name a key variable that is set (or
    none, or be on this machine: :func:`resolve_api_key`). One line, before any work."""
    for path, node in _mappings(cfg, where):
        if not any(node.get(k) == v for k, v in ENDPOINT_BACKENDS) or not node.get("base_url"):
            continue
        setting = f"{path}.api_key_env" if path else "api_key_env"
        resolve_api_key(
            node.get("api_key_env", DEFAULT_API_KEY_ENV),
            str(node["base_url"]),
            setting=setting,
            what=f"{path or 'the config'}: endpoint",
        )


def _mappings(obj: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(obj, Mapping):
        yield path, obj
        for k, v in obj.items():
            yield from _mappings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _mappings(v, f"{path}[{i}]")
