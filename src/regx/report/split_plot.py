"""split.png: how test-like each image looks to the adversarial-validation discriminator.

Histograms (as densities, so sides of different size compare) of the out-of-fold
discriminator score D(x) ≈ q(x)/(p(x)+q(x)) for the training images and the test images,
plus the validation set drawn from the training images where the split provides it.
Overlapping histograms (AUC ≈ 0.5) mean the discriminator cannot tell train from test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Keys of `Split.arrays` this plot reads; a missing one is skipped.
SERIES = (
    ("d_train", "train images", "#4C72B0"),
    ("d_test", "test images", "#DD8452"),
    ("d_val", "validation set", "#55A868"),
)


def split_title(info: dict[str, Any]) -> str:
    """`Adversarial validation (mode, discriminator)` over `AUC …` and, where the validation set
    is drawn or weighted by the importance weights w (resample, weight), their effective
    sample size and largest value; topk takes the most test-like images unweighted."""
    keys = [("auc", "AUC")]
    if info.get("mode") != "topk":
        keys += [("ess", "ESS"), ("weight_max", "w max")]
    parts = [
        f"{name} {info[key]:.3g}" for key, name in keys if isinstance(info.get(key), (int, float))
    ]
    how = ", ".join(str(info[k]) for k in ("mode", "discriminator") if info.get(k))
    # two lines: the numbers stay inside the figure's width
    return (
        "Adversarial validation"
        + (f" ({how})" if how else "")
        + ("\n" + ", ".join(parts) if parts else "")
    )


def plot_split(path: Path, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    """Write the histogram of D(x) for train vs test (and validation) images to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0.0, 1.0, 31)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for key, label, color in SERIES:
        scores = arrays.get(key)
        if scores is None or len(scores) == 0:
            continue
        scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
        # The validation set is drawn from the training images: a line, so both stay visible.
        style = {"histtype": "step", "linewidth": 2} if key == "d_val" else {"alpha": 0.5}
        ax.hist(
            scores,
            bins=edges,
            density=True,
            color=color,
            label=f"{label} (n={len(scores)})",
            **style,
        )
    ax.set_xlim(0, 1)
    ax.set_xlabel("discriminator D(x) = P(test | x), out of fold")
    ax.set_ylabel("density")
    ax.set_title(split_title(info), fontsize=10)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
