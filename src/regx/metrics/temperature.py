"""Temperature scaling (Guo et al., 2017): one scalar T > 0, probabilities softmax(z / T).

T minimizes the (optionally importance-weighted) validation NLL. The search runs over
log T with L-BFGS (so T stays positive) in float64; the fit is never allowed to end
worse than T = 1 on the data it was fitted on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _nll(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None, t: torch.Tensor
) -> torch.Tensor:
    per = F.cross_entropy(logits / t, labels, reduction="none")
    if weights is None:
        return per.mean()
    return (weights * per).sum() / weights.sum()


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    max_iter: int = 200,
) -> float:
    """The temperature minimizing NLL of `logits / T` on (`logits`, `labels`)."""
    if len(labels) == 0:
        return 1.0
    z = logits.detach().to("cpu", torch.float64)
    y = labels.detach().cpu()
    w = None if weights is None else weights.detach().to("cpu", torch.float64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _nll(z, y, w, log_t.exp())
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    with torch.no_grad():
        one = torch.ones((), dtype=torch.float64)
        if not (
            t > 0 and _nll(z, y, w, torch.tensor(t, dtype=torch.float64)) <= _nll(z, y, w, one)
        ):
            return 1.0
    return t
