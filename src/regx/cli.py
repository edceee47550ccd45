"""The `regx` command line (typer). Heavy imports (torch, Hydra) happen inside commands only,
so `regx --help` and `regx train --help` answer at once."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    name="regx",
    help="Experiment runner for regularization research in image classification.\n\n"
    "Compose dataset × model × mixing augmentation × loss × validation split from config "
    "groups, e.g.  regx train +aug=mixup loss=gamma_ce",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


TRAIN_HELP = (
    "Train one run, or a sweep with -m.\n\n"
    "Everything after `train` goes to Hydra: overrides such as `loss=gamma_ce loss.gamma=0.5` "
    "or `+aug=mixup`, `-m seed=0,1,2` for a sweep, `--cfg job` to print the composed config, "
    "`--info`, `-c`.\n\n"
    "Config groups: dataset, model, aug, loss, split, trainer, experiment, logger "
    "(`regx list` shows their options)."
)


@app.command(context_settings=PASS_THROUGH, help=TRAIN_HELP)
def train(
    ctx: typer.Context,
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the run in this directory from its last checkpoint."
    ),
) -> None:
    """Train one run, or a sweep with -m."""
    from regx.config.app import run_hydra

    raise typer.Exit(run_hydra(list(ctx.args), resume=resume))


@app.command("list")
def list_options(group: str | None = typer.Argument(None, help="Only this config group.")) -> None:
    """The options of each config group and their parameters."""
    from regx.config.catalog import print_catalog

    raise typer.Exit(print_catalog(group))


def main() -> None:
    import sys

    if len(sys.argv) <= 1:  # bare `regx`: help, successfully (click would exit 2)
        sys.argv.append("--help")
    app()


if __name__ == "__main__":
    main()
