"""Retrieval quality of embeddings: leave-one-out recall@k and MAP@R under cosine similarity.

Every item is a query in turn; the other items are ranked by cosine similarity to it.
Let R_i be the number of other items with the query's label.
- recall@k (Recall@K of the metric-learning literature): the fraction of queries with at
  least one item of the query's label among their k nearest other items; recall@1 is
  precision@1.
- MAP@R (Musgrave et al., 2020): MAP@R_i = (1/R_i)·Σ_{k=1..R_i} P(k)·rel(k), P(k) the
  precision among the top k, rel(k) whether the k-th item has the query's label.
All average over the queries with R_i ≥ 1: a query alone in its class has no right
answer to find (as in pytorch-metric-learning's AccuracyCalculator). Ties in similarity
are broken by `topk`'s order.
Similarities are computed in chunks of queries, so memory stays O(chunk × N); float64
features are ranked in float64, anything else in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from regx.errors import check

DEFAULT_KS = (1, 2, 4, 8)


def check_ks(ks: Sequence[int]) -> list[int]:
    """The sorted distinct k of `retrieval.ks`; ConfigError unless a list of integers ≥ 1.
    Call it when building a run, so that a bad value fails before training."""
    is_list = isinstance(ks, (list, tuple)) and len(ks) > 0
    ok = is_list and all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks)
    check(ok, "retrieval.ks", list(ks) if is_list else ks, "must be a list of integers ≥ 1")
    return sorted(set(ks))


@torch.no_grad()
def retrieval_at_k(
    features: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    chunk: int = 1024,
) -> dict[str, float | int | dict[str, float]]:
    """{"recall_at_1", "map_at_r", "recall_at_k": {"1": …, "2": …}, "n_queries"}; {} if N < 2.

    recall_at_1 is there whether or not 1 is in `ks`; n_queries counts the queries with
    R_i ≥ 1 (every score is a mean over them; NaN when there are none).
    """
    ks = check_ks(ks)
    n = len(labels)
    if n < 2:
        return {}
    z = F.normalize(features.double() if features.dtype == torch.float64 else features.float())
    y = labels.to(z.device).long()
    same_class_others = torch.bincount(y)[y] - 1  # R_i
    has_match = same_class_others > 0
    n_queries = int(has_match.sum())
    if n_queries == 0:
        nan = float("nan")
        return {
            "recall_at_1": nan,
            "map_at_r": nan,
            "recall_at_k": {str(k): nan for k in ks},
            "n_queries": 0,
        }
    # Ranking deeper than the largest R (or k) is never needed, nor possible beyond N − 1.
    depth = min(n - 1, max(int(same_class_others.max()), ks[-1], 1))
    hits, ap_sum = _ranked_sums(z, y, same_class_others, has_match, depth, chunk)
    recall = {str(k): float(hits[min(k, depth) - 1] / n_queries) for k in ks}
    return {
        "recall_at_1": float(hits[0] / n_queries),
        "map_at_r": float(ap_sum / n_queries),
        "recall_at_k": recall,
        "n_queries": n_queries,
    }


def _ranked_sums(
    z: torch.Tensor,
    y: torch.Tensor,
    same_class_others: torch.Tensor,
    has_match: torch.Tensor,
    depth: int,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Over the counted queries: (number with a hit within the top j, for j = 1..depth;
    the sum of their AP@R), accumulated on the device."""
    n = len(y)
    ranks = torch.arange(1, depth + 1, device=z.device, dtype=torch.float64)
    hits = torch.zeros(depth, dtype=torch.float64, device=z.device)
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
        found_by = relevant.cumsum(dim=1)
        hits += (found_by[counted] > 0).sum(dim=0)
        precision_at = found_by / ranks
        within_r = ranks[None, :] <= r[:, None]
        ap = (precision_at * relevant * within_r).sum(dim=1) / r.clamp(min=1)
        ap_sum += ap[counted].sum()
    return hits, ap_sum
