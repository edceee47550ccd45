"""Retrieval quality of embeddings: leave-one-out recall@1 and MAP@R under cosine similarity.

Every item is a query in turn; the other items are ranked by cosine similarity to it.
Let R_i be the number of other items with the query's label.
- recall@1: the fraction of queries whose nearest other item has the query's label.
- MAP@R (Musgrave et al., 2020): MAP@R_i = (1/R_i)·Σ_{k=1..R_i} P(k)·rel(k), P(k) the
  precision among the top k, rel(k) whether the k-th item has the query's label.
Both average over the queries with R_i ≥ 1: a query alone in its class has no right
answer to find (as in pytorch-metric-learning's AccuracyCalculator). Ties in similarity
are broken by `topk`'s order.
Similarities are computed in chunks of queries, so memory stays O(chunk × N).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def retrieval_metrics(
    features: torch.Tensor, labels: torch.Tensor, chunk: int = 1024
) -> dict[str, float]:
    """{"recall_at_1", "map_at_r"} of `features` (N, D) with class `labels` (N,); {} if N < 2."""
    n = len(labels)
    if n < 2:
        return {}
    z = F.normalize(features.float(), dim=1)
    y = labels.to(z.device).long()
    same_class_others = torch.bincount(y)[y] - 1  # R_i
    has_match = same_class_others > 0
    n_queries = int(has_match.sum())
    if n_queries == 0:
        return {"recall_at_1": float("nan"), "map_at_r": float("nan")}
    # Ranking deeper than the largest R is never needed.
    depth = int(same_class_others.max())
    ranks = torch.arange(1, depth + 1, device=z.device, dtype=torch.float64)
    hits_at_1 = torch.zeros((), dtype=torch.float64, device=z.device)
    ap_sum = torch.zeros((), dtype=torch.float64, device=z.device)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        sim = z[lo:hi] @ z.T
        rows = torch.arange(hi - lo, device=z.device)
        sim[rows, rows + lo] = -float("inf")  # leave the query out
        nearest = sim.topk(depth, dim=1).indices
        relevant = (y[nearest] == y[lo:hi, None]).to(torch.float64)
        r = same_class_others[lo:hi].to(torch.float64)
        counted = has_match[lo:hi]
        hits_at_1 += relevant[:, 0][counted].sum()
        precision_at = relevant.cumsum(dim=1) / ranks
        within_r = ranks[None, :] <= r[:, None]
        ap = (precision_at * relevant * within_r).sum(dim=1) / r.clamp(min=1)
        ap_sum += ap[counted].sum()
    return {
        "recall_at_1": float(hits_at_1 / n_queries),
        "map_at_r": float(ap_sum / n_queries),
    }
