"""torchrun: every rank runs the Hydra app with the same run directory.

Before Hydra starts, the processes join one process group (gloo for CPU tensors, NCCL for
CUDA ones) and rank 0 resolves `hydra.run.dir`; all ranks get it as an override. Ranks > 0
keep Hydra's files (.hydra/, train.log) and their console log below WARNING out of it.
"""

from __future__ import annotations

from regx.engine.distributed import (
    broadcast_from_main,
    init_process_group,
    launched_by_torchrun,
    rank,
)

# Hydra overrides for ranks > 0: no .hydra/ and no train.log lines of their own in the run
# dir, and only warnings on the console (torchrun shows every rank's output).
WORKER_OVERRIDES = [
    "hydra.output_subdir=null",
    "++hydra.job_logging.root.handlers=[console_warnings]",
    "++hydra.job_logging.root.level=WARNING",
]


def resolve_run_dir(args: list[str]) -> str | None:
    """`hydra.run.dir` for these overrides, as Hydra would resolve it in this process."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from regx.config import compose_config  # also registers the resolvers the run dir uses
    from regx.errors import UserError

    try:
        return str(compose_config(args, return_hydra_config=True).hydra.run.dir)
    except (HydraException, OmegaConfBaseException, UserError):
        return None  # a bad override: let Hydra report it, the same way on every rank


def quote_override_value(value: str) -> str:
    """A string as a quoted Hydra override value (paths may hold spaces or '=')."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def torchrun_overrides(args: list[str]) -> list[str]:
    """Under torchrun, the extra Hydra overrides of this rank (see the module docstring).

    Joins the process group first. Hydra flags (`--cfg`, `--info`, …) are left alone;
    a sweep (`-m`) under torchrun is refused, since every rank would run the whole sweep.
    """
    if not launched_by_torchrun():
        return []
    from regx.errors import UserError

    if any(a in ("-m", "--multirun") for a in args):
        raise UserError(
            "torchrun trains one run on several processes; launch sweeps (-m) without torchrun"
        )
    if any(a.startswith("-") for a in args):
        return []
    init_process_group()
    run_dir = None
    if rank() == 0 and not any(a.lstrip("+").startswith("hydra.run.dir=") for a in args):
        run_dir = resolve_run_dir(args)
    run_dir = broadcast_from_main(run_dir)
    extra = [f"hydra.run.dir={quote_override_value(run_dir)}"] if run_dir else []
    if rank() > 0:
        extra += WORKER_OVERRIDES
    return extra
