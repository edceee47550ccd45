"""Image corruptions of `dataset.test_shift=corrupt` and the `regx evaluate --corruptions` sweep.

CIFAR-10-C style corruptions (Hendrycks & Dietterich, 2019) at `severity` 1–5 of uint8
images (N, C, H, W). The first four work on pixel values x ∈ [0, 1], then are clipped to
[0, 1] and rounded back to uint8:

    brightness  x + b,              b = 0.05, 0.10, 0.15, 0.20, 0.30
                (CIFAR-10-C adds b to the HSV value; here to every channel, the same
                for gray images)
    contrast    (x − m)·c + m,      m the image's mean, c = 0.75, 0.50, 0.40, 0.30, 0.15
    blur        Gaussian blur,      σ = 0.4, 0.6, 0.7, 0.8, 1.0 pixels (edges replicated)
    noise       x + σ·ε, ε~N(0, 1), σ = 0.04, 0.06, 0.08, 0.09, 0.10

The last two work on the uint8 image itself through PIL, as CIFAR-10-C does:

    jpeg        JPEG encode + decode at quality q = 80, 65, 58, 50, 40 (PIL's defaults
                otherwise: 4:2:0 chroma subsampling for RGB)
    pixelate    resize to (⌊W·c⌋, ⌊H·c⌋) with a box filter and back to (W, H) with a box
                filter, c = 0.95, 0.90, 0.85, 0.75, 0.65 (CIFAR-10-C's pixelate). On tiny
                images the floor merges severities: on 8×8 digits the sizes are 7, 7, 6,
                6, 5 pixels, so severities 1 = 2 and 3 = 4 there, and 6 → 8 px aliases
                more than 5 → 8 px (mean absolute change on the digits test set 14, 14,
                31, 31, 29 of 255): read digits' pixelate rows as three levels, unordered.

Only `noise` is random (drawn from the generator passed in); every other kind is a
deterministic function of each image alone.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

from regx.errors import ConfigError

SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "brightness": (0.05, 0.10, 0.15, 0.20, 0.30),
    "contrast": (0.75, 0.50, 0.40, 0.30, 0.15),
    "blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "jpeg": (80, 65, 58, 50, 40),
    "pixelate": (0.95, 0.90, 0.85, 0.75, 0.65),
}
KINDS = tuple(SEVERITY_PARAMS)
SEVERITIES = (1, 2, 3, 4, 5)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of float images (N, C, H, W), replicated edges."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _pil_images(images: torch.Tensor) -> list:
    """uint8 (N, C, H, W) with C ∈ {1, 3} as PIL images (mode L or RGB)."""
    from PIL import Image

    hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    # uint8 (H, W) arrays become mode L, (H, W, 3) arrays mode RGB
    planes = hwc[:, :, :, 0] if images.shape[1] == 1 else hwc
    return [Image.fromarray(a) for a in planes]


def _stack_pil(pictures: list, channels: int) -> torch.Tensor:
    arrays = [np.asarray(p, dtype=np.uint8).reshape(p.height, p.width, channels) for p in pictures]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image JPEG-encoded at `quality` and decoded again (PIL)."""
    from PIL import Image

    out = []
    for picture in _pil_images(images):
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        out.append(Image.open(buffer).convert(picture.mode))
    return _stack_pil(out, images.shape[1])


def pixelate(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Box-downscale each image to ⌊size·factor⌋ pixels per side, box-upscale it back (PIL)."""
    from PIL import Image

    h, w = images.shape[-2:]
    small = (max(1, int(w * factor)), max(1, int(h * factor)))
    out = [p.resize(small, Image.BOX).resize((w, h), Image.BOX) for p in _pil_images(images)]
    return _stack_pil(out, images.shape[1])


def corrupt(
    images: torch.Tensor, kind: str, severity: int, generator: torch.Generator
) -> torch.Tensor:
    """`images` (uint8, N×C×H×W) with corruption `kind` at `severity` 1–5 (formulas above)."""
    param = SEVERITY_PARAMS[kind][severity - 1]
    if len(images) == 0:
        return images.clone()
    if kind == "jpeg":
        return jpeg(images, int(param))
    if kind == "pixelate":
        return pixelate(images, param)
    x = images.to(torch.float32) / 255.0
    if kind == "brightness":
        out = x + param
    elif kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        out = (x - mean) * param + mean
    elif kind == "blur":
        out = gaussian_blur(x, param)
    else:
        out = x + param * torch.randn(x.shape, generator=generator)
    return (out.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def parse_kinds(text: str) -> tuple[str, ...]:
    """`all` or a comma list of kinds, e.g. `noise,jpeg` (also accepts `kinds=noise,jpeg`)."""
    text = text.strip().removeprefix("kinds=")
    if text == "all":
        return KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    for kind in kinds:
        if kind not in KINDS:
            raise ConfigError("corruptions", kind, "must be all or kinds from " + ", ".join(KINDS))
    if not kinds:
        raise ConfigError("corruptions", text, "must be all or kinds from " + ", ".join(KINDS))
    return kinds


def parse_severities(text: str) -> tuple[int, ...]:
    """`1,2,3,4,5` (or `all`) → (1, 2, 3, 4, 5); each in 1–5."""
    text = text.strip().removeprefix("severities=")
    if text == "all":
        return SEVERITIES
    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError("severities", text, "must be integers in [1, 5], e.g. 1,3,5") from None
    if not values or any(s not in SEVERITIES for s in values):
        raise ConfigError("severities", text, "must be integers in [1, 5], e.g. 1,3,5")
    return values
