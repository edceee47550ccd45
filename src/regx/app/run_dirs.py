"""What a `regx train` job may do to its run directory.

- A finished run (summary.json `status: finished`) is never trained into again, with or
  without its checkpoints: `regx train --resume RUN` and `hydra.run.dir=RUN regx train`
  end with one line that says so and how to re-score it (`regx evaluate RUN`); a sweep
  re-launched over finished jobs reuses them with `sweep.skip_done=true`.
- Hydra writes `.hydra/{config,hydra,overrides}.yaml` into the run dir before the job
  starts, also into an existing one. The first launch's files are copied to `.hydra/kept/`,
  and a job that leaves an existing run alone (finished, busy, refused, a bad value) puts
  them back, so the run's record always describes the run. Where the run dir is known
  before Hydra starts (`--resume RUN`, a literal `hydra.run.dir=RUN`), such a command is
  refused before anything is written.
- A single run that fails before training starts (a bad value, data that cannot be
  loaded, a signal, also one before the job body runs) leaves no run dir: Hydra's files
  are removed again, and the empty folders above them up to `out_dir`. In a sweep the
  job's folder stays, with `status: failed`, so that the sweep's report accounts for
  every job.
- A folder that exists and holds no regx run is not made a run dir (its files would be
  overwritten): name a new or empty one.
"""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from regx.app.run_lock import LOCK_NAME, RunLock
from regx.engine.files import HYDRA_FILES, put_back_hydra_files, read_hydra_files, summary_of
from regx.errors import ConfigError, DataError, UserError

KEPT_DIR = "kept"  # under .hydra/: the first launch's Hydra files
# Hydra's flags that print or check instead of running a job
NO_JOB_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "-sc")
# Hydra's modes, of which a command line may name one
HYDRA_MODES = {
    "-m": "-m", "--multirun": "-m", "-r": "--run", "--run": "--run", "--cfg": "--cfg",
    "-c": "--cfg", "--info": "--info", "-i": "--info", "--shell-completion": "--shell-completion",
    "-sc": "--shell-completion",
}  # fmt: skip


class UsageError(UserError):
    """A command line Hydra would refuse with a traceback."""

    exit_code = 2


def check_one_mode(args: list[str]) -> None:
    """Hydra runs one of -m, --run, --cfg, --info, --shell-completion per command."""
    modes = list(
        dict.fromkeys(HYDRA_MODES[a.split("=")[0]] for a in args if a.split("=")[0] in HYDRA_MODES)
    )
    if len(modes) > 1:
        hint = (
            "; to see a sweep job's config, drop -m: regx train --cfg job OVERRIDES"
            if "-m" in modes
            else ""
        )
        raise UsageError(f"{' and '.join(modes)} cannot be combined: Hydra runs one of them{hint}")


class FinishedRunError(UserError):
    """The run dir holds a finished run, which a new job may not overwrite."""

    exit_code = 2
    keeps_run_files = True


def is_finished(run_dir: Path) -> bool:
    summary = summary_of(run_dir)
    return summary is not None and summary.get("status") == "finished"


def finished_message(run_dir: Path, how: str) -> str:
    """`how`: "resume" (--resume), "run" (hydra.run.dir) or "sweep" (a multirun job)."""
    head = f"{run_dir} holds a finished run (summary.json: status finished), which is never "
    if how == "resume":
        head += "overwritten and has nothing left to resume"
    else:
        head += "overwritten"
    tail = (
        "re-launch with sweep.skip_done=true to reuse it, or use a new hydra.sweep.dir"
        if how == "sweep"
        else "train a new run without " + ("--resume" if how == "resume" else "hydra.run.dir")
    )
    return f"{head}; re-score it with: regx evaluate {shlex.quote(str(run_dir))} [OVERRIDES…], or {tail}"


# -- the first launch's .hydra/ files ---------------------------------------------------------
def _holds_run_files(run_dir: Path) -> bool:
    return any((run_dir / n).exists() for n in ("summary.json", "metrics.csv", "checkpoints"))


def keep_hydra_files(run_dir: Path) -> None:
    """Copy Hydra's files of a new run to .hydra/kept/ (an older run's are already gone).

    A folder that holds no run files yet never trained: kept/ from an earlier launch that
    stopped before training (Ctrl-C while loading data) describes no run, and is replaced."""
    kept = run_dir / ".hydra" / KEPT_DIR
    if _holds_run_files(run_dir):
        return
    files = read_hydra_files(run_dir)
    if not files:
        return
    kept.mkdir(exist_ok=True)
    for name, text in files.items():
        (kept / name).write_text(text)


def kept_hydra_files(run_dir: Path) -> dict[str, str]:
    """The run's own .hydra/ files: the kept copy, else those its last checkpoint keeps."""
    kept = run_dir / ".hydra" / KEPT_DIR
    files = {n: (kept / n).read_text() for n in HYDRA_FILES if (kept / n).is_file()}
    if files or not (run_dir / "checkpoints" / "last.pt").is_file():
        return files
    from regx.engine.checkpoint import load_checkpoint  # tensors and plain values only

    try:
        ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    except DataError:  # unreadable, or not safe to unpickle: nothing to put back
        return {}
    hydra_files = ckpt.get("hydra_files")
    return dict(hydra_files) if isinstance(hydra_files, dict) else {}


def restore_hydra_files(run_dir: Path) -> None:
    """Put the run's own .hydra/ files back over those this launch's Hydra wrote."""
    with contextlib.suppress(OSError):
        put_back_hydra_files(run_dir, kept_hydra_files(run_dir))


# -- a run that never started ------------------------------------------------------------------
def holds_only_hydra_files(run_dir: Path) -> bool:
    """Only what Hydra writes before a job (and the job's lock): no trace of training."""
    try:
        names = {p.name for p in run_dir.iterdir()}
        hydra = {p.name for p in (run_dir / ".hydra").iterdir()} if ".hydra" in names else set()
    except OSError:
        return False
    return names <= {".hydra", "train.log", LOCK_NAME} and hydra <= {*HYDRA_FILES, KEPT_DIR}


def remove_unstarted_run(run_dir: Path, out_dir: Path) -> None:
    """Remove a run dir that holds only Hydra's files, and the empty folders above it up to
    and including `out_dir`; never the working directory or a folder above it."""
    if not holds_only_hydra_files(run_dir):
        return
    import shutil

    keep = {Path.cwd().resolve(), *Path.cwd().resolve().parents}
    run_dir = run_dir.resolve()
    if run_dir in keep:
        return
    with contextlib.suppress(OSError):
        shutil.rmtree(run_dir)
    out_dir = out_dir.resolve()
    folder = run_dir.parent
    while folder not in keep and (folder == out_dir or out_dir in folder.parents):
        try:
            folder.rmdir()  # only if empty
        except OSError:
            return
        folder = folder.parent


class BeforeJobBody:
    """A signal after Hydra has made a single run's dir but before the job's own cleanup is
    armed: Hydra writes .hydra/ and train.log first, then the job imports torch.

    `note(frame)` (called from the signal handler, `engine.signals.noting_signal`) keeps
    Hydra's config of the job, unless `job_code` (the code that runs with the job's cleanup
    armed) is on the frame's stack; `leave()` then treats its dir as a job that failed
    before training: removed when it holds only Hydra's files (and no lock: another
    process may be loading data there), an existing run's own .hydra/ files put back
    otherwise. A sweep's jobs are left as they are."""

    def __init__(self, job_code: CodeType) -> None:
        self.job_code = job_code
        self.hydra_cfg: Any = None

    def watching(self) -> contextlib.ExitStack:
        """The block in which a signal is noted, and the dir left, as above."""
        from regx.engine.signals import before_leaving_mid_import, noting_signal

        stack = contextlib.ExitStack()
        stack.enter_context(noting_signal(self.note))
        stack.enter_context(before_leaving_mid_import(self.leave))
        return stack

    def note(self, frame: FrameType | None) -> None:
        while frame is not None:
            if frame.f_code is self.job_code:
                return  # the job sees to its dir
            frame = frame.f_back
        from hydra.core.hydra_config import HydraConfig

        self.hydra_cfg = HydraConfig.instance().cfg  # Hydra resets it while unwinding

    def leave(self) -> None:
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        hc, self.hydra_cfg = self.hydra_cfg, None
        if hc is None or OmegaConf.select(hc, "hydra.mode", default=None) != RunMode.RUN:
            return
        output_dir = OmegaConf.select(hc, "hydra.runtime.output_dir", default=None)
        run_dir = Path(str(output_dir)) if output_dir else None
        if run_dir is None or not run_dir.is_dir():
            return  # the signal came before Hydra made it
        if not holds_only_hydra_files(run_dir):
            restore_hydra_files(run_dir)
        elif not (run_dir / LOCK_NAME).exists():
            # Hydra's config node keeps the whole config as its parent
            out_dir = OmegaConf.select(hc.hydra, "..out_dir", default=None)
            remove_unstarted_run(run_dir, Path(str(out_dir)) if out_dir else run_dir)


# -- one job in its run dir -------------------------------------------------------------------
def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


@dataclass
class JobGuard:
    """A job's hold on its run dir: the lock, and what the dir held when the job began."""

    run_dir: Path
    lock: RunLock | None
    fresh: bool  # only Hydra's files: no run was here before this job
    summary_before: tuple[int, int] | None

    @classmethod
    def open(cls, run_dir: Path, locking: bool = True) -> JobGuard:
        lock = RunLock.acquire(run_dir) if locking else None
        fresh = holds_only_hydra_files(run_dir)
        return cls(run_dir, lock, fresh, _identity(run_dir / "summary.json"))

    def training_started(self) -> bool:
        """Whether this job wrote summary.json (the engine does when training starts)."""
        return _identity(self.run_dir / "summary.json") != self.summary_before

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


# -- before Hydra starts: commands whose run dir is known -------------------------------------
def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace(f"\\{value[0]}", value[0]).replace("\\\\", "\\")
    return value


def override_value(args: list[str], key: str) -> str | None:
    """The last literal value `args` give `key` (`key=…`, `+key=…`, `++key=…`)."""
    found = None
    for arg in args:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+") == key:
            found = _unquote(value)
    return found


def _check_sweep_dir(value: str | None) -> None:
    """A sweep puts its jobs' folders into hydra.sweep.dir: never into a run's own folder
    (its report would hide them, and `regx report` would find the run alone)."""
    if value is None or "${" in value or not value.strip():
        return
    sweep_dir = Path(value)
    if sweep_dir.is_file():
        raise ConfigError("hydra.sweep.dir", value, "is a file; name a folder for the sweep")
    if (sweep_dir / "summary.json").is_file() or (sweep_dir / "checkpoints").is_dir():
        raise ConfigError(
            "hydra.sweep.dir",
            value,
            "is a run's folder (it holds summary.json or checkpoints/); name another folder "
            "for the sweep's job folders",
        )


def check_before_launch(args: list[str], resume: Path | None) -> None:
    """Refuse, before Hydra writes anything, a single run that would overwrite a finished
    run or a folder that holds no run, an empty out_dir, and two of Hydra's modes."""
    check_one_mode(args)
    if any(a.split("=")[0] in NO_JOB_FLAGS for a in args):
        return
    out_dir = override_value(args, "out_dir")
    if out_dir is not None and not out_dir.strip():
        raise ConfigError("out_dir", "", "must name a folder (empty would put runs under /runs)")
    if any(a in ("-m", "--multirun") for a in args):
        _check_sweep_dir(override_value(args, "hydra.sweep.dir"))
        return  # each job checks its own folder (task)
    value = override_value(args, "hydra.run.dir")
    if value is None or "${" in value:
        return
    run_dir = Path(value) if value.strip() else Path.cwd()
    if run_dir.is_file():
        raise ConfigError("hydra.run.dir", value, "is a file; name a folder for the run")
    if not run_dir.is_dir():
        return
    if is_finished(run_dir):
        raise FinishedRunError(finished_message(run_dir, "resume" if resume else "run"))
    if not (run_dir / ".hydra").is_dir() and any(run_dir.iterdir()):
        raise ConfigError(
            "hydra.run.dir",
            value,
            "the folder exists and holds no regx run (no .hydra/), and a run would overwrite "
            "files there; name a new or empty folder",
        )


def check_resume_config(run_dir: Path) -> None:
    """`--resume RUN` rebuilds the config from .hydra/overrides.yaml and Hydra then rewrites
    .hydra/config.yaml: an edit of that file would be lost without a word. Refuse, leaving
    the edited file, when it differs from the run's own in a setting that changes numbers."""
    import yaml

    from regx.keys import config_differences

    kept = kept_hydra_files(run_dir).get("config.yaml")
    path = run_dir / ".hydra" / "config.yaml"
    try:
        current = path.read_text()
    except OSError:
        return  # Hydra writes it anew
    if kept is None or kept == current:
        return
    try:
        saved, edited = yaml.safe_load(kept), yaml.safe_load(current)
    except yaml.YAMLError:
        saved, edited = None, None
    if not isinstance(saved, dict) or not isinstance(edited, dict):
        differences = ["the file no longer holds a config"]
    else:
        differences = config_differences(saved, edited)
    if differences:
        raise UserError(
            f"{path} was edited ({'; '.join(differences)}), but --resume rebuilds the run's "
            "config from .hydra/overrides.yaml and would replace the file; nothing was changed: "
            "undo the edit to resume the run, or train a new run with those settings"
        )


def check_run_files(run_dir: Path) -> None:
    """The run's .hydra/config.yaml and overrides.yaml are YAML of the shape Hydra writes
    (`regx evaluate` rebuilds the run from them): else one line naming the file and the fix."""
    import yaml

    for name, kind in (("config.yaml", dict), ("overrides.yaml", list)):
        path = run_dir / ".hydra" / name
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as e:
            why = " ".join(str(getattr(e, "problem", None) or e).split())
        else:
            if isinstance(data, kind) or (data is None and kind is list):
                continue
            why = "it is empty" if data is None else f"holds a {type(data).__name__}"
        copy = run_dir / ".hydra" / KEPT_DIR / name
        fix = f"copy back {copy}, the run's own" if copy.is_file() else "restore it"
        raise UserError(f"{path} is unreadable ({why}); regx rebuilds the run from it: {fix}")


def os_error_line(error: OSError, what: str) -> str:
    """An OSError while writing `what` as one line: the path, the reason, the fix."""
    where = error.filename or "?"
    return (
        f"cannot write {what}: {where}: {error.strerror or error}; free space, fix the "
        "permissions or move the file in the way, then run the command again"
    )
