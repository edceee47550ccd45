"""Stratified random validation split: `val_fraction` of each class validates, the rest trains."""

from __future__ import annotations

import torch

from regx.data.base import stratified_split
from regx.errors import check_range
from regx.splits.base import Split, SplitStrategy


class RandomSplit(SplitStrategy):
    def __init__(self, val_fraction: float = 0.1, clean_val: bool = False) -> None:
        check_range("val_fraction", val_fraction, 0, 1, lo_open=True, hi_open=True)
        self.val_fraction = val_fraction
        self.set_clean_val(clean_val)

    def __call__(
        self, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, seed: int
    ) -> Split:
        rest, held = stratified_split(train_y.numpy(), self.val_fraction, seed)
        return Split(
            train_idx=torch.from_numpy(rest),
            val_idx=torch.from_numpy(held),
            info={"kind": "random", "val_size": len(held), "val_unique": len(held)},
        )
