"""Where a run is (phase, optimiser step), interruption by signals, and fault injection.

The runner installs SIGTERM/SIGINT handlers for the duration of a run. Outside training a signal
interrupts at once; inside a trainer (every HF/TRL trainer gets :func:`trainer_callbacks`) the
current optimiser step finishes, a checkpoint is saved when the phase checkpoints, and the run
stops with :class:`RunInterrupted` ("interrupted by SIGTERM in phase sft at step 3"), which the
runner writes to ``FAILED``. ``resume=true`` then continues from the last completed phase, or from
the phase's last training checkpoint.

Fault injection, for tests: ``INTENTGYM_FAULT=<action>@<phase>:<step>`` makes the run, at the end
of that optimiser step of that phase, ``kill`` itself with SIGKILL (nothing can be saved: the
hardest case for resume) or send itself ``term`` (SIGTERM: the graceful path).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from intentgym.budget import COUNTERS
from intentgym.errors import IntentgymError

FAULT_VARIABLE = "INTENTGYM_FAULT"


class RunInterrupted(IntentgymError):
    """The run was stopped by a signal; completed phases (and checkpoints) are kept."""


@dataclass
class RunState:
    phase: str = "setup"
    step: int | None = None
    #: True while an optimiser loop runs (a signal then stops it at the end of the step)
    training: bool = False
    #: the name of the signal received, once one is
    requested: str | None = None

    def where(self) -> str:
        step = f" at step {self.step}" if self.step is not None else ""
        return f"in phase {self.phase}{step}"

    def interrupted(self) -> RunInterrupted:
        return RunInterrupted(f"interrupted by {self.requested} {self.where()}")


STATE = RunState()


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`RunInterrupted` while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        STATE.requested = signal.Signals(signum).name
        if not STATE.training:  # in training the step callback stops at the end of the step
            raise STATE.interrupted()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    STATE.requested = None
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def enter_phase(label: str) -> None:
    STATE.phase, STATE.step, STATE.training = label, None, False


def step_done(step: int) -> bool:
    """Record a finished optimiser step; inject a fault if asked. True when a signal asked the
    run to stop (the caller saves what it can, then raises ``STATE.interrupted()``)."""
    STATE.step = step
    _inject(step)
    return STATE.requested is not None


def _inject(step: int) -> None:
    fault = os.environ.get(FAULT_VARIABLE, "")
    action, _, where = fault.partition("@")
    phase, _, at = where.partition(":")
    if not fault or phase != STATE.phase or not at.isdigit() or int(at) != step:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        raise IntentgymError(f"{FAULT_VARIABLE}={fault!r}: the action must be kill or term")


class TrainingDiverged(IntentgymError):
    """Non-finite loss or gradients: the phase stops before the model is saved or probed."""


def diverged(what: str, step: int) -> TrainingDiverged:
    return TrainingDiverged(
        f"phase {STATE.phase} diverged at step {step}: {what}; lower the learning rate "
        "(or use finetune=lora) and run again"
    )


def check_finite_gradients(model: Any, step: int) -> None:
    """Raise :class:`TrainingDiverged` when any gradient holds NaN or infinity."""
    import torch

    for name, param in model.named_parameters():
        if param.grad is not None and not bool(torch.isfinite(param.grad).all()):
            raise diverged(f"non-finite gradient in {name}", step)


def check_finite_loss(loss: float, step: int) -> None:
    if not math.isfinite(loss):
        raise diverged(f"the loss is {loss}", step)


def trainer_callbacks() -> list[Any]:
    """Callbacks for every HF/TRL trainer of a phase: step tracking, graceful stop, faults."""
    from transformers import TrainerCallback

    class StepCallback(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if step_done(state.global_step):
                if args.save_strategy != "no":
                    control.should_save = True  # on_save raises once the checkpoint is written
                else:
                    raise STATE.interrupted()

        def on_pre_optimizer_step(
            self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
        ) -> None:
            # a diverged step must not become the next phase's starting point
            if model is not None:
                check_finite_gradients(model, state.global_step + 1)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            # TRL's online trainers sample inside the trainer: count what they report generating
            # (mean completion length x completions per optimiser step x logged steps)
            length = (logs or {}).get("completions/mean_length")
            if isinstance(length, int | float) and math.isfinite(length):
                per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
                COUNTERS.generated_tokens += round(length * per_step * args.logging_steps)
            for key in ("loss", "train_loss"):
                value = (logs or {}).get(key)
                if isinstance(value, int | float) and not math.isfinite(value):
                    raise diverged(f"the training {key} is {value}", state.global_step)

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if STATE.requested is not None:
                raise STATE.interrupted()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            STATE.training = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # the trainer's own totals: a phase resumed from a checkpoint counts the steps and
            # tokens before the interruption too, so its budget equals an uninterrupted one's
            STATE.training = False
            COUNTERS.optimiser_steps += int(state.global_step)
            COUNTERS.trained_tokens += int(getattr(state, "num_input_tokens_seen", 0) or 0)

    return [StepCallback()]
