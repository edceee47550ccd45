"""One process per run directory, and sweep workers that stop when their launcher dies.

Lock: a job holds `RUN/.regx-lock` while it runs. The file names the owner (pid, host, and
the process's start time where the system tells it, so that a recycled pid is not taken for
the owner) and is created atomically: a complete temp file is hard-linked to the lock's
name, which fails if the name exists, so a reader never sees half a lock. A lock whose owner
is gone (same host; no such pid, or a pid started at another time) is stale: it is moved
aside and the job takes the lock. A lock from another host is never taken over, since its
process cannot be checked from here; the message says how to remove it.

Parent watch: a `-m hydra/launcher=joblib` job runs in a worker process the launching
`regx train` started. Killed outright (SIGKILL, an OOM killer), the launcher cannot stop its
workers, which would go on training, and start the jobs already queued to them. A worker
therefore watches its parent: once the launcher is gone (the worker's parent pid changes)
it sends itself SIGTERM, which stops a training run after its step with a checkpoint
(`status: interrupted`, as any SIGTERM) and ends an idle worker at once; a worker that has
not ended after `ORPHAN_GRACE_S` seconds exits. `prctl(PR_SET_PDEATHSIG)` is not used: on
Linux it fires when the parent *thread* that forked the worker ends, and the launcher's
executor may fork from a thread that ends before the launcher does.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regx.engine.signals import InterruptOutsideTraining

from regx.errors import UserError
from regx.processes import process_alive, stat_fields

LOCK_NAME = ".regx-lock"
LAUNCHER_ENV = "REGX_LAUNCHER_PID"  # the pid of the `regx train` that launched a sweep
WATCH_INTERVAL_S = 0.5
ORPHAN_GRACE_S = 120.0  # time for an orphaned run to write its checkpoint and summary

_orphaned = threading.Event()
_watching = threading.Lock()
_watch_started = False


class RunDirBusy(UserError):
    """Another live process holds the run directory's lock."""

    exit_code = 1
    keeps_run_files = True


def process_start_time(pid: int) -> str | None:
    """When process `pid` started (Linux: clock ticks since boot), or None if unknown."""
    fields = stat_fields(pid) or []
    return fields[19] if len(fields) > 19 else None


def _owner_record() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": platform.node(), "start": process_start_time(pid)}


def _read_owner(path: Path) -> dict[str, Any] | None:
    """The lock's owner, or None for a file that is no regx lock (garbage, unreadable)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    return owner


def owner_is_gone(owner: dict[str, Any] | None) -> bool | None:
    """True: the owner no longer runs; False: it runs; None: another host (cannot tell)."""
    if owner is None:
        return True
    if owner.get("host") != platform.node():
        return None
    pid = owner["pid"]
    if not process_alive(pid):
        return True
    start = process_start_time(pid)
    return bool(owner.get("start") and start and owner["start"] != start)


class RunLock:
    """The lock of one run directory, held by this process (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        """Take `run_dir`'s lock; `RunDirBusy` if a live process holds it."""
        path = run_dir / LOCK_NAME
        if path.is_dir() and not path.is_symlink():
            raise UserError(
                f"{path} is a folder, where regx keeps the run's lock file: move it away, "
                "then run this again"
            )
        for _ in range(3):  # a stale lock moved aside, or a race with another taker
            if _create(path):
                return cls(path)
            _move_stale(path, _stale_owner(run_dir, path))
        raise RunDirBusy(f"{run_dir}: could not take {path} (other processes keep taking it)")

    def release(self) -> None:
        """Remove the lock if it is still this process's."""
        owner = _read_owner(self.path)
        if owner is not None and owner.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def check_free(run_dir: Path) -> None:
    """`RunDirBusy` now if a live process holds `run_dir`'s lock (before a resume says
    anything about the run; the job takes the lock itself when it starts)."""
    path = run_dir / LOCK_NAME
    if path.is_file():
        _stale_owner(run_dir, path)


def _stale_owner(run_dir: Path, path: Path) -> dict[str, Any] | None:
    """The owner of the lock file `path` if it is gone (None: no regx lock), else
    `RunDirBusy` naming the live one (or one on another host, which cannot be told)."""
    owner = _read_owner(path)
    gone = owner_is_gone(owner)
    if gone is False or gone is None:
        raise RunDirBusy(_busy_message(run_dir, owner, gone))
    return owner


def _move_stale(path: Path, stale: dict[str, Any] | None) -> None:
    """Move the stale lock `stale` out of the way; a lock another taker created meanwhile
    (it moved the stale one first) is put back."""
    aside = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return  # another taker moved it
    moved = _read_owner(aside)
    if moved != stale:
        with contextlib.suppress(OSError):
            os.link(aside, path)
    aside.unlink()


def _create(path: Path) -> bool:
    """Create the lock file atomically with this process as its owner; False if it exists."""
    tmp = path.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_owner_record()) + "\n")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create instead
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(tmp.read_text())
        return True
    finally:
        tmp.unlink()


def _busy_message(run_dir: Path, owner: dict[str, Any] | None, gone: bool | None) -> str:
    pid = owner.get("pid") if owner else "?"
    if gone is None:
        host = owner.get("host") if owner else "?"
        return (
            f"{run_dir} is in use by process {pid} on {host} ({run_dir / LOCK_NAME}); "
            f"wait for it to end, or, if no such process runs there, delete that file"
        )
    return (
        f"{run_dir} is in use by process {pid} (another regx run trains there); wait for it "
        f"to end or stop it (kill {pid}), then run this again"
    )


# -- sweep workers whose launcher died ----------------------------------------------------
def mark_launcher() -> None:
    """Record this process as the launcher of the jobs it starts (they inherit the env).

    Also keeps loky's resource tracker from warning about the semaphores of workers a
    signal ended (its own process, started from this environment): the sweep's last line
    is the interrupt's."""
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    quiet = "ignore:resource_tracker:UserWarning"
    given = os.environ.get("PYTHONWARNINGS", "")
    if quiet not in given.split(","):
        os.environ["PYTHONWARNINGS"] = f"{given},{quiet}" if given else quiet


def _launcher() -> int:
    """The pid `mark_launcher` recorded for this process's jobs, or 0 (none, or unreadable)."""
    try:
        return int(os.environ.get(LAUNCHER_ENV, "0"))
    except ValueError:
        return 0


def in_sweep_worker() -> bool:
    """Whether this process runs a job for a launcher other than itself (joblib, submitit)."""
    return os.environ.get(LAUNCHER_ENV, str(os.getpid())) != str(os.getpid())


def worker_signals() -> InterruptOutsideTraining | None:
    """In a joblib worker (the launcher's child): SIGINT ignored, SIGTERM handled as the
    `regx` command handles it; returns that handler (None elsewhere).

    Ctrl-C in the terminal reaches the launcher and its workers alike, and the launcher
    passes the stop on to each worker as one SIGTERM (`stop_workers_on_signal`); a worker's
    own SIGINT would be a second signal, which aborts a run without saving it (StopRequest
    keeps an ignored signal ignored). Outside training the SIGTERM raises `Interrupted`
    within the handler's `raising()`, so the job leaves its folder as a failed job does."""
    from regx.engine.signals import InterruptOutsideTraining

    launcher = _launcher()
    is_worker = launcher not in (0, os.getpid()) and os.getppid() == launcher
    if not is_worker or threading.current_thread() is not threading.main_thread():
        return None
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return InterruptOutsideTraining().install(signals=(signal.SIGTERM,))


def orphaned() -> bool:
    """Whether this worker's launcher died (the watch then stops this process)."""
    return _orphaned.is_set()


def watch_launcher() -> bool:
    """In a worker process the launcher started: watch it (once per process). True if the
    launcher is already gone, so the job should not start."""
    global _watch_started
    launcher = _launcher()
    if launcher in (0, os.getpid()):
        return False  # the launching process itself (basic launcher, single run)
    if os.getppid() != launcher:
        # never the launcher's child (a SLURM job, a nested command), or already orphaned
        return orphaned()
    with _watching:
        if not _watch_started:
            _watch_started = True
            threading.Thread(target=_watch, args=(launcher,), daemon=True).start()
    return False


def _watch(launcher: int) -> None:
    while os.getppid() == launcher:
        time.sleep(WATCH_INTERVAL_S)
    _orphaned.set()
    os.kill(os.getpid(), signal.SIGTERM)  # training stops after its step; idle: ends now
    time.sleep(ORPHAN_GRACE_S)
    os._exit(128 + signal.SIGTERM)


def stop_workers_on_signal(frame: Any) -> None:
    """A signal to the launcher of a joblib sweep (a `noting_signal` note, run before the
    signal unwinds the launcher, where joblib would kill its workers outright): pass it on to
    the worker processes as SIGTERM, whose runs then stop after their step with a checkpoint
    (idle or starting workers end at once), and wait for them (at most `ORPHAN_GRACE_S`)."""
    from regx.processes import child_processes, running

    workers = [
        pid
        for pid, cmdline in child_processes(os.getpid()).items()
        if "popen_loky" in cmdline  # not loky's resource tracker, not a figure worker
    ]
    for pid in workers:
        with contextlib.suppress(OSError):
            # SIGTERM whatever the launcher got: a KeyboardInterrupt outside training would
            # be caught by loky as the job's result, and the worker would take the next job
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + ORPHAN_GRACE_S
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
