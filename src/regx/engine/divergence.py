"""A diverged run stops with one line: where the loss or the weights went NaN/Inf, the last
finite loss, what to change, and what the run keeps."""

from __future__ import annotations

import math

import torch

from regx.errors import DivergedError


def kept_files(epochs_done: int, checkpointing: bool) -> str:
    """What a diverged run leaves behind, for its message."""
    if epochs_done == 0:
        return "it diverged in the first epoch, so there is no checkpoint to keep"
    if not checkpointing:
        return (
            f"metrics.csv of the {epochs_done} finished epoch(s) is kept (trainer.checkpoint=false)"
        )
    return f"checkpoints/last.pt and metrics.csv of the {epochs_done} finished epoch(s) are kept"


def _precision_hint(precision: str) -> str:
    return " or use trainer.precision=32" if precision != "32" else ""


def _last_finite(loss: float) -> str:
    return f"last finite loss {loss:.4g}" if math.isfinite(loss) else "no finite loss before it"


def check_losses(
    step_loss: torch.Tensor,
    upto: int,
    epoch: int,
    precision: str,
    kept: str,
    before: float = math.nan,
) -> None:
    """Raise `DivergedError` if a loss among the epoch's first `upto` steps is NaN/Inf;
    `before`: the previous epoch's last loss, for a NaN at the epoch's first step."""
    losses = step_loss[:upto]
    if bool(torch.isfinite(losses).all()):  # one host sync per check
        return
    values = losses.cpu()
    step = int((~torch.isfinite(values)).nonzero()[0])
    last = float(values[step - 1]) if step > 0 else before
    raise DivergedError(
        f"training diverged: the loss became NaN/Inf at epoch {epoch + 1}, step {step + 1} "
        f"({_last_finite(last)}); lower trainer.optimizer.lr"
        f"{_precision_hint(precision)}; {kept}"
    )


def check_weights(
    model: torch.nn.Module,
    epoch: int,
    precision: str,
    kept: str,
    last_loss: float = math.nan,
    steps: int = 0,
) -> None:
    """Weights (and BN statistics) finite after the epoch: a NaN/Inf gradient shows up here
    even when every loss was finite, before it can reach a checkpoint. Every later step's
    loss would have been NaN, so the epoch's last step made them so."""
    # one check over all of them concatenated: a check per tensor costs ~5 ops each
    flat = [t.reshape(-1) for t in model.state_dict().values() if t.is_floating_point()]
    if flat and not bool(torch.isfinite(torch.cat(flat)).all()):
        raise DivergedError(
            f"training diverged: the weights became NaN/Inf during epoch {epoch + 1}, at its "
            f"last step {steps} (a NaN/Inf gradient; {_last_finite(last_loss)}); lower "
            f"trainer.optimizer.lr, set trainer.grad_clip{_precision_hint(precision)}; {kept}"
        )
