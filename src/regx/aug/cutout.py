"""Cutout (DeVries & Taylor, 2017): erase random squares of each image, keep its label.

For an H×W image, each of `holes` squares has side s_h × s_w pixels, s = `size` when
`size` is an integer (pixels), or round(size·H) × round(size·W) (at least 1) when it is a
fraction in (0, 1) of the image side. Its centre pixel (cy, cx) is uniform over the
image and it spans rows [cy − s_h//2, cy − s_h//2 + s_h) and likewise columns, clipped to
the image, so squares near an edge are partly outside and erase less. The erased pixels
are set to 0 in the normalized input, i.e. to the data set's mean colour; holes may
overlap. The loss is the plain L(ŷ, y).

`mode="elem"` (the paper's) draws the squares of each image independently, on the
batch's device; `mode="batch"` puts the same squares on every image of the batch, drawn
from the CPU generator. `prob` is the fraction of batches cut. The logged λ is the
fraction of each image's pixels kept (1 − erased area / (H·W)): a float in batch mode,
(N,) in elem mode; no partner label enters the loss.
"""

from __future__ import annotations

from typing import Annotated

import torch

from regx.aug.base import (
    MixedBatch,
    Mixer,
    MixMode,
    Probability,
    box_mask,
    box_span,
    mix_this_batch,
)
from regx.errors import ConfigError
from regx.params import Range, check_params


def check_size(size: int | float) -> None:
    integer = isinstance(size, int) and not isinstance(size, bool)
    fraction = isinstance(size, float) and 0.0 < size < 1.0
    if not ((integer and size >= 1) or fraction):
        raise ConfigError(
            "size",
            size,
            "must be an integer ≥ 1 (pixels) or a number in (0, 1) (fraction of the image side)",
        )


def square_sides(size: int | float, h: int, w: int) -> tuple[int, int]:
    """The square's (rows, columns) in pixels for an h×w image."""
    if isinstance(size, int):
        return size, size
    return max(1, round(size * h)), max(1, round(size * w))


class Cutout(Mixer):
    name = "cutout"

    @check_params
    def __init__(
        self,
        size: int | float = 0.5,
        holes: Annotated[int, Range(1, integer=True)] = 1,
        mode: MixMode = "elem",
        prob: Probability = 1.0,
    ) -> None:
        check_size(size)
        self.size = size
        self.holes = holes
        self.mode = mode
        self.prob = float(prob)

    def image_warning(self, height: int, width: int) -> str | None:
        side_h, side_w = square_sides(self.size, height, width)
        # a square erases the whole image from any centre when it spans [0, H) from both
        # the first and the last row (and likewise columns)
        rows = side_h // 2 >= height - 1 and side_h - side_h // 2 >= height
        cols = side_w // 2 >= width - 1 and side_w - side_w // 2 >= width
        if rows and cols:
            return (
                f"aug.size={self.size} erases every {height}×{width} image entirely (a "
                f"{side_h}×{side_w} square from any centre): the model sees blank images"
            )
        return None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        if not mix_this_batch(self.prob):
            return None
        if self.mode == "batch":
            erased, kept = self.erase_batch(x)
        else:
            erased, kept = self.erase_elem(x)
        return MixedBatch(inputs=erased, lam=kept)

    def erase_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The same squares on every image (CPU draws): (erased x, kept fraction)."""
        h, w = x.shape[-2:]
        side_h, side_w = square_sides(self.size, h, w)
        erased = x.clone()
        # the union of the holes, counted on a small CPU mask (no device sync)
        union = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(self.holes):
            top, bottom = box_span(int(torch.randint(0, h, ())), side_h, h)
            left, right = box_span(int(torch.randint(0, w, ())), side_w, w)
            erased[..., top:bottom, left:right] = 0.0
            union[top:bottom, left:right] = True
        return erased, 1.0 - int(union.sum()) / (h * w)

    def erase_elem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Squares drawn per image on x's device: (erased x, kept fraction (N,))."""
        n, h, w = x.shape[0], *x.shape[-2:]
        side_h, side_w = square_sides(self.size, h, w)
        cy = torch.randint(0, h, (n, self.holes), device=x.device)
        cx = torch.randint(0, w, (n, self.holes), device=x.device)
        top, bottom = box_span(cy, side_h, h)
        left, right = box_span(cx, side_w, w)
        erased_px = box_mask(top, bottom, left, right, h, w).any(dim=1)  # (N, H, W)
        kept = 1.0 - erased_px.flatten(1).sum(dim=1, dtype=torch.float32) / (h * w)
        return x.masked_fill(erased_px[:, None], 0.0), kept
