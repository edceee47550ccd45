"""Stratified random validation split: `val_fraction` of each class validates, the rest trains."""

from __future__ import annotations

from typing import Annotated

import torch

from regx.data.base import stratified_split
from regx.params import Range, check_params
from regx.splits.base import Split, SplitStrategy

# Both splits' `val_fraction`: some images validate and some train.
ValFraction = Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]


class RandomSplit(SplitStrategy):
    @check_params
    def __init__(self, val_fraction: ValFraction = 0.1, clean_val: bool = False) -> None:
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
