"""Validation splits: which training images validate, and with what weights."""

from regx.splits.base import Split, SplitStrategy

__all__ = ["Split", "SplitStrategy"]
