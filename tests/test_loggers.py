"""Trackers: `logger=tensorboard` event files that TensorBoard reads back (scalars, images,
and the HParams dashboard's rows as TensorBoard's own server answers them), `logger=mlflow`
runs in the SQLite store `out_dir/mlruns.db` that `mlflow.search_runs` returns, both from one
run with both loggers on; parallel jobs creating one store; and a missing tracker package
ends in one line naming the extra."""

from __future__ import annotations

import io
import json
import multiprocessing
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
        "out_dir": out_dir,
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
    # the resolved config: as text, and its identity keys as one HParams session
    assert "config/text_summary" in events.Tags()["tensors"]
    content = events.PluginTagToContent("hparams")
    # no experiment record: TensorBoard builds the table from every run's session
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["seed"].number_value == 0
    assert hparams["loss._target_"].string_value == "regx.losses.ce.CrossEntropy"
    assert hparams["trainer.epochs"].number_value == 2
    assert "trainer.threads" not in hparams and "out_dir" not in hparams  # not the experiment
    end = HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == 1  # STATUS_SUCCESS


def test_mlflow_run_holds_params_metrics_history_and_artifacts(tracked_run, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    run_dir, rows, summary = tracked_run["run_dir"], tracked_run["rows"], tracked_run["summary"]
    out_dir = tracked_run["out_dir"]
    assert (out_dir / "mlruns.db").is_file() and not (out_dir / "mlruns").exists()
    # what `mlflow ui --backend-store-uri sqlite:///OUT_DIR/mlruns.db` opens; no file store,
    # so no MLFLOW_ALLOW_FILE_STORE
    uri = f"sqlite:///{out_dir.resolve().as_posix()}/mlruns.db"
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
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
    # the artifacts sit beside the database, not under the folder the run started from
    stored = out_dir / "mlartifacts" / run.info.run_id / "artifacts"
    assert run.info.artifact_uri == stored.resolve().as_uri()
    assert (stored / "reliability.png").read_bytes() == (run_dir / "reliability.png").read_bytes()
    logged = json.loads((stored / "summary.json").read_text())
    assert logged["test"]["acc"] == summary["test"]["acc"]


# -- the HParams dashboard: two runs as TensorBoard's own server lists them ------------------
def _tensorboard_client(logdir: Path) -> Any:
    """A test client of the app `tensorboard --logdir LOGDIR` serves, loaded once."""
    from tensorboard import default, program
    from tensorboard.backend import application
    from werkzeug.test import Client

    tb = program.TensorBoard(default.get_plugins())
    flags = ["--logdir", str(logdir), "--load_fast", "false"]
    tb.configure(argv=[None, *flags, "--reload_interval", "0", "--reload_task", "blocking"])
    provider, multiplexer = tb._make_data_provider()
    app = application.TensorBoardWSGIApp(
        tb.flags, tb.plugin_loaders, provider, tb.assets_zip_provider, multiplexer
    )
    return Client(app)


def _post(client: Any, route: str, request: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        f"/data/plugin/hparams/{route}", data=json.dumps(request), content_type="application/json"
    )
    assert response.status_code == 200, response.data[:300]
    return json.loads(response.data)


def _log_run(run_dir: Path, config: dict[str, Any], test_acc: float, status: str) -> None:
    logger = TensorBoardLogger()
    logger.start(run_dir, config)
    for epoch, loss in ((1, 0.9), (2, 0.4)):
        logger.log_epoch({"epoch": epoch, "train_loss": loss, "val_acc": 1 - loss / 2})
    if status == "finished":
        logger.log_summary({"epochs_run": 2, "test": {"acc": test_acc}, "seed": 7}, run_dir)
    logger.finish(status)


def test_tensorboard_hparams_dashboard_lists_each_run_with_its_keys_and_metrics(tmp_path):
    ce = {"seed": 0, "loss": {"_target_": "CE"}, "trainer": {"epochs": 2, "threads": 1}}
    gamma = {"seed": 1, "loss": {"_target_": "GammaCE", "gamma": 0.5}, "trainer": {"epochs": 2}}
    _log_run(tmp_path / "sweep" / "0", ce, 0.875, "finished")
    _log_run(tmp_path / "sweep" / "1", gamma, 0.0, "failed")
    client = _tensorboard_client(tmp_path / "sweep")

    experiment = _post(client, "experiment", {"experimentName": ""})
    # the union of both runs' keys: loss.gamma although the first run has none
    names = {h["name"] for h in experiment["hparamInfos"]}
    assert names == {"seed", "loss._target_", "loss.gamma", "trainer.epochs"}
    tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"summary/test.acc", "train/loss", "val/acc"} <= tags
    statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
    request = {"startIndex": 0, "sliceSize": 10, "allowedStatuses": statuses, "colParams": []}
    found = _post(client, "session_groups", request)
    assert found["totalSize"] == 2
    groups = {g["name"]: g for g in found["sessionGroups"]}
    assert set(groups) == {"0/tensorboard", "1/tensorboard"}
    first, second = groups["0/tensorboard"], groups["1/tensorboard"]
    assert first["hparams"] == {"seed": 0, "loss._target_": "CE", "trainer.epochs": 2}
    assert second["hparams"]["loss.gamma"] == 0.5
    values = {m["name"]["tag"]: m["value"] for m in first["metricValues"]}
    assert values["summary/test.acc"] == pytest.approx(0.875)
    assert values["train/loss"] == pytest.approx(0.4)  # the last epoch's
    assert [s["status"] for s in (first["sessions"][0], second["sessions"][0])] == [
        "STATUS_SUCCESS",
        "STATUS_FAILURE",
    ]


# -- parallel jobs of a sweep creating one MLflow store ---------------------------------------
def _tracked_job(store: Path, name: str, barrier: Any) -> None:
    logger = MLflowLogger(store_dir=str(store), run_name=name)
    barrier.wait()  # both create the database at the same moment
    logger.start(store / name, {"seed": int(name[-1])})
    logger.log_epoch({"epoch": 1, "val_acc": 0.5})
    logger.finish("finished")


def test_parallel_jobs_create_one_mlflow_store(tmp_path):
    from mlflow.tracking import MlflowClient

    store = tmp_path / "out"
    context = multiprocessing.get_context("fork")  # mlflow is imported once, in this process
    barrier = context.Barrier(2)
    jobs = [context.Process(target=_tracked_job, args=(store, f"job{i}", barrier)) for i in (0, 1)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
    assert [job.exitcode for job in jobs] == [0, 0]
    client = MlflowClient(f"sqlite:///{store.as_posix()}/mlruns.db")
    experiment = client.get_experiment_by_name("regx")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted((r.info.run_name, r.info.status, r.data.params["seed"]) for r in runs) == [
        ("job0", "FINISHED", "0"),
        ("job1", "FINISHED", "1"),
    ]


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
        (  # the SQLite store's database layer, which mlflow-skinny does not install
            "sqlalchemy",
            MLflowLogger,
            "logger=mlflow needs the 'sqlalchemy' package, which is not installed: "
            "pip install 'regx[track]'",
        ),
    ],
)
def test_missing_tracker_package_names_the_extra(hidden, logger_cls, message, monkeypatch):
    import mlflow.tracking  # noqa: F401  (imported before its database layer is hidden)

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
