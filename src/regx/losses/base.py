"""The loss contract.

A loss is an `nn.Module` called as `loss(outputs, targets) -> per-sample losses (N,)`,
where `outputs` are the model head's scores (N, K) and `targets` integer labels. The
engine averages (or importance-weights) the per-sample values and, for mixing
augmentations, combines λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π]).

A loss may also
- own the head (`make_head`): AM-Softmax returns a cosine head instead of a linear one;
  whatever the head outputs is what softmax turns into probabilities at evaluation;
- change with training progress (`start_epoch`): a γ schedule, a margin re-estimated on
  training features; `epoch_stats()` then reports the current values for metrics.csv.

Adding a loss is one module with a subclass of `Loss` and one YAML file in conf/loss/
whose `_target_` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class EpochContext:
    """What a loss may look at when an epoch starts."""

    epoch: int  # 0-based index of the epoch about to start
    num_epochs: int
    # Embeds the training set with the current model: (features (N, D), labels (N,)).
    embed_train: Callable[[], tuple[torch.Tensor, torch.Tensor]]


class Loss(nn.Module):
    def make_head(self, feature_dim: int, num_classes: int) -> nn.Module | None:
        """A head to replace the model's linear one, or None to keep it."""
        return None

    def start_epoch(self, ctx: EpochContext) -> None:
        """Called before each training epoch (and again after resuming)."""

    def epoch_stats(self) -> dict[str, float]:
        """Values that change during training, logged per epoch (e.g. {"gamma": 0.3})."""
        return {}

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must implement forward()")


def target_log_prob(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p_y (N,) in float32 from the head's scores: log-softmax, so tiny p_y stay finite."""
    log_probs = F.log_softmax(outputs.float(), dim=1)
    return log_probs.gather(1, targets[:, None]).squeeze(1)
