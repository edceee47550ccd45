"""(a) One training epoch: regx against the hand-written loop and Lightning, interleaved.

regx's epoch is what `Trainer.fit` does per epoch minus validation and files (no
contender validates or writes): `_start_epoch`, `train_epoch` (which ends by reading its
device accumulators, so the clock stops after the device) and the finite-weights check.
Each repeat ("round") times `epochs_per_repeat` epochs of regx and of the hand loop,
alternating epoch by epoch (`timing.interleaved`), then Lightning's epochs; round 0 is an
untimed warm-up (allocator, kernels, cudnn autotuning).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchlib.cases import Case, build_trainer
from benchlib.hand import HandWrittenLoop, LoopInputs
from benchlib.timing import Samples, interleaved
from regx.engine.divergence import check_weights
from regx.engine.progress import EpochProgress
from regx.engine.trainer import Trainer

HAND = "hand loop"


@dataclass
class EpochResult:
    steps: int
    images: int
    device: str
    regx: Samples
    contenders: dict[str, Samples]  # by display name, e.g. "hand loop", "Lightning 2.6.6"


def regx_epoch(trainer: Trainer) -> Callable[[], None]:
    """A function that trains one more regx epoch each call."""
    progress = EpochProgress(len(trainer.batches), trainer.s.epochs, enabled=False)
    done = 0

    def run() -> None:
        nonlocal done
        epoch = done % trainer.s.epochs
        trainer._start_epoch(epoch, progress)
        trainer.train_epoch(epoch, progress)
        check_weights(trainer.model, epoch, trainer.s.precision, "", trainer.last_loss)
        done += 1

    return run


def bench_epoch(
    case: Case, repeats: int, threads: int, hand: bool, lightning_module: object | None
) -> EpochResult:
    """Seconds per epoch of regx and of each chosen contender, `repeats` interleaved rounds.

    `lightning_module` is benchlib.lightning_loop (imported by the caller) or None.
    """
    k = case.epochs_per_repeat
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(case.overrides, Path(tmp), threads)
        runs: dict[str, Callable[[], object]] = {"regx": regx_epoch(trainer)}
        if hand:
            runs[HAND] = HandWrittenLoop(LoopInputs.from_trainer(trainer)).epoch
        # Lightning's copy of the model is taken now, before anyone trains
        lightning_inputs = LoopInputs.from_trainer(trainer) if lightning_module else None
        samples = {name: Samples() for name in runs}

        def one_round(r: int) -> None:
            for name, wall_cpu in interleaved(runs, k, trainer.device, start=r).items():
                if r > 0:
                    samples[name].add(wall_cpu, k)

        if lightning_module is not None:
            name = f"Lightning {lightning_module.VERSION}"
            samples[name] = lightning_module.run_rounds(lightning_inputs, repeats + 1, k, one_round)
        else:
            for r in range(repeats + 1):
                one_round(r)
        regx = samples.pop("regx")
        return EpochResult(
            steps=len(trainer.batches),
            images=len(trainer.prep.train_y),
            device=str(trainer.device),
            regx=regx,
            contenders=samples,
        )
