"""Training losses: each returns per-sample values so mixing and importance weights can weight them."""

from regx.losses.base import EpochContext, Loss

__all__ = ["EpochContext", "Loss"]
