"""The Hydra application behind `regx train`.

`run_hydra(args)` calls a `@hydra.main` app with `args` as its command line, so every Hydra
flag (-m, --cfg, -c, --info, hydra.* overrides) behaves exactly as in Hydra. Added around it:

- errors Hydra reports before the job starts (an unknown key, a missing option, a folder
  that cannot be created) are one line with the fix, exit code 2 (regx.app.hydra_errors;
  the full text with REGX_DEBUG=1 or HYDRA_FULL_ERROR=1);
- errors a user can cause during a job end in one line and a non-zero exit in a single
  run; in a multirun the job records `status: failed` and the sweep goes on;
- what a job may do to its run dir (regx.app.run_dirs): a finished run is never
  overwritten, one process per run dir (regx.app.run_lock), a single run that fails
  before training leaves no run dir, and a sweep worker whose launcher died stops.
"""

from __future__ import annotations

import io
import math
import os
import signal
import sys
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from regx.config import register_resolvers
from regx.engine.signals import (
    before_leaving_mid_import,
    interrupt_exit,
    leave_now,
    noting_signal,
    signal_received,
)
from regx.errors import Interrupted, RunInterrupted, RunPruned, UserError

# Here, not in `run_hydra`: a joblib worker imports this module to unpickle `task`, and
# resolves the job's hydra.sweep.dir (which uses regx's resolvers) before calling it.
register_resolvers()


def debug_mode() -> bool:
    """REGX_DEBUG or HYDRA_FULL_ERROR set to anything but 0: tracebacks are shown."""
    return any(
        os.environ.get(name, "") not in ("", "0") for name in ("REGX_DEBUG", "HYDRA_FULL_ERROR")
    )


class StderrGate(io.TextIOBase):
    """Holds back stderr until the job starts, so Hydra's pre-job errors can be condensed."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.buffer_text = io.StringIO()
        self.open = False

    def write(self, text: str) -> int:
        return (self.real if self.open else self.buffer_text).write(text)

    def flush(self) -> None:
        self.real.flush()

    def release(self) -> None:
        """The job started: pass everything through from now on."""
        if not self.open:
            self.open = True
            self.real.write(self.buffer_text.getvalue())

    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()


def _job_started() -> None:
    if isinstance(sys.stderr, StderrGate):
        sys.stderr.release()


def task(cfg: DictConfig) -> float:
    """The Hydra task function: one run in its own output directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from regx.app import run_lock
    from regx.config import hydra_compat

    _job_started()
    worker = run_lock.worker_signals()
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        if run_lock.watch_launcher():  # a sweep worker whose launcher died: start nothing
            _leave_run_dir(cfg, None, UserError("the sweep's launcher died"), multirun=False)
            return math.nan
        with worker.raising() if worker else nullcontext():
            return _run_job(cfg, run_dir, multirun, hydra_compat.task_overrides(hc))
    except Interrupted as e:  # a signal before training, in a worker: the worker ends too
        if worker is None:
            raise
        leave_now(e.exit_code)
    except SystemExit as e:  # a signal stopped the job (its checkpoint saved), as the sweep
        if run_lock.in_sweep_worker():  # end the worker too: nothing to report back to the launcher
            leave_now(e.code if isinstance(e.code, int) else 1)
        raise
    finally:
        if run_lock.orphaned():  # the job stopped (its checkpoint saved): end the worker too
            leave_now(128 + signal.SIGTERM)


def _run_job(cfg: DictConfig, run_dir: Path, multirun: bool, overrides: list[str]) -> Any:
    from regx.app.hydra_errors import job_os_error_message, with_env_hint
    from regx.app.run_dirs import JobGuard
    from regx.app.sweeps import objective_value
    from regx.engine.distributed import is_main_process

    guard = None
    try:
        guard = JobGuard.open(run_dir, locking=is_main_process())
        with before_leaving_mid_import(lambda: _leave_interrupted(cfg, guard, multirun)):
            summary, skipped = _train(cfg, guard, multirun, overrides)
    except (UserError, OSError) as e:
        if debug_mode():  # the traceback too; the run dir and exit code as without it
            traceback.print_exc()
        error = (
            e if isinstance(e, UserError) else UserError(job_os_error_message(e, guard, run_dir))
        )
        error = with_env_hint(cfg, error)
        _leave_run_dir(cfg, guard, error, multirun)
        if multirun and isinstance(error, RunPruned):  # the search's own doing, no failure
            print(error, flush=True)
            return math.nan
        print(f"error: {error}", file=sys.stderr, flush=True)
        # a signal stops the whole sweep; any other failure only this job
        if multirun and not isinstance(error, RunInterrupted):
            from regx.app.sweeps import JobFailure

            return JobFailure()
        sys.exit(error.exit_code)
    except Interrupted:  # a signal before training (data, split): nothing to keep
        _leave_interrupted(cfg, guard, multirun)
        raise
    except Exception as e:  # a bug: the run dir says so (not `running`), the traceback stays
        _leave_run_dir(cfg, guard, UserError(f"internal error: {type(e).__name__}: {e}"), multirun)
        raise
    finally:
        if guard is not None:
            guard.close()
    if skipped or not is_main_process():
        return objective_value(cfg, summary)  # under torchrun, rank 0 reports
    from regx.report.format import result_line

    print(
        f"{result_line(summary)}\nrun dir: {run_dir}\nreport:  {run_dir / 'report.md'}",
        flush=True,
    )
    return objective_value(cfg, summary)


def _train(cfg: DictConfig, guard: Any, multirun: bool, overrides: list[str]) -> tuple[dict, bool]:
    """Train the job in `guard.run_dir`: (summary, whether a finished run was reused)."""
    from regx.app import run_dirs
    from regx.app.sweeps import finished_run
    from regx.config.build import build_spec
    from regx.engine.distributed import is_main_process
    from regx.engine.run import train

    run_dir = guard.run_dir
    done = finished_run(cfg, run_dir)  # sweep.skip_done=true and this job finished before
    if done is not None:
        run_dirs.restore_hydra_files(run_dir)
        print(f"skipped, finished before: {run_dir}", flush=True)
        return done, True
    if run_dirs.is_finished(run_dir):
        how = "sweep" if multirun else "run"
        raise run_dirs.FinishedRunError(run_dirs.finished_message(run_dir, how))
    if is_main_process():  # under torchrun, rank 0 writes the run's files
        run_dirs.keep_hydra_files(run_dir)
    spec = build_spec(cfg, overrides)
    from regx.app.pruning import build_pruning_hook

    pruning = build_pruning_hook(cfg)  # a search trial: report the objective per epoch
    if pruning is not None:
        spec.hooks.append(pruning)
    from regx.report.figure_worker import FigureWorker

    # forked before the run loads data or touches CUDA: it loads matplotlib while the run
    # trains and draws the report's figures at the end (None: drawn inline)
    figures = FigureWorker.start() if is_main_process() else None
    with figures or nullcontext():
        return train(spec, run_dir, figures), False


def _leave_interrupted(cfg: DictConfig, guard: Any, multirun: bool) -> None:
    """The run dir of a job a signal ended before its training began, as after any failure
    there (an unstarted dir removed, lock released)."""
    if guard is not None and guard.training_started():
        return  # training records its own stop; after a second signal, nothing more
    line = interrupt_exit(Interrupted(signal_received() or signal.SIGINT))[1]
    _leave_run_dir(cfg, guard, UserError(line.removeprefix("error: ")), multirun)


def _leave_run_dir(cfg: DictConfig, guard: Any, error: UserError, multirun: bool) -> None:
    """After a failed job: a failure record, the run's own .hydra/ files back, or (a single
    run that never trained) no run dir at all; see regx.app.run_dirs."""
    from hydra.core.hydra_config import HydraConfig

    from regx.app import run_dirs
    from regx.engine.distributed import is_main_process

    if not is_main_process():
        return  # under torchrun, rank 0 writes the run's files
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    started = guard is not None and guard.training_started()
    fresh = guard is not None and guard.fresh
    if guard is not None:
        guard.close()
    if getattr(error, "keeps_run_files", False) or (not started and not fresh):
        run_dirs.restore_hydra_files(run_dir)  # an existing run this job left alone
    elif not started and not multirun:
        run_dirs.remove_unstarted_run(run_dir, Path(str(cfg.get("out_dir") or ".")))
    else:
        _record_failure(run_dir, error)


def _record_failure(run_dir: Path, error: UserError) -> None:
    """Leave a summary.json saying why, unless the engine already wrote one."""
    from regx.engine.outputs import read_json, write_json

    path = run_dir / "summary.json"
    try:
        if path.is_file() and read_json(path).get("status") not in (None, "running"):
            return
        write_json(path, {"status": "failed", "message": str(error)})
    except (OSError, ValueError, AttributeError):
        pass  # the disk may be the problem; the one-line message still reaches the user


def refusal_exit_code(error: UserError) -> int:
    """A command refused before anything ran exits 2 (usage) unless its error says otherwise."""
    return error.exit_code if error.exit_code != 1 else 2


def _exit_code(code: Any, gate: StderrGate, args: list[str]) -> int:
    """Hydra's exit status as an int; what it wrote before the job started, condensed to
    one line when it failed (an unknown key, a missing plugin)."""
    from regx.app.hydra_errors import error_line
    from regx.app.sweeps import missing_plugin_message

    if code is None:
        code = 0
    if isinstance(code, UserError):  # refused by a callback before the sweep launched
        print(f"error: {code}", file=sys.stderr)
        return refusal_exit_code(code)
    if not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    signum = signal_received()
    if code and signum is not None and code != 128 + signum:
        # the signal landed inside a library (composing the config), which then failed with
        # an error of its own: what the user did is interrupt, and that is the one line
        code, line = interrupt_exit(Interrupted(signum))
        print(line, file=sys.stderr)
        return code
    held = gate.buffer_text.getvalue()
    if not gate.open and held.strip():
        if code:
            message = missing_plugin_message(held) or error_line(held, args)
            print(f"error: {message}", file=sys.stderr)
            return 2
        sys.stderr.write(held)
    return code


def _before_launch(args: list[str], resume: Path | None) -> list[str]:
    """The command line Hydra gets; refuses (UserError) what must not start at all."""
    from regx.app import run_dirs, run_lock, run_paths, torchrun

    if resume is not None:
        run_lock.check_free(resume)
        args = run_paths.resume_args(resume) + args
    run_dirs.check_before_launch(args, resume)
    if resume is not None:
        run_dirs.check_resume_config(resume)
        if not (resume / "checkpoints" / "last.pt").is_file():
            print(
                f"warning: {resume} has no checkpoints/last.pt (the run stopped before its "
                "first checkpoint, or it was deleted): it trains again from epoch 1",
                file=sys.stderr,
            )
    # under torchrun: one run dir for all ranks, files and log lines from rank 0 only
    return [*args, *torchrun.torchrun_overrides(args)]


NAME_ANOTHER_FOLDER = "name another folder (hydra.run.dir, hydra.sweep.dir, out_dir or --resume)"


def run_hydra(args: list[str], resume: Path | None = None) -> int:
    """Run the Hydra app on `args`; returns the exit code."""
    import hydra

    from regx.app import run_dirs
    from regx.app.run_lock import RunDirBusy, mark_launcher, stop_workers_on_signal
    from regx.config import hydra_compat
    from regx.config.hydra_compat import prefer_regx_plugin_configs
    from regx.config.paths import config_dir
    from regx.engine import distributed

    try:
        args = _before_launch(args, resume)
        hydra_kwargs = hydra_compat.main_kwargs()
    except RunDirBusy as e:  # as when the job finds the lock taken
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return refusal_exit_code(e)
    except OSError as e:  # a folder named on the command line cannot even be looked at
        print(f"error: {e.filename}: {e.strerror or e}; {NAME_ANOTHER_FOLDER}", file=sys.stderr)
        return 2
    mark_launcher()  # a sweep's worker processes watch this process (regx.app.run_lock)
    main = hydra.main(config_path=str(config_dir()), config_name="config", **hydra_kwargs)(task)
    saved_argv, saved_stderr = sys.argv, sys.stderr
    gate = StderrGate(saved_stderr)
    sys.argv = ["regx train", *args]
    if not debug_mode():
        sys.stderr = gate
    code: Any = 0
    # the job's own cleanup is armed while `_train` runs; before that this one is needed
    before_job = run_dirs.BeforeJobBody(_train.__code__)
    try:
        # regx's conf/hydra/launcher/*.yaml and sweeper/*.yaml over the plugins' same-named
        # ones; behind the gate, since Hydra warns here about a plugin that fails to import
        prefer_regx_plugin_configs(config_dir())
        with before_job.watching(), noting_signal(stop_workers_on_signal):
            main()
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt as e:
        # A signal outside training (importing, composing, loading data, waiting on a
        # sweep's workers), or a second one while a run was stopping (RunAborted); during
        # training the first signal ends in a clean stop (engine.signals.StopRequest).
        sys.argv, sys.stderr = saved_argv, saved_stderr
        if debug_mode():
            raise
        code, line = interrupt_exit(e)
        print(line, file=sys.stderr)
        return code
    finally:
        sys.argv, sys.stderr = saved_argv, saved_stderr
        before_job.leave()  # a dir Hydra made for a job a signal ended before it began
        if distributed.launched_by_torchrun():
            distributed.shutdown()
    return _exit_code(code, gate, args)
