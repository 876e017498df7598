"""Data-parallel runs under ``accelerate launch`` (or ``torchrun``): one process per GPU or CPU
worker, every process running the same run in lockstep.

How a run is split (docs/scaling.md):

* **Training**: TRL's trainers are data-parallel by themselves (DDP, FSDP or DeepSpeed, whatever
  the accelerate config says); each process sees its share of every batch.
* **Generation and scoring**: :func:`intentgym.generation.generate` and
  :mod:`intentgym.scoring` give each process every ``world``-th batch (:func:`my_batches`) and
  gather the results (:func:`gather_batches`), so every process ends with all answers, in order.
  A batch is the same batch, with the same seed, as in a one-process run: the answers are the
  same, whatever the number of processes.
* **Everything after** (judges, metrics, intervals) is computed by every process on the same
  gathered answers, which keeps the processes in lockstep (a process that skipped work would
  deadlock the next gather).
* **Files**: only the main process writes the run dir. The others run with a private scratch
  dir (:func:`scratch_run_dir`), removed at the end, so no file is written twice.

A single process (no ``WORLD_SIZE`` in the environment, or 1) skips all of this: no process
group is created and the gathers are the identity.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """Processes in this run (``WORLD_SIZE``, set by accelerate launch and torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) through accelerate's ``PartialState``,
    which TRL's trainers then share. A no-op for one process."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState()


def _ready() -> bool:
    if world_size() <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        init()
    return dist.is_initialized()


def broadcast(obj: T) -> T:
    """The main process's ``obj`` on every process."""
    if not _ready():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def barrier() -> None:
    if _ready():
        import torch.distributed as dist

        dist.barrier()


def my_batches(n_batches: int) -> range:
    """The batch indices this process computes: every ``world``-th, starting at its rank."""
    if world_size() <= 1:
        return range(n_batches)
    return range(rank(), n_batches, world_size())


def gather_batches(results: Sequence[tuple[int, T]], n_batches: int) -> list[T]:
    """Every process's ``(batch index, result)`` pairs, gathered on every process and returned
    in batch order (one result per batch)."""
    if not _ready():
        ordered = sorted(results, key=lambda r: r[0])
        return [r for _, r in ordered]
    import torch.distributed as dist

    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, list(results))
    merged = sorted((pair for part in parts for pair in part), key=lambda r: r[0])
    if [i for i, _ in merged] != list(range(n_batches)):
        raise RuntimeError(f"gathered batches {[i for i, _ in merged]} != 0..{n_batches - 1}")
    return [r for _, r in merged]


def check_supported() -> None:
    """Refuse weight-sharding launches (FSDP, DeepSpeed ZeRO-3) before any work: the probes and
    the phases that generate (best-of-n, CAI, deliberative, steer-distill) call the model outside
    the trainer, batch by batch and differently on each process, which needs the whole weights on
    every process. DDP and ZeRO-1/2 keep them whole."""
    from intentgym.errors import IntentgymError

    env = os.environ.get
    if env("ACCELERATE_USE_FSDP", "").lower() == "true":
        sharding = "FSDP"
    elif (
        env("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
        and env("ACCELERATE_DEEPSPEED_ZERO_STAGE", "") == "3"
    ):
        sharding = "DeepSpeed ZeRO-3"
    else:
        return
    raise IntentgymError(
        f"{sharding} shards the weights, and intentgym's probes need them whole on every process: "
        "launch with configs/accelerate/ddp.yaml or zero2.yaml (docs/scaling.md)"
    )


def device_for(device: str) -> str:
    """``cuda`` becomes this process's GPU (``cuda:LOCAL_RANK``) in a multi-process run."""
    if device == "cuda" and world_size() > 1:
        return f"cuda:{local_rank()}"
    return device


@functools.cache
def scratch_root() -> str:
    """This non-main process's private folder (its log, its copies of run dirs), removed when
    the process exits."""
    import atexit
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix=f"intentgym-rank{rank()}-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def scratch_run_dir() -> str:
    """A private folder for a non-main process's copy of the run dir (see the module docstring)."""
    import tempfile

    return tempfile.mkdtemp(prefix="run-", dir=scratch_root())
