"""Retrieval metrics: a toy set with answers worked out by hand, and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from regx.errors import ConfigError
from regx.metrics.retrieval import check_ks, retrieval_at_k


def retrieval_metrics(features, labels, chunk: int = 1024) -> dict[str, float]:
    """recall_at_1 and map_at_r of `retrieval_at_k`, the two headline numbers."""
    got = retrieval_at_k(features, labels, ks=(1,), chunk=chunk)
    return {key: got[key] for key in ("recall_at_1", "map_at_r") if key in got}


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


def brute_force_numpy(features: np.ndarray, labels: np.ndarray, ks: list[int]) -> dict:
    """recall@k, MAP@R and the number of queries from the full float64 similarity matrix."""
    z = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    hits = {k: [] for k in ks}
    aps = []
    for i in range(len(labels)):
        r = int((labels == labels[i]).sum()) - 1
        if r == 0:
            continue
        order = np.argsort(-sim[i], kind="stable")[: len(labels) - 1]
        rel = labels[order] == labels[i]
        for k in ks:
            hits[k].append(rel[:k].any())
        top = rel[:r]
        aps.append(float((np.cumsum(top) / np.arange(1, r + 1) * top).sum() / r))
    return {
        "recall_at_k": {str(k): float(np.mean(hits[k])) for k in ks},
        "map_at_r": float(np.mean(aps)),
        "n_queries": len(aps),
    }


@pytest.mark.parametrize("chunk", [5, 1024])
def test_recall_at_k_matches_numpy_brute_force_in_float64(chunk: int) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, 120)
    labels[:1] = 9  # one class of a single item: a distractor, never a query
    features = rng.normal(size=(120, 6)) + 1.2 * rng.normal(size=(10, 6))[labels]
    ks = [1, 2, 4, 8, 16]
    got = retrieval_at_k(torch.from_numpy(features), torch.from_numpy(labels), ks, chunk=chunk)
    want = brute_force_numpy(features, labels, ks)
    assert got["n_queries"] == want["n_queries"] == 119
    assert got["map_at_r"] == pytest.approx(want["map_at_r"], abs=1e-9)
    assert got["recall_at_1"] == pytest.approx(want["recall_at_k"]["1"], abs=1e-9)
    assert list(got["recall_at_k"]) == ["1", "2", "4", "8", "16"]
    for k in want["recall_at_k"]:
        assert got["recall_at_k"][k] == pytest.approx(want["recall_at_k"][k], abs=1e-9), k
    r = got["recall_at_k"]
    assert 0.3 < r["1"] < r["4"] < r["16"] < 1.0  # neither trivial nor saturated


def test_recall_at_k_on_the_toy_set_and_beyond_the_gallery() -> None:
    """toy(): 0°, 100°, 110° hit at rank 1, 10° and 20° at rank 2, 15° (class 1, nearest
    10°, 20°, 0° of class 0) only at rank 4, at 100°; k beyond the 5 others is capped."""
    features, labels = toy()
    got = retrieval_at_k(features, labels, ks=[2, 1, 4, 50])
    assert got["recall_at_k"] == {"1": 3 / 6, "2": 5 / 6, "4": 1.0, "50": 1.0}
    assert got["recall_at_1"] == 3 / 6 and got["map_at_r"] == pytest.approx(2 / 6)
    assert got["n_queries"] == 6
    assert retrieval_metrics(features, labels) == {
        "recall_at_1": got["recall_at_1"],
        "map_at_r": got["map_at_r"],
    }


def test_recall_at_k_degenerate_and_bad_ks() -> None:
    assert retrieval_at_k(torch.randn(1, 4), torch.tensor([0])) == {}
    lone = retrieval_at_k(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    assert lone["n_queries"] == 0 and math.isnan(lone["recall_at_k"]["8"])
    with pytest.raises(
        ConfigError, match=r"^retrieval.ks=\[2, 0\]: must be a list of integers ≥ 1$"
    ):
        retrieval_at_k(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), ks=[2, 0])
    with pytest.raises(ConfigError, match=r"^retrieval.ks=4: must be a list of integers ≥ 1$"):
        check_ks(4)
    assert check_ks([8, 1, 2, 4, 2]) == [1, 2, 4, 8]
