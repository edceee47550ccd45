"""A run's research outputs, recomputed outside regx from its files: open-set retrieval from
features.npz, memorization from predictions.npz, and `regx.load_run` giving back the
logits and embeddings the run stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import regx
from conftest import FAST, run_cli
from fault_helpers import read_summary
from regx.config import compose_config
from regx.config.build import build_spec

RUN = [
    "dataset=digits",
    "trainer=smoke",
    "dataset.holdout_classes=3",
    "dataset.label_noise.rate=0.3",
    "outputs.features_dtype=float32",
    "between.pairs=200",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    done = run_cli(["train", *RUN, *FAST, f"hydra.run.dir={root / 'run'}"], cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "run"


def brute_force_retrieval(features: np.ndarray, labels: np.ndarray, k: int) -> dict[str, float]:
    """recall@1, recall@k and MAP@R by the definitions, one query at a time (float64)."""
    f = features.astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    sims = f @ f.T
    recall_1, recall_k, maps = [], [], []
    for i in range(len(labels)):
        others = np.delete(np.arange(len(labels)), i)
        order = others[np.argsort(-sims[i, others], kind="stable")]
        relevant = labels[order] == labels[i]
        r = int(relevant.sum())
        if r == 0:
            continue
        recall_1.append(float(relevant[0]))
        recall_k.append(float(relevant[:k].any()))
        hits = relevant[:r]
        precision_at = np.cumsum(hits) / np.arange(1, r + 1)
        maps.append(float((precision_at * hits).sum() / r))
    return {
        "recall_at_1": np.mean(recall_1),
        "recall_at_k": np.mean(recall_k),
        "map_at_r": np.mean(maps),
    }


def test_open_set_retrieval_equals_a_brute_force_computation_on_features_npz(run_dir: Path) -> None:
    summary = read_summary(run_dir)
    with np.load(run_dir / "features.npz") as npz:
        open_feats, open_labels = npz["open_features"], npz["open_labels"]
        assert list(npz["open_classes"]) == ["7", "8", "9"]
        assert npz["test_features"].shape[0] == summary["dataset"]["test_size"]
    found = summary["retrieval_open"]
    expected = brute_force_retrieval(open_feats, open_labels, k=4)
    assert found["n_queries"] == len(open_labels) > 100
    assert found["recall_at_1"] == pytest.approx(expected["recall_at_1"], abs=1e-9)
    assert found["recall_at_k"]["4"] == pytest.approx(expected["recall_at_k"], abs=1e-9)
    assert found["map_at_r"] == pytest.approx(expected["map_at_r"], abs=1e-9)
    assert found["classes"] == ["7", "8", "9"]


def test_held_out_classes_are_absent_from_every_classification_tensor(run_dir: Path) -> None:
    summary = read_summary(run_dir)
    assert summary["dataset"]["num_classes"] == 7
    with np.load(run_dir / "predictions.npz") as npz:
        assert npz["probs"].shape[1] == 7
        for key in ("labels", "val_labels", "train_given_labels", "train_true_labels"):
            assert npz[key].max() <= 6, key


def test_memorization_recomputed_from_predictions_npz(run_dir: Path) -> None:
    noise = read_summary(run_dir)["noise"]
    with np.load(run_dir / "predictions.npz") as npz:
        pred = npz["train_logits"].argmax(axis=1)
        flipped = npz["train_noisy_mask"]
        given, true = npz["train_given_labels"], npz["train_true_labels"]
    assert np.array_equal(flipped, given != true) and flipped.mean() > 0.2
    assert noise["memorized"] == pytest.approx(float((pred[flipped] == given[flipped]).mean()))
    assert noise["recovered"] == pytest.approx(float((pred[flipped] == true[flipped]).mean()))
    assert noise["fit_clean"] == pytest.approx(float((pred[~flipped] == given[~flipped]).mean()))


def test_load_run_gives_back_the_stored_logits_and_embeddings(run_dir: Path) -> None:
    run = regx.load_run(run_dir)
    data = build_spec(compose_config(RUN)).dataset.load(seed=0)
    with np.load(run_dir / "predictions.npz") as npz:
        assert np.array_equal(run.predict(data.test_x).numpy(), npz["logits"])
    with np.load(run_dir / "features.npz") as npz:
        assert np.array_equal(run.embed(data.open_x).numpy(), npz["open_features"])
    assert run.classes == [str(c) for c in range(7)]
    with pytest.raises(regx.errors.UserError, match="uint8"):
        run.predict(torch.zeros(2, 1, 8, 8))


def test_evaluate_retrieval_on_a_folder_of_classes_the_model_never_saw(
    run_dir: Path, tmp_path: Path
) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for c, name in enumerate(("spirals", "stripes", "blobs")):
        (tmp_path / "gallery" / name).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 90, (8, 8)) + 80 * c
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "gallery" / name / f"{i}.png")
    done = run_cli(["evaluate", str(run_dir), "--retrieval", str(tmp_path / "gallery")], tmp_path)
    assert done.returncode == 0, done.stderr
    out = Path(done.stdout.strip().splitlines()[-1].removeprefix("report: ")).parent
    found = read_summary(out)["retrieval_gallery"]
    assert found["classes"] == ["blobs", "spirals", "stripes"] and found["images"] == 15
    # the same numbers from the run's own embeddings of the same images
    images = torch.stack(
        [
            torch.from_numpy(np.array(Image.open(p)))[None]
            for name in found["classes"]
            for p in sorted((tmp_path / "gallery" / name).iterdir())
        ]
    )
    labels = np.repeat(np.arange(3), 5)
    expected = brute_force_retrieval(regx.load_run(run_dir).embed(images).numpy(), labels, k=4)
    assert found["recall_at_1"] == pytest.approx(expected["recall_at_1"], abs=1e-9)
    assert found["map_at_r"] == pytest.approx(expected["map_at_r"], abs=1e-9)
    assert "Gallery: 15 images of 3 classes" in (out / "report.md").read_text()
