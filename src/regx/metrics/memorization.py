"""How a model treats the flipped labels of a noisy training set (`dataset.label_noise`).

With predictions ŷ_i, given (possibly flipped) labels ỹ_i and true labels y_i of the N
training images, F = {i : ỹ_i ≠ y_i} the flipped ones and C the rest:

- rate      = |F| / N                         (the realized noise rate)
- fit_clean = |{i ∈ C : ŷ_i = ỹ_i}| / |C|      (accuracy on the clean-labelled images)
- memorized = |{i ∈ F : ŷ_i = ỹ_i}| / |F|      (flipped images predicted as their noisy label)
- recovered = |{i ∈ F : ŷ_i = y_i}| / |F|      (flipped images predicted as their true label)

memorized + recovered ≤ 1 (the rest are predicted as a third class). A share over an empty
set is NaN. The literature (Zhang et al. 2017; Arpit et al. 2017) reads a rising
`memorized` with falling test accuracy as the network fitting the noise. Measure it in
eval mode on the unmixed training images, so runs with and without mixing compare.
"""

from __future__ import annotations

import torch

KEYS = ("rate", "fit_clean", "memorized", "recovered")


@torch.no_grad()
def noise_metrics(
    predicted: torch.Tensor, given_labels: torch.Tensor, true_labels: torch.Tensor
) -> dict[str, float]:
    """{rate, fit_clean, memorized, recovered, n_flipped} (see the module docstring).

    `predicted`: (N,) predicted classes, or (N, K) logits/probabilities (argmax taken).
    Everything is counted on `predicted`'s device; the counts cross to the host once.
    """
    pred = predicted.argmax(dim=1) if predicted.ndim == 2 else predicted
    given = given_labels.to(pred.device)
    true = true_labels.to(pred.device)
    flipped = given != true
    hit_given = pred == given
    counts = torch.stack(
        [
            flipped.sum(),
            (hit_given & ~flipped).sum(),
            (hit_given & flipped).sum(),
            ((pred == true) & flipped).sum(),
        ]
    ).tolist()  # the one host sync
    n = len(pred)
    n_flipped, clean_hits, memorized, recovered = counts
    n_clean = n - n_flipped
    return {
        "rate": n_flipped / n if n else float("nan"),
        "fit_clean": clean_hits / n_clean if n_clean else float("nan"),
        "memorized": memorized / n_flipped if n_flipped else float("nan"),
        "recovered": recovered / n_flipped if n_flipped else float("nan"),
        "n_flipped": int(n_flipped),
    }
