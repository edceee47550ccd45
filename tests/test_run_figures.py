"""The run report's figures and header: γ / λ / margin in curves.png when they vary, train
metrics on mixed batches named so, the accuracy mark visible at 100 %, split.png's title
by mode, and the test shift's settings in the report header."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from regx.report import figures
from regx.report.run_plots import plot_confidence, plot_curves, train_label
from regx.report.run_report import header_lines
from regx.report.split_plot import split_title


@pytest.fixture
def drawn(monkeypatch) -> list[Any]:
    """The figures the plot functions hand to `figures.save`, kept instead of written."""
    kept: list[Any] = []
    monkeypatch.setattr(figures, "save", lambda fig, path: kept.append(fig))
    return kept


def _history(epochs: int, **columns: Any) -> list[dict[str, Any]]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "train_acc": 0.5}
        row.update({"val_acc": 0.6, "val_ece": 0.1})
        row.update({k: v(e) if callable(v) else v for k, v in columns.items()})
        rows.append(row)
    return rows


def test_train_curves_name_mixed_batches():
    assert train_label(_history(3)) == "train"
    assert train_label(_history(3, mix_fraction=1.0)) == "train (mixed batches)"
    # mixing stopped after 2 of 4 epochs (aug.off_epoch=2), or every other batch mixed
    off = _history(4, mix_fraction=lambda e: 1.0 if e <= 2 else 0.0)
    assert train_label(off) == "train (50 % of batches mixed)"
    assert train_label(_history(3, mix_fraction=0.0)) == "train"


def test_curves_add_a_panel_for_what_varies(drawn):
    gamma = [0.1, 0.3, 0.5, 0.7]
    history = _history(
        4, mix_fraction=1.0, lam_mean=lambda e: 0.4 + 0.05 * e, gamma=lambda e: gamma[e - 1]
    )
    history[1]["margin"] = 0.35  # in one row only: one value, nothing varies
    assert plot_curves("unused.png", history, 3)
    (fig,) = drawn
    axes = fig.axes
    assert len(axes) == 4 and axes[-1].get_ylabel() == "γ / λ"
    lines = {line.get_label(): line for line in axes[-1].get_lines()}
    assert np.allclose(lines["γ (γ-CE)"].get_ydata(), gamma)
    assert np.allclose(lines["λ, mean over the mixed batches"].get_ydata(), [0.45, 0.5, 0.55, 0.6])
    assert "margin m (AM-Softmax)" not in lines
    assert {line.get_label() for line in axes[0].get_lines()} >= {"train (mixed batches)"}
    # the height grows with the panel, the margins above and below stay
    assert fig.get_figheight() == pytest.approx(1.9 * 4 + 1.0)


def test_constant_gamma_draws_the_three_panels(drawn):
    assert plot_curves("unused.png", _history(5, gamma=0.1), None)
    (fig,) = drawn
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy (%)", "validation ECE (%)"]


def test_the_accuracy_mark_is_inside_the_axes_at_100_percent(drawn):
    labels = torch.arange(40) % 4
    probs = torch.full((40, 4), 0.02)
    probs[torch.arange(40), labels] = 0.94
    summary = {"test": {"acc": 1.0, "mean_confidence": 0.94, "overconfidence": -0.06}}
    plot_confidence("unused.png", probs, labels, summary)
    (fig,) = drawn
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    marks = {line.get_label(): line.get_xdata()[0] for line in ax.get_lines()}
    assert marks["accuracy 100.00%"] == 1.0
    assert lo < 1.0 < hi  # not on the frame's right edge


def test_split_title_names_the_weights_only_where_they_are_used():
    info = {"mode": "topk", "discriminator": "logreg", "auc": 0.7134, "ess": 200.0}
    assert split_title({**info, "weight_max": 7.5}) == (
        "Adversarial validation (topk, logreg)\nAUC 0.713"
    )
    assert split_title({**info, "mode": "resample", "ess": 61.25, "weight_max": 7.5}) == (
        "Adversarial validation (resample, logreg)\nAUC 0.713, ESS 61.2, w max 7.5"
    )


@pytest.mark.parametrize(
    ("shift", "text"),
    [
        (
            {"mode": "corrupt", "kind": "jpeg", "severity": 4},
            "`corrupt` (shift.kind=jpeg, shift.severity=4)",
        ),
        ({"mode": "prior", "strength": 0.8}, "`prior` (shift.strength=0.8)"),
        (
            {
                "mode": "subpop",
                "score": "ink",
                "tilt": 2.0,
                "keep": 0.5,
                "test_size_before": 360,
                "test_size_after": 180,
                "z_test_before": 0.0123,
                "z_test_after": 0.8456,
            },
            "`subpop` (shift.score=ink, shift.tilt=2, shift.keep=0.5; mean standardized score "
            "of the test images 0.01 → 0.85, 360 → 180 images)",
        ),
    ],
)
def test_the_header_names_the_test_shift(shift, text):
    summary = {"dataset": {"name": "digits", "test_shift": shift["mode"]}, "shift": shift}
    trained = "\n".join(header_lines(summary, {}, None))
    assert f"Test set shifted: {text}; validation and training are not." in trained
    summary["evaluation"] = {"checkpoint": "best.pt", "run_dir": "r", "run_status": "finished"}
    evaluated = "\n".join(header_lines(summary, {}, None))
    assert f"test shift: {text}. The validation set is the run's own." in evaluated
    assert "Test set shifted" not in evaluated


def test_no_shift_adds_no_line():
    summary = {"dataset": {"name": "digits"}, "shift": {"mode": "none"}}
    assert not any("shift" in line for line in header_lines(summary, {}, None))
