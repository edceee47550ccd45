"""Trackers: `logger=tensorboard` event files that TensorBoard reads back, `logger=mlflow`
runs that `mlflow.search_runs` returns, both from one run with both loggers on; and a
missing tracker package ends in one line naming the extra."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import train_in_process
from regx.engine.loggers import MLflowLogger, TensorBoardLogger, epoch_tag, flatten
from regx.engine.outputs import read_metrics_csv
from regx.errors import MissingExtraError


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One smoke run with logger=[csv,tensorboard,mlflow], out_dir in a temp folder."""
    out_dir = tmp_path_factory.mktemp("tracked")
    run_dir = out_dir / "run"
    overrides = ["trainer=smoke", "logger=[csv,tensorboard,mlflow]", f"out_dir={out_dir}"]
    summary = train_in_process(overrides, run_dir)
    return {
        "summary": summary,
        "run_dir": run_dir,
        "rows": read_metrics_csv(run_dir / "metrics.csv"),
        "store": out_dir / "mlruns",
    }


def test_tensorboard_events_hold_the_epoch_metrics_summary_and_figures(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    run_dir, rows, summary = tracked_run["run_dir"], tracked_run["rows"], tracked_run["summary"]
    events = EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0}
    )
    events.Reload()
    assert len(rows) == 2
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "val_ece", "lr"):
        scalars = events.Scalars(epoch_tag(column))
        assert [e.step for e in scalars] == [1, 2], column
        # metrics.csv keeps 6 significant digits, the event file float32
        assert [e.value for e in scalars] == pytest.approx([r[column] for r in rows], rel=1e-5)
    final = {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}
    assert final["summary/test.acc"] == pytest.approx(summary["test"]["acc"], rel=1e-6)
    assert final["summary/test_ts.ece"] == pytest.approx(summary["test_ts"]["ece"], rel=1e-6)
    assert final["summary/val.nll"] == pytest.approx(summary["val"]["nll"], rel=1e-6)

    # the reliability diagram, as the PNG of the run's report
    (image,) = events.Images("reliability")
    logged = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
    on_disk = np.asarray(Image.open(run_dir / "reliability.png").convert("RGB"))
    assert logged.shape == on_disk.shape
    assert np.array_equal(logged, on_disk)
    # the resolved config: as text, and as hyperparameters next to the final metrics
    assert "config/text_summary" in events.Tags()["tensors"]
    start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = HParamsPluginData.FromString(start).session_start_info.hparams
    assert hparams["seed"].number_value == 0
    assert hparams["loss._target_"].string_value == "regx.losses.ce.CrossEntropy"


def test_mlflow_run_holds_params_metrics_history_and_artifacts(tracked_run, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    run_dir, rows, summary = tracked_run["run_dir"], tracked_run["rows"], tracked_run["summary"]
    uri = tracked_run["store"].resolve().as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    (run,) = mlflow.search_runs(experiment_names=["regx"], output_format="list")

    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    assert run.data.tags["regx.run_dir"] == str(run_dir.resolve())
    metrics = run.data.metrics
    assert metrics["test.acc"] == pytest.approx(summary["test"]["acc"], rel=1e-12)
    assert metrics["val.nll"] == pytest.approx(summary["val"]["nll"], rel=1e-12)
    assert metrics["temperature"] == pytest.approx(summary["temperature"], rel=1e-12)
    assert metrics["val_acc"] == pytest.approx(rows[-1]["val_acc"], rel=1e-5)

    client = MlflowClient(uri)
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        [r["train_loss"] for r in rows], rel=1e-5
    )
    params = run.data.params
    assert params["seed"] == "0"
    assert params["trainer.epochs"] == "2"
    assert params["loss._target_"] == "regx.losses.ce.CrossEntropy"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"reliability.png", "confidence.png", "report.md", "summary.json"} <= artifacts


def test_tracker_params_are_the_flattened_config():
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": [1, 2],
    }
    assert epoch_tag("val_acc") == "val/acc"
    assert epoch_tag("train_loss") == "train/loss"
    assert epoch_tag("lr") == "lr"


@pytest.mark.parametrize(
    ("hidden", "logger_cls", "message"),
    [
        (
            "torch.utils.tensorboard",
            TensorBoardLogger,
            "logger=tensorboard needs the 'tensorboard' package, which is not installed: "
            "pip install 'regx[track]'",
        ),
        (
            "mlflow",
            MLflowLogger,
            "logger=mlflow needs the 'mlflow-skinny' package, which is not installed: "
            "pip install 'regx[track]'",
        ),
    ],
)
def test_missing_tracker_package_names_the_extra(hidden, logger_cls, message, monkeypatch):
    # None in sys.modules makes the import fail, also for modules an earlier test imported
    for name in [m for m in sys.modules if m == hidden or m.startswith(hidden + ".")] + [hidden]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError) as caught:
        logger_cls()
    assert str(caught.value) == message


def test_cli_names_the_extra_of_a_missing_tracker_in_one_line(cli, tmp_path: Path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['mlflow'] = None\n")
    r = cli("train", "logger=mlflow", "trainer=smoke", env={"PYTHONPATH": str(hide)})
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "error: logger=mlflow needs the 'mlflow-skinny' package, which is not installed: "
        "pip install 'regx[track]'"
    )
