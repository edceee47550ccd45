"""Adversarial validation: a validation set drawn to look like the test set.

Uses the test set's *inputs* only; the call has no place for test labels. With p the
training density and q the test density:

1. Discriminator. Training images are labelled 0, test images 1; a discriminator fitted
   with the two sides balanced (see `regx.splits.discriminators`) estimates
   D(x) = q(x)/(p(x) + q(x)). `discriminator=features` fits the logistic regression on
   image embeddings instead of pixels (`regx.splits.embeddings`).
2. Out of fold. Train and test images are split into `folds` stratified folds; the
   images of fold j are scored by a discriminator fitted on the other folds only, so
   every image's D(x) comes from a model that never saw it. The out-of-fold ROC AUC of
   D over train (0) vs test (1) measures the shift: ≈ 0.5 means none.
3. Importance weights. w(x) = D/(1 − D) = q(x)/p(x), clipped from above at `clip` times
   the median weight of the training images (truncated importance sampling). The cap is
   relative because the weights' scale is not reliable: under a strong shift (train and
   test barely overlap) every training image has D ≈ 0, and the regularized
   discriminator's logits have an arbitrary scale; everything downstream (drawing ∝ w,
   Σ w·ℓ / Σ w) is invariant to the scale, so only the ratio to a typical weight matters.
   With no shift the median is ≈ 1 and the cap ≈ clip.
4. Validation set (n_val = round(val_fraction · N) of the N training images):
   - `resample`: n_val draws with replacement, P(draw image i) = w_i / Σ w; duplicates
     are kept (a drawn-twice image counts twice in validation metrics); the images never
     drawn train.
   - `topk`: the n_val images with the largest D (the most test-like) validate.
   - `weight`: a stratified random split (`split=random`'s, its size rounded per class, so
     it can differ from n_val by up to one per class); validation metrics are weighted by
     w, and with `weight_train` the training loss as well (Σ w·ℓ / Σ w per batch).
5. Effective sample size of the validation weights as the metrics use them,
   ESS = (Σ v)² / Σ v², with v the per-image multiplicity (`resample`), 1 (`topk`) or w
   (`weight`): the number of equally weighted images the validation set is worth.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import numpy as np
import torch

from regx.data.base import stratified_split
from regx.errors import ConfigError, check
from regx.params import Choice, Range, check_params
from regx.progress import WorkProgress
from regx.splits.base import Split, SplitStrategy
from regx.splits.discriminators import (
    CnnEpochs,
    CnnPatience,
    CnnWidth,
    ConvDiscriminator,
    Discriminator,
    Fold,
    FoldsDiscriminator,
    LogisticDiscriminator,
)
from regx.splits.embeddings import FEATURE_KINDS, FeatureEmbedding
from regx.splits.random import ValFraction

MODES = ("resample", "topk", "weight")
DISCRIMINATORS = ("logreg", "cnn", "features")
# Mixed into the seed so the split's draws are independent of other seeded draws.
SPLIT_STREAM = 0xAD5
# exp(700) is finite in float64; a larger logit would only be capped anyway.
MAX_LOGIT = 700.0


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's ESS, (Σ w)² / Σ w²."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / np.square(w).sum())


def importance_weights(logits: np.ndarray, clip: float) -> np.ndarray:
    """w = D/(1 − D) = exp(logit), capped at `clip` × median(w)."""
    w = np.exp(np.minimum(logits, MAX_LOGIT))
    return np.minimum(w, clip * np.median(w))


def out_of_fold_logits(
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    folds: int,
    seed: int,
    discriminator: Discriminator,
    name: str = "",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits of D for every train and test image from the fold model that did not see it.

    Returns (logits of the training images, logits of the test images, the fold in
    which each image — train then test — was held out). Fold j's model is seeded with
    seed + j. `name` (e.g. "cnn") labels the progress lines.
    """
    from sklearn.model_selection import StratifiedKFold

    x = torch.cat([train_x, test_x])
    domain = np.concatenate([np.zeros(len(train_x), np.int64), np.ones(len(test_x), np.int64)])
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    splits = [Fold(fit, held) for fit, held in kfold.split(np.zeros(len(x)), domain)]
    logits = np.empty(len(x), dtype=np.float64)
    fold_of = np.empty(len(x), dtype=np.int64)
    label = f"the {name} discriminator" if name else "the discriminator"
    doing, done = f"fitting {label} on {folds} folds", f"fitted {label} on {folds} folds"
    with WorkProgress(folds, "folds", doing, done) as progress:
        if isinstance(discriminator, FoldsDiscriminator):  # all folds at once
            held_logits = discriminator.fit_folds(x, domain, splits, seed, progress.advance)
        else:
            held_logits = []
            for j, fold in enumerate(splits):
                fit_t, held_t = torch.from_numpy(fold.fit), torch.from_numpy(fold.held)
                held_logits.append(
                    discriminator.fit_logits(x[fit_t], domain[fold.fit], x[held_t], seed + j)
                )
                progress.advance()
    for j, (fold, fold_logits) in enumerate(zip(splits, held_logits)):
        logits[fold.held] = fold_logits
        fold_of[fold.held] = j
    n = len(train_x)
    return logits[:n], logits[n:], fold_of


class AdversarialSplit(SplitStrategy):
    @check_params
    def __init__(
        self,
        val_fraction: ValFraction = 0.1,
        mode: Annotated[str, Choice(MODES)] = "resample",
        discriminator: Annotated[str, Choice(DISCRIMINATORS)] = "logreg",
        folds: Annotated[int, Range(2, integer=True)] = 5,
        clip: Annotated[float, Range(1, lo_open=True)] = 10.0,  # the cap stays above the median
        weight_train: bool = False,
        logreg_c: Annotated[float, Range(0, lo_open=True)] = 0.01,
        pca: int | None = None,
        cnn_epochs: CnnEpochs = 20,
        cnn_patience: CnnPatience = 3,
        cnn_width: CnnWidth = 16,
        features: Annotated[str, Choice(FEATURE_KINDS)] = "random",
        feature_epochs: Annotated[int, Range(1, integer=True)] = 3,
        feature_pca: int | None = 8,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        clean_val: bool = False,
    ) -> None:
        self.set_clean_val(clean_val)
        check(isinstance(weight_train, bool), "weight_train", weight_train, "must be true or false")
        check(
            not weight_train or mode == "weight",
            "weight_train",
            weight_train,
            "only applies to split.mode=weight",
        )
        self.val_fraction, self.mode, self.folds = float(val_fraction), mode, folds
        self.clip, self.weight_train = float(clip), weight_train
        self.discriminator_name = discriminator
        # `features`: the same logistic regression, on embeddings instead of pixels.
        embedding = FeatureEmbedding(kind=features, epochs=feature_epochs, device=device)
        on_features = LogisticDiscriminator(c=logreg_c, pca=feature_pca, pca_key="feature_pca")
        self.embedding = embedding if discriminator == "features" else None
        self.discriminator: Discriminator = (
            LogisticDiscriminator(c=logreg_c, pca=pca)
            if discriminator == "logreg"
            else on_features
            if discriminator == "features"
            else ConvDiscriminator(
                epochs=cnn_epochs, patience=cnn_patience, width=cnn_width, device=device
            )
        )

    def __call__(
        self, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, seed: int
    ) -> Split:
        n, m = len(train_x), len(test_x)
        if min(n, m) < self.folds:
            raise ConfigError(
                "split.folds",
                self.folds,
                f"needs at least that many train and test images (have {n} and {m})",
            )
        logit_train, logit_test, fold_of, run_info = self._score(train_x, train_y, test_x, seed)
        d_train, d_test = _sigmoid(logit_train), _sigmoid(logit_test)
        w = importance_weights(logit_train, self.clip)
        train_idx, val_idx, val_weight, train_weight, ess = self._validation(
            w, d_train, train_y, seed
        )
        from sklearn.metrics import roc_auc_score

        auc = roc_auc_score(
            np.concatenate([np.zeros(n), np.ones(m)]), np.concatenate([logit_train, logit_test])
        )
        info = {
            "kind": "adversarial",
            "mode": self.mode,
            "discriminator": self.discriminator_name,
            "folds": self.folds,
            "auc": float(auc),
            "ess": ess,
            "weight_min": float(w.min()),
            "weight_max": float(w.max()),
            "clip": self.clip,
            "val_size": len(val_idx),
            "val_unique": len(np.unique(val_idx)),
            "train_size": len(train_idx),
            **run_info,
        }
        arrays = {
            "d_train": d_train,
            "d_test": d_test,
            "d_val": d_train[val_idx],
            "w_train": w,
            "fold_train": fold_of[:n],
            "fold_test": fold_of[n:],
        }
        return Split(
            train_idx=torch.from_numpy(train_idx),
            val_idx=torch.from_numpy(val_idx),
            val_weight=val_weight,
            train_weight=train_weight,
            info=info,
            arrays=arrays,
        )

    def _score(
        self, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, object]]:
        """Out-of-fold logits of D (train, test), the folds, and the discriminator's record."""
        from threadpoolctl import threadpool_limits

        t0, cpu0 = time.perf_counter(), time.thread_time()
        # BLAS (numpy/scikit-learn) gets the thread budget torch has (trainer.threads): more
        # threads than cores spin-wait and can take many times longer on a busy machine.
        with threadpool_limits(limits=torch.get_num_threads()):
            (fit_train, fit_test), feature_info = self._inputs(train_x, train_y, test_x, seed)
            logit_train, logit_test, fold_of = out_of_fold_logits(
                fit_train, fit_test, self.folds, seed, self.discriminator, self._name()
            )
        # Wall and this thread's CPU time of the discriminator (imports included); wall
        # time can include waiting on other threads (e.g. a background import).
        timing = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.thread_time() - cpu0}
        return logit_train, logit_test, fold_of, {**timing, **feature_info}

    def _name(self) -> str:
        """What the progress lines call the discriminator: "pixel logreg", "cnn", …"""
        if self.embedding is None:
            return "pixel logreg" if self.discriminator_name == "logreg" else "cnn"
        return f"{self.embedding.kind}-net features logreg"

    def _validation(
        self, w: np.ndarray, d_train: np.ndarray, train_y: torch.Tensor, seed: int
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None, torch.Tensor | None, float]:
        """(train_idx, val_idx, val_weight, train_weight, ESS) of the split's `mode`."""
        n = len(w)
        rng = np.random.default_rng([seed, SPLIT_STREAM])
        n_val = max(1, round(self.val_fraction * n))
        val_weight = train_weight = None
        if self.mode == "resample":
            val_idx = np.sort(rng.choice(n, size=n_val, replace=True, p=w / w.sum()))
            train_idx = np.setdiff1d(np.arange(n), val_idx)
            ess = effective_sample_size(np.bincount(val_idx)[np.unique(val_idx)])
        elif self.mode == "topk":
            val_idx = np.sort(np.argsort(-d_train, kind="stable")[:n_val])
            train_idx = np.setdiff1d(np.arange(n), val_idx)
            ess = float(len(val_idx))
        else:
            train_idx, val_idx = stratified_split(train_y.numpy(), self.val_fraction, seed)
            val_weight = torch.from_numpy(w[val_idx]).float()
            if self.weight_train:
                train_weight = torch.from_numpy(w[train_idx]).float()
            ess = effective_sample_size(w[val_idx])
        return train_idx, val_idx, val_weight, train_weight, ess

    def _inputs(
        self, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, seed: int
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, object]]:
        """What the discriminator sees: the images, or (`features`) their embeddings."""
        if self.embedding is None:
            return (train_x, test_x), {}
        embedded = self.embedding(train_x, train_y, test_x, seed)
        info: dict[str, object] = {"features": self.embedding.kind}
        if self.embedding.kind == "trained":
            info.update(feature_epochs=self.embedding.epochs, feature_train_acc=embedded.train_acc)
        return (embedded.train, embedded.test), info


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|
