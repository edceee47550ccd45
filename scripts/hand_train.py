"""The run `regx train` does by default, written by hand as a plain script: the yardstick of
scripts/whole_run.py (whole-process wall time of regx vs this).

Same data (scikit-learn's 8×8 digits, a stratified 20 % test set, 10 % of the rest for
validation), model (the small VGG-style CNN: 3×3 conv-BN-ReLU stages of 32/64/128 channels,
2×2 max-pooling, global average pooling, a linear head), augmentation (random shifts of up
to one pixel), optimizer (SGD, lr 0.05, Nesterov momentum 0.9, weight decay 5e-4, batch 64),
schedule (one epoch of linear warm-up, then cosine to 0, per step), 25 epochs, the weights of
the best validation epoch; prints test accuracy and the 15-bin ECE.

    python scripts/hand_train.py [--epochs 25] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    c, size = 1, 8
    for w in (32, 64, 128):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        c = w
        if size > 2:
            layers.append(nn.MaxPool2d(2))
            size //= 2
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def random_shift(x: torch.Tensor, background: float, pad: int = 1) -> torch.Tensor:
    """Each image shifted by up to `pad` pixels (padded with the background, then a random
    window)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), value=background)
    dy = torch.randint(0, 2 * pad + 1, (n,))
    dx = torch.randint(0, 2 * pad + 1, (n,))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return xp[
        torch.arange(n)[:, None, None, None],
        torch.arange(x.shape[1])[None, :, None, None],
        rows,
        cols,
    ]


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += (
                inside.float().mean().item()
                * abs(conf[inside].mean() - correct[inside].mean()).item()
            )
    return ece


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    images = (
        torch.tensor(digits.images * (255 / 16), dtype=torch.float32).round().unsqueeze(1) / 255
    )
    labels = torch.tensor(digits.target)
    idx = torch.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=0.2, stratify=labels, random_state=0)
    fit_idx, val_idx = train_test_split(
        train_idx, test_size=0.1, stratify=labels[train_idx], random_state=args.seed
    )
    mean, std = images[fit_idx].mean(), images[fit_idx].std()
    x = (images - mean) / std
    background = float(-mean / std)  # a black pixel, normalized
    x_fit, y_fit = x[fit_idx], labels[fit_idx]

    model = small_cnn()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    steps_per_epoch = len(y_fit) // 64  # the last, partial batch is dropped
    total = args.epochs * steps_per_epoch

    def lr_factor(step: int) -> float:
        if step < steps_per_epoch:
            return (step + 1) / steps_per_epoch
        return 0.5 * (1 + math.cos(math.pi * (step - steps_per_epoch) / (total - steps_per_epoch)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    best_acc, best_state = -1.0, None
    for epoch in range(args.epochs):
        model.train()
        for batch in torch.randperm(len(y_fit))[: steps_per_epoch * 64].split(64):
            loss = F.cross_entropy(model(random_shift(x_fit[batch], background)), y_fit[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        val_acc = accuracy(model, x[val_idx], labels[val_idx])
        print(f"epoch {epoch + 1}: loss {loss.item():.4f} val acc {val_acc:.4f}")
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())

    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        probs = model(x[test_idx]).softmax(dim=1)
    test_y = labels[test_idx]
    test_acc = (probs.argmax(dim=1) == test_y).float().mean().item()
    print(f"test acc {test_acc:.4f}  ECE {expected_calibration_error(probs, test_y):.4f}")


if __name__ == "__main__":
    main()
