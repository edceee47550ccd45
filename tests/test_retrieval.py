"""Retrieval metrics: a toy set with answers worked out by hand, and a brute-force reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from regx.metrics.retrieval import retrieval_metrics


def brute_force(features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Leave-one-out recall@1 and MAP@R, one query at a time, in float64 and plain Python."""
    z = F.normalize(features.double(), dim=1)
    ys = labels.tolist()
    hits, aps = [], []
    for i in range(len(ys)):
        r = sum(1 for j, y in enumerate(ys) if j != i and y == ys[i])
        if r == 0:
            continue
        sims = [(float(z[i] @ z[j]), j) for j in range(len(ys)) if j != i]
        order = [j for _, j in sorted(sims, key=lambda t: -t[0])]
        rel = [ys[j] == ys[i] for j in order[:r]]
        hits.append(float(rel[0]))
        found, ap = 0, 0.0
        for k, is_rel in enumerate(rel, start=1):
            if is_rel:
                found += 1
                ap += found / k
        aps.append(ap / r)
    return {"recall_at_1": sum(hits) / len(hits), "map_at_r": sum(aps) / len(aps)}


def toy() -> tuple[torch.Tensor, torch.Tensor]:
    """Six 2-D points at angles (degrees) 0, 10, 20 (class 0), 15, 100, 110 (class 1).

    Query by query (R = 2 for each), neighbours by angle distance:
      0°:   10 (0), 15 (1)          → hit@1; AP = (1/1 + 0)/2            = 1/2
      10°:  15 (1), 0/20 (0, 0)     → miss;  AP = (0 + 1/2)/2            = 1/4
      20°:  15 (1), 10 (0)          → miss;  AP = (0 + 1/2)/2            = 1/4
      15°:  10 (0), 20 (0)          → miss;  AP = 0
      100°: 110 (1), 20 (0)         → hit;   AP = (1 + 0)/2              = 1/2
      110°: 100 (1), 20 (0)         → hit;   AP = 1/2
    recall@1 = 3/6; MAP@R = (1/2 + 1/4 + 1/4 + 0 + 1/2 + 1/2)/6 = 2/6.
    """
    degrees = torch.tensor([0.0, 10.0, 20.0, 15.0, 100.0, 110.0])
    rad = degrees * math.pi / 180
    radius = torch.tensor([1.0, 3.0, 0.5, 2.0, 1.0, 7.0])  # cosine ignores the length
    features = torch.stack([rad.cos(), rad.sin()], dim=1) * radius[:, None]
    return features, torch.tensor([0, 0, 0, 1, 1, 1])


def test_toy_set_has_the_worked_out_answer() -> None:
    features, labels = toy()
    got = retrieval_metrics(features, labels)
    assert got["recall_at_1"] == pytest.approx(3 / 6)
    assert got["map_at_r"] == pytest.approx(2 / 6)
    assert brute_force(features, labels) == pytest.approx(got)


def test_perfectly_separated_classes_score_one() -> None:
    features = torch.tensor([[1.0, 0.01], [1.0, -0.01], [0.0, 1.0], [0.01, 1.0], [0.02, 1.0]])
    labels = torch.tensor([5, 5, 2, 2, 2])
    assert retrieval_metrics(features, labels) == {"recall_at_1": 1.0, "map_at_r": 1.0}


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_random_embeddings_match_brute_force_in_any_chunking(chunk: int) -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (90,), generator=gen)
    # Class-dependent means so the scores are neither 0 nor 1.
    features = torch.randn(90, 8, generator=gen) + torch.randn(5, 8, generator=gen)[labels]
    got = retrieval_metrics(features, labels, chunk=chunk)
    want = brute_force(features, labels)
    assert 0.2 < want["map_at_r"] < 0.95
    assert got == pytest.approx(want, rel=1e-9)


def test_queries_alone_in_their_class_are_left_out() -> None:
    """Class 7 has one item: it is no query (nothing to find) but still a distractor."""
    features, labels = toy()
    features = torch.cat([features, torch.tensor([[1.0, 0.05]])])  # right next to 0°, 10°
    labels = torch.cat([labels, torch.tensor([7])])
    got = retrieval_metrics(features, labels)
    assert got == pytest.approx(brute_force(features, labels))
    assert got["recall_at_1"] < 3 / 6  # the lone item now steals the 0° query's nearest slot


def test_degenerate_inputs() -> None:
    assert retrieval_metrics(torch.randn(1, 4), torch.tensor([0])) == {}
    lone = retrieval_metrics(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    assert math.isnan(lone["recall_at_1"]) and math.isnan(lone["map_at_r"])
