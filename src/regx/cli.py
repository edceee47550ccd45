"""The `regx` command line (typer). Heavy imports (torch, Hydra) happen inside commands only,
so `regx --help` and `regx train --help` answer at once."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from regx.console_log import LevelPrefix
from regx.engine.signals import command_body

app = typer.Typer(
    name="regx",
    help="Experiment runner for regularization research in image classification.\n\n"
    "Compose dataset × model × mixing augmentation × loss × validation split from config "
    "groups, e.g.  regx train +aug=mixup loss=gamma_ce",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # plain click help: typer's rich help imports rich.markdown, markdown-it and pygments,
    # which more than doubles the time `regx --help` and `regx train --help` take
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from regx import __version__  # the package's __init__: no torch

        typer.echo(f"regx {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print regx's version and exit.",
    ),
) -> None:
    # the options of `regx` itself, before any command; --version acts in its callback
    del version


PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


class _StderrNow(logging.StreamHandler):
    """A handler on whatever sys.stderr is when a record comes (tests swap the stream)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        del value


@contextlib.contextmanager
def log_to_stderr() -> Iterator[None]:
    """regx's progress and log lines on stderr while a command Hydra does not run works
    (under Hydra, `regx train` logs through conf/hydra/job_logging/regx.yaml)."""
    logger = logging.getLogger("regx")
    if logger.handlers:
        yield
        return
    handler, level = _StderrNow(), logger.level
    handler.setFormatter(LevelPrefix("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _complete_overrides(ctx: typer.Context, incomplete: str) -> list[str]:
    """TAB on an override: config groups, their options and keys, read from conf/."""
    import os

    from regx.config.completion import bash_at_equals, complete_override

    done = list(ctx.params.get("overrides") or ())
    if bash_at_equals(os.environ):  # bash's `loss`, `=` with the `=` dropped by click
        done.append("=")
    return complete_override(done, incomplete)


# Everything Hydra reads, in order: overrides, and flags such as -m, --cfg job, --info
OVERRIDES = typer.Argument(
    None,
    help="Hydra overrides and flags, e.g. loss=gamma_ce +aug=mixup -m seed=0,1,2.",
    autocompletion=_complete_overrides,
    metavar="OVERRIDES",
    show_default=False,
)
# evaluate's: the test set and the scoring may change, never what trained the model
EVAL_OVERRIDES = typer.Argument(
    None,
    help="Overrides of the test set and the scoring, e.g. dataset.test_shift=corrupt "
    "shift.kind=noise trainer.eval_batch_size=256 (not the model, data or training).",
    autocompletion=_complete_overrides,
    metavar="OVERRIDES",
    show_default=False,
)


TRAIN_HELP = (
    "Train one run, or a sweep with -m.\n\n"
    "Everything after `train` goes to Hydra: overrides such as `loss=gamma_ce loss.gamma=0.5` "
    "or `+aug=mixup`, `-m seed=0,1,2` for a sweep, `--cfg job` to print the composed config, "
    "`--info`, `-c`.\n\n"
    "Config groups: dataset, model, aug, loss, split, trainer, experiment, scale, arm, "
    "condition, logger, hparams_search, hydra/launcher, hydra/sweeper "
    "(`regx list` shows their options)."
)


def folder(text: str) -> Path:
    """A path argument; "" (an unset shell variable) would otherwise mean the current folder."""
    if not text.strip():
        raise typer.BadParameter("empty: name a folder (an unset shell variable?)")
    return Path(text)


RUN_DIR = typer.Argument(
    ...,
    parser=folder,
    metavar="RUN_DIR",
    help="The run directory (holds .hydra/ and checkpoints/).",
)
RETRIEVAL_DIR = typer.Option(
    None,
    parser=folder,
    metavar="DIR",
    help="Retrieval on a folder DIR/<class>/<image> of any classes, with the run's model.",
)
EVAL_OUT = typer.Option(
    None,
    "--out",
    parser=folder,
    metavar="DIR",
    help="A new or empty folder for the report (default: RUN_DIR/eval/…).",
)


@app.command(context_settings=PASS_THROUGH, help=TRAIN_HELP)
def train(
    ctx: typer.Context,
    overrides: list[str] | None = OVERRIDES,
    resume: Path | None = typer.Option(
        None,
        "--resume",
        parser=folder,
        metavar="RUN_DIR",
        help="Continue the run in this directory from its last checkpoint.",
    ),
) -> None:
    """Train one run, or a sweep with -m."""
    with command_body():
        from regx.app.hydra_task import run_hydra

        code = run_hydra([*(overrides or []), *ctx.args], resume=resume)
    raise typer.Exit(code)


def _complete_group(incomplete: str) -> list[str]:
    from regx.config.completion import complete_group

    return complete_group(incomplete)


@app.command("list")
def list_options(
    group: str | None = typer.Argument(
        None, help="Only this config group.", autocompletion=_complete_group
    ),
) -> None:
    """The options of each config group and their parameters."""
    with command_body():
        from regx.config.catalog import print_catalog

        code = print_catalog(group)
    raise typer.Exit(code)


@app.command()
def report(
    paths: list[Path] = typer.Argument(
        ...,
        parser=folder,
        metavar="PATHS",
        help="Run or sweep directories, searched recursively.",
    ),
    sort: list[str] = typer.Option(
        [],
        "--sort",
        help="Order groups by the mean of a summary field, e.g. test.ece; repeatable: "
        "ties go by the next.",
    ),
    descending: bool = typer.Option(False, "--desc", help="Sort from the largest value down."),
    where: list[str] = typer.Option(
        [],
        "--where",
        help="Keep runs with KEY=VALUE (config group, config key, summary key or status); repeatable.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        parser=folder,
        metavar="DIR",
        help="Folder for report.md, runs.csv, compare.png (default: the one PATH given, else ./regx-report).",
    ),
    html: bool = typer.Option(
        False,
        "--html",
        help="Also write report.html: one self-contained page (figures inlined, sortable table) "
        "linked to each run's report.html.",
    ),
) -> None:
    """Compare runs: one row per group of runs that differ only by seed (mean ± std).

    Finds every run under PATH (single runs, multirun folders, nested), lists unfinished or
    failed runs as such, and writes report.md, runs.csv (one row per run) and compare.png;
    with --html also report.html.
    """
    from regx.errors import UserError

    try:
        with command_body(), log_to_stderr():
            from regx.report.sweep import sweep_report

            sweep_report(paths, out=out, sort=sort, descending=descending, where=where, html=html)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:  # writing into --out failed after the checks
        from regx.app.run_dirs import os_error_line

        typer.echo(f"error: {os_error_line(e, 'the report')}", err=True)
        raise typer.Exit(1) from None


@app.command(context_settings=PASS_THROUGH)
def evaluate(
    ctx: typer.Context,
    run_dir: Path = RUN_DIR,
    overrides: list[str] | None = EVAL_OVERRIDES,
    corruptions: str | None = typer.Option(
        None, help="Every corruption at every severity: `all`, or kinds such as noise,jpeg."
    ),
    severities: str = typer.Option("all", help="Severities of --corruptions, e.g. 1,3,5."),
    attack: str | None = typer.Option(None, help="Accuracy under attack: fgsm, pgd or fgsm,pgd."),
    eps: str = typer.Option(
        "1/255,2/255,4/255,8/255", help="L∞ budgets of --attack (pixels in [0, 1])."
    ),
    steps: int = typer.Option(10, help="PGD steps."),
    retrieval: Path | None = RETRIEVAL_DIR,
    out: Path | None = EVAL_OUT,
) -> None:
    """Re-evaluate a run's best checkpoint and write a fresh report in RUN_DIR/eval/….

    Overrides after RUN_DIR change the run's config for the evaluation, e.g.
    `regx evaluate RUN_DIR dataset.test_shift=corrupt shift.severity=5`. The temperature is
    fitted on the run's own validation set.
    """
    from regx.errors import UserError

    try:
        with command_body(), log_to_stderr():
            from regx.app.evaluate import evaluate as evaluate_run
            from regx.app.run_dirs import check_run_files
            from regx.engine.robustness import RobustnessRequest

            check_run_files(run_dir)
            extra = RobustnessRequest(corruptions, severities, attack, eps, steps, retrieval)
            args = [*(overrides or []), *ctx.args]
            out, summary = evaluate_run(run_dir, args, out_dir=out, robustness=extra)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    except OSError as e:  # e.g. RUN_DIR/eval cannot be created (a file, a read-only disk)
        from regx.app.run_dirs import os_error_line

        typer.echo(f"error: {os_error_line(e, 'the evaluation')}", err=True)
        raise typer.Exit(1) from None
    from regx.report.format import result_line

    typer.echo(f"{result_line(summary)}\nreport: {out / 'report.md'}")
