"""Retrieval quality of embeddings: leave-one-out recall@1 and MAP@R under cosine similarity.

For each query i (every item in turn), the other items are ranked by cosine similarity.
- recall@1: the fraction of queries whose nearest other item has the query's label.
- MAP@R (Musgrave et al., 2020): with R = the number of other items of the query's class,
  MAP@R_i = (1/R)·Σ_{k=1..R} P(k)·rel(k), P(k) the precision among the top k; averaged
  over queries with R ≥ 1.
Similarities are computed in chunks of queries, so memory stays O(chunk × N).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def retrieval_metrics(
    features: torch.Tensor, labels: torch.Tensor, chunk: int = 1024
) -> dict[str, float]:
    n = len(labels)
    if n < 2:
        return {}
    z = F.normalize(features.float(), dim=1)
    y = labels.to(z.device)
    class_counts = torch.bincount(y)
    r_all = class_counts[y] - 1  # other items of the same class
    max_r = int(r_all.max())
    hits1 = torch.zeros((), dtype=torch.float64, device=z.device)
    ap_sum = torch.zeros((), dtype=torch.float64, device=z.device)
    n_ap = int((r_all > 0).sum())
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        sim = z[lo:hi] @ z.T
        rows = torch.arange(hi - lo, device=z.device)
        sim[rows, rows + lo] = -float("inf")  # leave the query out
        k = max(1, min(max_r, n - 1))
        top = sim.topk(k, dim=1).indices
        rel = (y[top] == y[lo:hi, None]).to(torch.float64)
        hits1 += rel[:, 0].sum()
        if max_r > 0:
            r = r_all[lo:hi].to(torch.float64)
            ranks = torch.arange(1, k + 1, device=z.device, dtype=torch.float64)
            precision_at = rel.cumsum(dim=1) / ranks
            within_r = ranks[None, :] <= r[:, None]
            ap = (precision_at * rel * within_r).sum(dim=1) / r.clamp_min(1)
            ap_sum += ap[r > 0].sum()
    return {
        "recall_at_1": float(hits1 / n),
        "map_at_r": float(ap_sum / n_ap) if n_ap else float("nan"),
    }
