"""The fast path of the cnn discriminator computes what the plain one does: k folds trained
as one stacked network give each fold's own logits, batches stay balanced, each fold is
standardized by its own fitting images; and the out-of-fold loop reports its progress."""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from regx.errors import ConfigError
from regx.splits import adversarial
from regx.splits.adversarial import AdversarialSplit
from regx.splits.convnets import SmallConvNet, StackedConvNet, stack_batches
from regx.splits.discriminators import ConvDiscriminator, Fold, _balanced_batches, _Standardized

pytestmark = pytest.mark.usefixtures("one_thread")


def shifted_images(n_train: int, n_test: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 8×8 images, the test ones darker, and their domains (0 train, 1 test)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[n_train:] = (x[n_train:].float() * 0.7).to(torch.uint8)
    return x, np.r_[np.zeros(n_train, np.int64), np.ones(n_test, np.int64)]


def even_folds(n_train: int, n_test: int, k: int) -> list[Fold]:
    """k folds holding n_train/k train and n_test/k test images each."""
    rng = np.random.default_rng(0)
    train, test = rng.permutation(n_train), n_train + rng.permutation(n_test)
    a, b = n_train // k, n_test // k
    folds = []
    for j in range(k):
        held = np.sort(np.r_[train[j * a : (j + 1) * a], test[j * b : (j + 1) * b]])
        folds.append(Fold(np.setdiff1d(np.arange(n_train + n_test), held), held))
    return folds


def test_the_stacked_net_is_k_independent_nets():
    torch.manual_seed(0)
    nets = [SmallConvNet(3, 8, 4) for _ in range(3)]
    stacked = StackedConvNet(nets).to(memory_format=torch.channels_last)
    batches = [torch.randn(16, 3, 8, 8) for _ in nets]
    target = torch.rand(16, 3)
    out = stacked(torch.cat(batches, dim=1).contiguous(memory_format=torch.channels_last))
    F.binary_cross_entropy_with_logits(out, target, reduction="none").mean(0).sum().backward()
    grads = dict(stacked.named_parameters())
    for j, (net, batch) in enumerate(zip(nets, batches)):
        alone = net(batch)  # train mode: batch norm on its own 16 images
        torch.testing.assert_close(out[:, j], alone, atol=1e-5, rtol=1e-5)
        F.binary_cross_entropy_with_logits(alone, target[:, j]).backward()
        for name in ("body.0.weight", "body.4.weight", "body.8.bias"):
            block = grads[name].grad.unflatten(0, (3, -1))[j]
            expected = dict(net.named_parameters())[name].grad
            torch.testing.assert_close(
                block.reshape(expected.shape), expected, atol=1e-6, rtol=1e-5
            )
        torch.testing.assert_close(grads["head_weight"].grad[j], net.head.weight.grad[0])
    # The conv biases (before batch norm: gradient exactly 0) are frozen.
    assert not grads["body.0.bias"].requires_grad and grads["body.1.bias"].requires_grad


def test_folds_trained_together_give_the_logits_of_folds_trained_alone():
    x, domain = shifted_images(90, 60)
    folds = even_folds(90, 60, 3)
    disc = ConvDiscriminator(epochs=6, patience=1, batch_size=32, device="cpu")
    finished: list[int] = []
    together = disc.fit_folds(x, domain, folds, seed=7, folds_done=finished.append)
    assert sum(finished) == 3  # every fold reported once, when it stopped
    for j, fold in enumerate(folds):
        # Fold j alone: seeded 7 + j, fitted on its own images only.
        alone = disc.fit_logits(x[fold.fit], domain[fold.fit], x[fold.held], seed=7 + j)
        assert together[j].shape == (50,)
        np.testing.assert_allclose(together[j], alone, atol=1e-4, rtol=1e-5)
    # It did learn the shift: held-out test images score above held-out train images.
    logits = np.concatenate(together)
    held_domain = np.concatenate([domain[f.held] for f in folds])
    assert logits[held_domain == 1].mean() > logits[held_domain == 0].mean() + 1.0


def test_each_fold_is_standardized_by_its_own_fitting_images():
    x, _ = shifted_images(30, 20)
    x = x.expand(-1, 2, -1, -1).clone()
    x[:, 1] //= 3
    folds = even_folds(30, 20, 2)
    images = _Standardized.of(x, folds)
    for j, fold in enumerate(folds):
        pixels = x[torch.from_numpy(fold.fit)].float() / 255
        torch.testing.assert_close(images.mean[j], pixels.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(images.std[j], pixels.std(dim=(0, 2, 3)))
    index = torch.tensor([[3, 5], [7, 3]])
    stacked = stack_batches(images.pixels, index, images.mean, images.std)
    assert stacked.shape == (2, 4, 8, 8) and stacked.is_contiguous(
        memory_format=torch.channels_last
    )
    expected = (x[7].float() / 255 - images.mean[1, :, None, None]) / images.std[1, :, None, None]
    torch.testing.assert_close(stacked[0, 2:], expected)  # batch row 0, fold 1's block


def test_balanced_batches_take_half_of_each_side_cycling_both():
    side0, side1 = np.arange(50), np.arange(100, 120)
    batches = _balanced_batches(side0, side1, 8, 7, np.random.default_rng(0))
    assert batches.shape == (7, 16)
    assert np.isin(batches[:, :8], side0).all() and np.isin(batches[:, 8:], side1).all()
    # 56 draws of side 0 (50 images): each image once, 6 a second time from a fresh pass.
    counts0 = np.bincount(batches[:, :8].ravel(), minlength=50)
    assert sorted(counts0.tolist()) == [1] * 44 + [2] * 6
    counts1 = np.bincount(batches[:, 8:].ravel() - 100, minlength=20)
    assert sorted(counts1.tolist()) == [2] * 4 + [3] * 16  # 56 draws over 20 images


class CountingProgress(adversarial.WorkProgress):
    instances: ClassVar[list[CountingProgress]] = []

    def __enter__(self):
        CountingProgress.instances.append(self)
        return super().__enter__()


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("logreg", "pixel logreg"),
        ("features", "random-net features logreg"),
        ("cnn", "cnn"),
    ],
)
def test_the_fold_loop_logs_its_start_and_end(monkeypatch, caplog, kind, name):
    monkeypatch.setattr(adversarial, "WorkProgress", CountingProgress)
    CountingProgress.instances.clear()
    caplog.set_level(logging.INFO, logger="regx")
    x, _ = shifted_images(60, 30)
    split_fn = AdversarialSplit(
        discriminator=kind, folds=3, cnn_epochs=2, cnn_width=4, device="cpu"
    )
    split_fn(x[:60], torch.zeros(60, dtype=torch.long), x[60:], seed=0)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" in ")[0] for line in lines] == [
        f"fitting the {name} discriminator on 3 folds",
        f"fitted the {name} discriminator on 3 folds",
    ]
    assert lines[1].endswith(" folds/s)")
    (progress,) = CountingProgress.instances
    assert progress.total == progress.done == 3 and progress.unit == "folds"


def test_a_fold_too_small_for_the_cnn_names_the_key():
    x, _ = shifted_images(40, 2)
    split_fn = AdversarialSplit(discriminator="cnn", folds=2, device="cpu")
    with pytest.raises(ConfigError) as err:
        split_fn(x[:40], torch.zeros(40, dtype=torch.long), x[40:], seed=0)
    assert str(err.value) == (
        "split.folds=2: leaves a fold with fewer than 2 images of one side to fit the cnn on"
    )
