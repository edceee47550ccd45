"""Experiment trackers fed by the engine (`logger=…`); metrics.csv is always written regardless.

The `logger` config node maps names to nodes; `regx.config` instantiates each node that has
a `_target_`, and the engine calls `start`, `log_epoch`, `log_summary` and `finish` on it (on
the main process only when training on several processes).

- `logger=csv`: metrics.csv only (no tracker object).
- `logger=tensorboard`: event files in RUN_DIR/tensorboard (`tensorboard --logdir SWEEP_DIR`),
  with each run's hyperparameters and final metrics in the HParams dashboard.
- `logger=mlflow`: one MLflow run per regx run, in the SQLite database `out_dir/mlruns.db`
  (artifacts in `out_dir/mlartifacts`) unless `logger.mlflow.tracking_uri` names a server or
  another database.
- several at once: `logger=[csv,tensorboard,mlflow]`.
"""

from __future__ import annotations

import importlib
import io
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from regx.engine.tensorboard_hparams import (
    hparam_values,
    session_end_summary,
    session_start_summary,
)
from regx.errors import MissingExtraError

# The calibration report's figures, logged as images by the trackers that take images.
REPORT_IMAGES = ("reliability.png", "confidence.png")


class RunLogger:
    """Base class: override what the tracker needs."""

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        """Called once the run directory exists, with the resolved config."""

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One row of metrics.csv (keys: epoch, lr, train_loss, …)."""

    def log_summary(self, summary: dict[str, Any], run_dir: Path) -> None:
        """The final summary (and the run's files, e.g. reliability.png, in `run_dir`)."""

    def finish(self, status: str) -> None:
        """Called last, also when the run fails: `finished`, `diverged`, `failed`, `interrupted`."""


class Trackers:
    """`with Trackers(loggers, run_dir, config):` starts each logger on entry and finishes
    it on exit, with the run's outcome (`finished`, or the status of the error raised)."""

    def __init__(self, loggers: list[RunLogger], run_dir: Path, config: dict[str, Any]) -> None:
        self.loggers, self.run_dir, self.config = loggers, run_dir, config

    def __enter__(self) -> Trackers:
        for logger in self.loggers:
            logger.start(self.run_dir, self.config)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        from regx.errors import DivergedError, RunInterrupted

        if exc_type is None:
            status = "finished"
        elif issubclass(exc_type, DivergedError):
            status = "diverged"
        elif issubclass(exc_type, (RunInterrupted, KeyboardInterrupt)):
            status = "interrupted"
        else:
            status = "failed"
        for logger in self.loggers:
            logger.finish(status)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys; lists and other leaves are kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def numeric_items(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a flat dict (bools excluded), as floats."""
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def epoch_tag(column: str) -> str:
    """metrics.csv column → TensorBoard tag: `val_acc` → `val/acc` (grouped per split)."""
    for split in ("train", "val", "test"):
        if column.startswith(split + "_"):
            return f"{split}/{column[len(split) + 1 :]}"
    return column


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The final metrics the trackers record: the numbers of summary.json's test, test_ts,
    val, retrieval and split sections and the temperature, with dotted keys (`test.acc`)."""
    return {
        k: v
        for k, v in numeric_items(flatten(summary)).items()
        if k.split(".")[0] in ("test", "test_ts", "val", "retrieval", "split", "temperature")
    }


def _read_rgb(path: Path) -> Any:
    """A PNG as an (H, W, 3) uint8 array."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class TensorBoardLogger(RunLogger):
    """Per-epoch scalars (`train/loss`, `val/acc`, `lr`, …, step = epoch), the final summary
    (`summary/test.acc`, …), the config as text, the reliability and confidence figures as
    images, in `RUN_DIR/<subdir>`; and one HParams session per run: the identity keys of the
    config as hyperparameters (written at the start, so failed runs are listed too), its
    scalars as the metrics, the run's outcome as the session status.

    No experiment summary is written: TensorBoard then builds the HParams table from every
    run's session under `--logdir`, so runs of a sweep with different keys (`loss.gamma` in
    the γ-CE runs only) and different metrics all get their columns."""

    def __init__(self, subdir: str = "tensorboard") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtraError("tensorboard", "track", "logger=tensorboard") from None
        self._writer_cls = SummaryWriter
        self.subdir = subdir
        self.writer: Any = None
        self.last_epoch = 0

    def _add_proto(self, proto: Any) -> None:
        self.writer._get_file_writer().add_summary(proto)

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        import yaml

        self.writer = self._writer_cls(log_dir=str(run_dir / self.subdir))
        text = yaml.safe_dump(config, sort_keys=False)
        # TensorBoard renders text as markdown: indent four spaces for a code block
        self.writer.add_text("config", "\n".join("    " + ln for ln in text.splitlines()))
        self._add_proto(session_start_summary(hparam_values(config)))
        self.writer.flush()

    def log_epoch(self, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        self.last_epoch = epoch
        for column, value in numeric_items(row).items():
            if column != "epoch":
                self.writer.add_scalar(epoch_tag(column), value, epoch)
        self.writer.flush()  # a killed run keeps every epoch it finished

    def log_summary(self, summary: dict[str, Any], run_dir: Path) -> None:
        step = int(summary.get("epochs_run") or self.last_epoch)
        for tag, value in summary_metrics(summary).items():
            self.writer.add_scalar(f"summary/{tag}", value, step)
        for name in REPORT_IMAGES:
            if (run_dir / name).is_file():
                image = _read_rgb(run_dir / name)
                self.writer.add_image(Path(name).stem, image, step, dataformats="HWC")
        self.writer.flush()

    def finish(self, status: str) -> None:
        if self.writer is not None:
            self.writer.add_text("status", status)
            self._add_proto(session_end_summary(status))
            self.writer.close()
            self.writer = None


# The local MLflow store: one SQLite database and one artifact folder in `store_dir`.
DB_NAME = "mlruns.db"
ARTIFACT_DIR = "mlartifacts"


@contextmanager
def _exclusive(lock_path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (nothing when None): the parallel jobs of a sweep
    would otherwise race to create the same database's tables or the same experiment."""
    if lock_path is None:
        yield
        return
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _quiet_store_setup() -> Iterator[None]:
    """MLflow and Alembic log each table creation and migration at INFO level, and Alembic
    warns about MLflow's own schema while migrating: a run's console shows neither."""
    import warnings

    loggers = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="alembic")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` tracking URI (None for any other URI)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix) :] in ("", ":memory:"):
        return None
    return Path(uri[len(prefix) :])


class MLflowLogger(RunLogger):
    """One MLflow run per regx run: the resolved config as params, per-epoch metrics
    (step = epoch), the final summary as metrics (`test.acc`, …), the calibration figures,
    report.md and summary.json as artifacts.

    `tracking_uri: null` keeps everything in a local store in `store_dir` (`${out_dir}`,
    shared by all runs and sweeps under out_dir; no server): the SQLite database
    `mlruns.db` and the artifacts in `mlartifacts/`. Browse it with the full `mlflow`
    package (`mlflow-skinny` has no UI): `mlflow ui --backend-store-uri
    sqlite:///outputs/mlruns.db`. Any other URI (`http://host:5000`,
    `sqlite:///other.db`, `databricks`) is passed to MLflow.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "regx",
        run_name: str | None = None,
        store_dir: str = ".",
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingExtraError("mlflow-skinny", "track", "logger=mlflow") from None
        if tracking_uri is None or tracking_uri.startswith("sqlite:"):
            # mlflow-skinny leaves out what its database stores need
            for package in ("sqlalchemy", "alembic"):
                try:
                    importlib.import_module(package)
                except ImportError:
                    raise MissingExtraError(package, "track", "logger=mlflow") from None
        self._client_cls = MlflowClient
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.store_dir = store_dir
        self.client: Any = None
        self.run_id: str | None = None

    def _store(self) -> Path:
        return Path(self.store_dir).expanduser().resolve()

    def resolved_uri(self) -> str:
        """The tracking URI: `tracking_uri`, or `sqlite:///` + the absolute path of
        `store_dir/mlruns.db`."""
        if self.tracking_uri:
            return self.tracking_uri
        return "sqlite:///" + (self._store() / DB_NAME).as_posix()

    def _artifact_location(self) -> str | None:
        """The local store keeps artifacts beside its database (MLflow's default would be
        ./mlruns under whatever folder the run was started from)."""
        return None if self.tracking_uri else (self._store() / ARTIFACT_DIR).as_uri()

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(
                self.experiment, artifact_location=self._artifact_location()
            )
        except Exception:
            # on a server, a parallel job of the same sweep may have created it first
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        uri = self.resolved_uri()
        db = sqlite_path(uri)
        # the client creates the store (tables, migrations) at once: one job at a time
        with _exclusive(db.with_name(db.name + ".lock") if db else None), _quiet_store_setup():
            self.client = self._client_cls(tracking_uri=uri)
            experiment_id = self._experiment_id()
        run = self.client.create_run(
            experiment_id,
            run_name=self.run_name or run_dir.name,
            tags={"regx.run_dir": str(run_dir.resolve()), "mlflow.source.name": "regx"},
        )
        self.run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def log_epoch(self, row: dict[str, Any]) -> None:
        values = numeric_items(row)
        values.pop("epoch", None)
        self._log_metrics(values, int(row["epoch"]))

    def log_summary(self, summary: dict[str, Any], run_dir: Path) -> None:
        import json

        self._log_metrics(summary_metrics(summary), int(summary.get("epochs_run") or 0))
        for name in (*REPORT_IMAGES, "report.md"):
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        # summary.json itself is written after the trackers; log the same content
        buf = io.StringIO()
        json.dump(summary, buf, indent=2, default=str)
        self.client.log_text(self.run_id, buf.getvalue(), "summary.json")

    def finish(self, status: str) -> None:
        if self.client is not None and self.run_id is not None:
            mlflow_status = {"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
            self.client.set_terminated(self.run_id, mlflow_status)
            self.run_id = None
