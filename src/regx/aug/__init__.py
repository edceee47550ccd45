"""Mixing augmentations applied to a batch on the device (see aug/base.py for the contract)."""

from regx.aug.base import MixedBatch, Mixer

__all__ = ["MixedBatch", "Mixer"]
