"""Faults injected through regx's own plugin mechanism (a `_target_`), for the fault tests.

Used as `loss._target_=fault_plugins.NaNAtStep +loss.step=17`: the tests folder is on
sys.path under pytest, and on PYTHONPATH for the subprocess runs. Each class is plain
cross-entropy except at one training step, counted over the run (1-based) from the
first call; a resumed run counts again from its own first step. A step is a new model
output: mixup calls the loss twice per step (own and partner labels) on the same one.
"""

from __future__ import annotations

import os
import signal
import time
import weakref
from pathlib import Path

import torch

from regx.losses.ce import CrossEntropy
from regx.splits.random import RandomSplit


class StepCountingCE(CrossEntropy):
    """Cross-entropy that knows the training step it is called in (1-based, this process)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self._last_outputs: weakref.ref | None = None

    def count(self, outputs: torch.Tensor) -> int:
        if self._last_outputs is None or self._last_outputs() is not outputs:
            self.steps += 1
            self._last_outputs = weakref.ref(outputs)
        return self.steps


class NaNAtStep(StepCountingCE):
    """Cross-entropy whose value is NaN at training step `step` (every sample of the batch)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = super().forward(outputs, targets)
        return loss * float("nan") if self.count(outputs) == self.step else loss


class SignalAtStep(StepCountingCE):
    """Cross-entropy that sends `signum` to its own process `times` times at step `step`.

    Only once per `marker` file (created when it fires), so the run that resumes from the
    interruption, with the very same config, trains through.
    """

    def __init__(self, step: int, marker: str, signum: int = int(signal.SIGTERM), times: int = 1):
        super().__init__()
        self.step, self.marker, self.signum, self.times = step, marker, signum, times

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.count(outputs) == self.step and not Path(self.marker).exists():
            Path(self.marker).touch()
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)
        return super().forward(outputs, targets)


class _NaNGradient(torch.autograd.Function):
    """Identity forward; NaN backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.full_like(grad, float("nan"))


class NaNGradientAtStep(StepCountingCE):
    """Cross-entropy with its true (finite) value but NaN gradients at training step `step`."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.count(outputs) == self.step:
            outputs = _NaNGradient.apply(outputs)
        return super().forward(outputs, targets)


class SignalWhileSplitting(RandomSplit):
    """A random split that sends SIGTERM to its own process first: a signal after the run
    dir is made, before training."""

    def __call__(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises in the main thread at once
        return super().__call__(*args, **kwargs)
