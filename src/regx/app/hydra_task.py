"""The Hydra application behind `regx train`.

`run_hydra(args)` calls a `@hydra.main` app with `args` as its command line, so every Hydra
flag (-m, --cfg, -c, --info, hydra.* overrides) behaves exactly as in Hydra. Two things
are added around it:

- errors Hydra reports before the job starts (an unknown key, a missing option) are
  condensed to one line and exit with code 2 (full text with REGX_DEBUG=1 or
  HYDRA_FULL_ERROR=1);
- errors a user can cause during a job end in one line and a non-zero exit in a single
  run; in a multirun the job records `status: failed` and the sweep goes on.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from regx.config import register_resolvers
from regx.engine.signals import interrupt_exit
from regx.errors import RunInterrupted, UserError

log = logging.getLogger("regx")

# Here, not in `run_hydra`: a joblib worker imports this module to unpickle `task`, and
# resolves the job's hydra.sweep.dir (which uses regx's resolvers) before calling it.
register_resolvers()


def debug_mode() -> bool:
    return bool(os.environ.get("REGX_DEBUG")) or bool(os.environ.get("HYDRA_FULL_ERROR"))


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


def _condense(text: str) -> str:
    """Hydra's multi-line message as one line (tracebacks reduced to their last line)."""
    skip = (
        "Set the environment variable HYDRA_FULL_ERROR",
        "full_key:",
        "object_type=",
        "reference_type=",
    )
    # the hint is dropped first: after a traceback it is the last line, not the error
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(skip[0])
    ]
    if any(ln.startswith("Traceback") for ln in lines):
        lines = lines[-1:]
    if "Config search path:" in lines:  # the search path helps Hydra developers, not users
        lines = lines[: lines.index("Config search path:")]
    out = ""
    listing = False  # inside "Available options in 'group':" — join the options with commas
    for ln in lines:
        if ln.startswith(skip):
            continue
        if listing and " " not in ln:
            out += ("" if out.endswith(":") else ",") + " " + ln
            continue
        listing = ln.startswith("Available options")
        if out and not out.endswith((".", ":", ";")):
            out += ";"
        out += (" " if out else "") + ln
    # Hydra 1.4 prefixes a bad override's error with the whole command line; the error names it
    return re.sub(r"^Error when parsing index: \d+, string: .* out of \[.*\]\. ", "", out)


def _job_started() -> None:
    if isinstance(sys.stderr, StderrGate):
        sys.stderr.release()


def _objective(cfg: DictConfig, summary: dict[str, Any]) -> float | list[float]:
    """The value(s) a sweeper optimizes: `objective`, a dotted summary key (val.nll) → its
    number, or a list of keys ([val.acc,val.ece]) → a list of numbers; NaN where missing."""
    from omegaconf import ListConfig

    from regx.app.sweeps import objective_keys, summary_value

    objective = cfg.get("objective") or "val.acc"
    values = [summary_value(summary, key) for key in objective_keys(objective)]
    return values if isinstance(objective, (list, ListConfig)) else values[0]


def task(cfg: DictConfig) -> float:
    """The Hydra task function: one run in its own output directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    _job_started()
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    overrides = list(hc.overrides.task)
    try:
        from regx.app.sweeps import finished_run
        from regx.config.build import build_spec
        from regx.engine.run import train

        done = finished_run(cfg, run_dir)  # sweep.skip_done=true and this job finished before
        if done is not None:
            print(f"skipped, finished before: {run_dir}", flush=True)
            return _objective(cfg, done)
        spec = build_spec(cfg, overrides)
        from regx.app.pruning import build_pruning_hook

        pruning = build_pruning_hook(cfg)  # a search trial: report the objective per epoch
        if pruning is not None:
            spec.hooks.append(pruning)
        from regx.report.preload import preload_in_background

        preload_in_background()  # matplotlib loads while the run trains; its report needs it
        summary = train(spec, run_dir)
    except UserError as e:
        if debug_mode():
            raise
        _record_failure(run_dir, e)
        print(f"error: {e}", file=sys.stderr, flush=True)
        # a signal stops the whole sweep; any other failure only this job
        if multirun and not isinstance(e, RunInterrupted):
            return math.nan
        sys.exit(e.exit_code)
    from regx.engine.distributed import is_main_process

    if not is_main_process():
        return _objective(cfg, summary)  # under torchrun, rank 0 reports
    test = summary.get("test", {})
    print(
        f"test acc {100 * test.get('acc', math.nan):.2f}%  ECE {100 * test.get('ece', math.nan):.2f}%"
        f"  (after temperature scaling {100 * summary.get('test_ts', {}).get('ece', math.nan):.2f}%)"
        f"\nrun dir: {run_dir}\nreport:  {run_dir / 'report.md'}",
        flush=True,
    )
    return _objective(cfg, summary)


def _record_failure(run_dir: Path, error: UserError) -> None:
    """Leave a summary.json saying why, unless the engine already wrote one."""
    from regx.engine.distributed import is_main_process
    from regx.engine.outputs import read_json, write_json

    if getattr(error, "keeps_run_files", False):
        return  # e.g. a refused resume: the run dir stays as the run left it
    if not is_main_process():
        return  # under torchrun, rank 0 writes the run's files
    path = run_dir / "summary.json"
    try:
        if path.is_file() and read_json(path).get("status") not in (None, "running"):
            return
        write_json(path, {"status": "failed", "message": str(error)})
    except OSError:
        pass  # the disk may be the problem; the one-line message still reaches the user


def resume_args(run_dir: Path) -> list[str]:
    """The overrides that made `run_dir`, plus hydra.run.dir pointing back at it."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        raise UserError(
            f"{run_dir} is not a regx run directory (no .hydra/overrides.yaml); "
            "pass the folder that holds the run's .hydra/"
        )
    overrides = [str(o) for o in OmegaConf.load(overrides_file)]
    return [*overrides, f"hydra.run.dir={run_dir}"]


def _exit_code(code: Any, gate: StderrGate) -> int:
    """Hydra's exit status as an int; what it wrote before the job started, condensed to
    one line when it failed (an unknown key, a missing plugin)."""
    from regx.app.sweeps import missing_plugin_message

    if code is None:
        code = 0
    if not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    held = gate.buffer_text.getvalue()
    if not gate.open and held.strip():
        if code:
            print(f"error: {missing_plugin_message(held) or _condense(held)}", file=sys.stderr)
            return 2
        sys.stderr.write(held)
    return code


def run_hydra(args: list[str], resume: Path | None = None) -> int:
    """Run the Hydra app on `args`; returns the exit code."""
    import hydra

    from regx.app import torchrun
    from regx.app.sweeps import prefer_regx_plugin_configs
    from regx.config import hydra_compat
    from regx.config.paths import config_dir
    from regx.engine import distributed

    if resume is not None:
        try:
            args = resume_args(resume) + args
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        # under torchrun: one run dir for all ranks, files and log lines from rank 0 only
        args = [*args, *torchrun.torchrun_overrides(args)]
        hydra_kwargs = hydra_compat.main_kwargs()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    main = hydra.main(config_path=str(config_dir()), config_name="config", **hydra_kwargs)(task)
    saved_argv, saved_stderr = sys.argv, sys.stderr
    gate = StderrGate(saved_stderr)
    sys.argv = ["regx train", *args]
    if not debug_mode():
        sys.stderr = gate
    code: Any = 0
    try:
        # regx's conf/hydra/launcher/*.yaml and sweeper/*.yaml over the plugins' same-named
        # ones; behind the gate, since Hydra warns here about a plugin that fails to import
        prefer_regx_plugin_configs(config_dir())
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
        if distributed.launched_by_torchrun():
            distributed.shutdown()
    return _exit_code(code, gate)
