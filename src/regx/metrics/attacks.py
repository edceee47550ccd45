"""Accuracy under L∞ adversarial attacks: FGSM and PGD on the test images.

Pixel values x ∈ [0, 1] (the uint8 images / 255), budget ε in the same units (`"8/255"`),
L the cross-entropy of the model's logits f(normalize(x)) at the true label, gradients
with respect to the pixels (model in eval mode, float32, no autocast):

- FGSM (Goodfellow et al., 2015): x' = clip(x + ε·sign(∇ₓ L(x)), 0, 1).
- PGD (Madry et al., 2018): a random start x⁰ = clip(x + U(−ε, ε)), then `steps` times
  xᵗ⁺¹ = clip(Π_ε(xᵗ + α·sign(∇ₓ L(xᵗ))), 0, 1), Π_ε the projection onto the L∞ ball of
  radius ε around x, step size α = ε/4 (with the default 10 steps the path can cross the
  ball 2.5 times); the accuracy is that at the last iterate. The random start is drawn
  from a generator seeded with `seed` on the device, batch after batch.

The images are perturbed in 0–255 units (x·255, ε·255) and handed to `normalize` as float
pixel values in [0, 255] — what the engine's `regx.data.augment.Normalize` takes (it calls
`.float()` and is one multiply-add, so gradients pass through). So ε = 0 feeds the model
exactly the tensor a clean evaluation does: the accuracy equals the clean accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from regx.errors import ConfigError, check_choice

ATTACKS = ("fgsm", "pgd")
STEP_FRACTION = 0.25  # α = ε/4


def parse_eps(text: str) -> float:
    """'8/255' → 8/255, '0.03' → 0.03; must lie in [0, 1]."""
    allowed = "must be a number or a fraction like 8/255, in [0, 1]"
    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ConfigError("eps", text, allowed) from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError("eps", text, allowed)
    return value


def _loss_grad(
    model: nn.Module, normalize: Callable, x255: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """∇ of the summed cross-entropy with respect to the pixel values."""
    x = x255.detach().requires_grad_(True)
    loss = F.cross_entropy(model(normalize(x)), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


@torch.no_grad()
def _correct(
    model: nn.Module, normalize: Callable, x255: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    return (model(normalize(x255)).argmax(dim=1) == y).sum()


def _pgd(
    model: nn.Module,
    normalize: Callable,
    x255: torch.Tensor,
    y: torch.Tensor,
    radius: float,
    steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """The last PGD iterate, radius and steps in 0–255 units."""
    noise = torch.rand(x255.shape, generator=generator, device=x255.device) * 2.0 - 1.0
    x = (x255 + radius * noise).clamp(0.0, 255.0)
    step = STEP_FRACTION * radius
    for _ in range(steps):
        x = x + step * _loss_grad(model, normalize, x, y).sign()
        x = torch.minimum(torch.maximum(x, x255 - radius), x255 + radius).clamp(0.0, 255.0)
    return x


def attack_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    eps: Sequence[str],
    attacks: Sequence[str] = ("fgsm",),
    steps: int = 10,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, object]:
    """{"clean": acc, "fgsm": {"1/255": acc, …}, "pgd": {…}, "steps": …, "step_size": …}.

    `images` uint8 (N, C, H, W), `labels` (N,); the eps strings are parsed by `parse_eps`
    and returned as given.
    """
    for name in attacks:
        check_choice("attack", name, ATTACKS)
    if not (isinstance(steps, int) and steps >= 1):
        raise ConfigError("steps", steps, "must be an integer ≥ 1")
    radii = {text: 255.0 * parse_eps(text) for text in eps}
    device = torch.device(device)
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    clean = torch.zeros((), dtype=torch.long, device=device)
    hits = {(a, t): torch.zeros_like(clean) for a in attacks for t in radii}
    try:
        for start in range(0, len(images), batch_size):
            x255 = images[start : start + batch_size].to(device).float()
            y = labels[start : start + batch_size].to(device)
            clean += _correct(model, normalize, x255, y)
            sign = _loss_grad(model, normalize, x255, y).sign() if "fgsm" in attacks else None
            for text, radius in radii.items():
                if sign is not None:
                    adv = (x255 + radius * sign).clamp(0.0, 255.0)
                    hits["fgsm", text] += _correct(model, normalize, adv, y)
                if "pgd" in attacks:
                    adv = _pgd(model, normalize, x255, y, radius, steps, generator)
                    hits["pgd", text] += _correct(model, normalize, adv, y)
    finally:
        model.train(was_training)
    n = max(len(images), 1)
    out: dict[str, object] = {"clean": clean.item() / n}
    for name in attacks:
        out[name] = {text: hits[name, text].item() / n for text in radii}
    if "pgd" in attacks:
        out.update(steps=steps, step_size="eps/4", seed=seed)
    return out
