"""Load matplotlib and warm up the run report's figures in a background thread."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import BinaryIO

import torch

from regx.report import figures
from regx.report.figures import PRELOAD_THREAD
from regx.report.run_plots import plot_confidence, plot_curves, plot_reliability


def draw_dummy_report(sink: Callable[[], BinaryIO]) -> None:
    """Draw every figure of the report once, on made-up data, into `sink()` buffers.

    For `preload_in_background`: it exercises the same code paths (fonts, text
    sizes, hatches, log axis, legends) as a real report, so their one-time costs are paid
    while the run trains rather than at its end.
    """
    n, k = 60, 10
    logits = torch.linspace(-3.0, 3.0, n * k).reshape(n, k)
    probs = logits.softmax(dim=1)
    labels = torch.arange(n) % k
    metrics = {"acc": 0.5, "ece": 0.1, "mce": 0.2, "mean_confidence": 0.6, "overconfidence": 0.1}
    summary = {"test": metrics, "test_ts": metrics, "temperature": 2.0}
    history = [
        {
            "epoch": e,
            "train_loss": 1.0,
            "val_loss": 1.0,
            "train_acc": 0.5,
            "val_acc": 0.5,
            "val_ece": 0.1,
        }
        for e in (1, 2)
    ]
    plot_reliability(sink(), probs, probs, labels, 15, summary)
    plot_confidence(sink(), probs, labels, summary)
    plot_curves(sink(), history, 1)


def _load_and_warm_up() -> None:
    """Import matplotlib and draw each report figure once on dummy data (into memory): the
    first draw of a figure loads fonts, fills glyph and text-layout caches and builds the
    hatch and tick machinery, all of which the run's own report then finds ready."""
    import io

    try:
        draw_dummy_report(io.BytesIO)
    except Exception:
        # Only a warm-up: whatever failed here fails again, with its message, when the
        # run's report draws its figures; a traceback from a background thread would not help.
        return


def preload_in_background() -> None:
    """Load matplotlib and warm up the report's figures in a background thread, once per process.

    Called when a run starts: this work (about a second of Python on a busy CPU) then
    overlaps with data loading and training, which spend much of their time in torch
    kernels that release the GIL, and leaves the end of the run only the drawing of its
    own figures. `new_figure` joins the thread, so the report never races the import.

    Not a daemon thread: the interpreter must not shut down under it (a run that fails or
    is interrupted early) while it is inside matplotlib's C++ extensions, which then abort
    the process (SIGABRT, "terminate called without an active exception"); at worst the
    exit waits for the rest of the warm-up.
    """
    if "matplotlib" in sys.modules or figures._preload_threads():
        return  # loaded, or loading
    threading.Thread(target=_load_and_warm_up, name=PRELOAD_THREAD).start()
