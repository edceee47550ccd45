"""`regx evaluate RUN_DIR [OVERRIDES…]`: re-score a run's best checkpoint, e.g. on a shifted
test set, and write a fresh report into RUN_DIR/eval/<time>-<overrides>/.

The config is the run's own `.hydra/config.yaml` with the overrides applied (Hydra's
override syntax: `key=value`, `+key=value`, `~key`). The validation set is always the
run's original one — recomputed from the run's unchanged config and seed, as every split
strategy is deterministic given both: it is the only data, besides the test set, that the
model did not train on, and the temperature is fitted there. Overrides that set the trained
weights (the seed, the split, the dataset's experiment keys, the model, loss, augmentation
and training; regx.keys' roles) are refused; the test set and the scoring can change freely
(`dataset.test_shift=corrupt shift.severity=5`).
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regx.errors import ConfigError, UserError, dangling_link
from regx.keys import keys_of_role, role_of

if TYPE_CHECKING:
    from regx.engine.robustness import RobustnessRequest

# Keys under these prefixes select the training images (with role experiment or replicate).
TRAINING_DATA_PREFIXES = ("seed", "split", "dataset")
_ABSENT = object()  # what OmegaConf.select gives for a key the config lacks
# What an evaluate override may set, from the keys' roles (regx.keys).
ALLOWED = (
    f"allowed here: how it is scored ({', '.join(keys_of_role('evaluation'))} and their keys), "
    f"where things are ({', '.join(k for k in keys_of_role('io') if k != 'hydra')}) and how it "
    "runs (trainer.device, trainer.eval_batch_size, …)"
)


def _check_override(override: Any, cfg: Any) -> None:
    """Only what scores the trained weights may change (roles evaluation, execution, io):
    never a hydra.* key, a key the run's config lacks (unless added with +), or a key that
    set what the checkpoint was trained on or with."""
    from omegaconf import OmegaConf

    from regx.config.suggest import closest
    from regx.keys import flatten_config

    key = str(override.key_or_group)
    if key.split(".")[0] == "hydra":
        # evaluate runs no Hydra job: a hydra.* key would be accepted and then do nothing
        raise ConfigError(
            key,
            override.value(),
            "evaluate is not a Hydra run; it writes into RUN_DIR/eval/<time>-<overrides>/, "
            "or into a new folder given with --out DIR",
        )
    missing = OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT
    if missing and not override.is_add() and not override.is_force_add():
        meant = closest(key, flatten_config(OmegaConf.to_container(cfg)))
        hint = f"did you mean {meant}?" if meant else "add it with +key=value if it is new"
        raise ConfigError(key, override.value(), f"the run's config has no such key; {hint}")
    if role_of(key) not in ("experiment", "replicate"):
        return
    if key.split(".")[0] in TRAINING_DATA_PREFIXES:
        why = (
            "the checkpoint was trained on the images this setting selects, and its "
            "validation set must stay the one it never trained on"
        )
    else:
        why = "it sets how the checkpoint was trained (model, loss, augmentation, training)"
    raise ConfigError(key, override.value(), f"cannot change in evaluate: {why}; {ALLOWED}")


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """The run's config with Hydra-syntax overrides applied (one-line errors)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import DictConfig, OmegaConf

    from regx.config import hydra_compat

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise UserError(f"bad override: {str(e).splitlines()[0]}") from None
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    for override in parsed:
        _check_override(override, cfg)
        node = OmegaConf.select(cfg, str(override.key_or_group), throw_on_missing=False)
        if isinstance(node, DictConfig) and not isinstance(override.value(), dict):
            raise ConfigError(
                str(override.key_or_group),
                override.value(),
                "replaces a whole config group; evaluate takes keys of the run's config, "
                f"e.g. {override.key_or_group}.<key>=…",
            )
    # struct mode: a key the run's config lacks is an error (a typo), unless added with +
    OmegaConf.set_struct(cfg, True)
    try:
        hydra_compat.apply_overrides(cfg, parsed)
    except HydraException as e:
        raise UserError(" ".join(str(e).split())) from None
    OmegaConf.set_struct(cfg, False)
    return cfg


def where_and_how(overrides: list[str]) -> list[str]:
    """The overrides that say where the data lives and how to run (roles io and execution):
    they apply to the run as trained too, so the validation set is read from a dataset.root
    the data has moved to."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        text
        for text, o in zip(overrides, parsed)
        if role_of(str(o.key_or_group)) in ("io", "execution")
    ]


def _slug(overrides: list[str], limit: int = 60) -> str:
    """A folder-name form of the overrides: whole overrides only, at most `limit` characters,
    then how many were left out; brackets and braces dropped (`[0.1]` reads as `0.1`, not
    as `-0.1`)."""
    parts: list[str] = []
    for override in overrides:
        part = re.sub(r"[\[\]{}'\"]", "", override)
        part = re.sub(r"[^A-Za-z0-9._=+-]+", "-", part).strip("-")
        if parts and len("_".join([*parts, part])) > limit:
            break
        parts.append(part[:limit])
    if len(parts) < len(overrides):
        parts.append(f"and-{len(overrides) - len(parts)}-more")
    return "_".join(parts) or "as-trained"


def check_out_dir(out: Path) -> None:
    """`--out DIR`: a folder evaluate creates, or an empty one (nothing in it is replaced)."""
    dangling = dangling_link(out)
    if dangling:
        raise ConfigError("--out", out, dangling)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", out, "is a file; pass a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(
            "--out",
            out,
            "already holds files, and evaluate replaces none: pass a new or empty folder, "
            "or leave out --out for RUN_DIR/eval/<time>-<overrides>/",
        )


def eval_dir_for(run_dir: Path, overrides: list[str]) -> Path:
    base = run_dir / "eval" / f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(overrides)}"
    out, n = base, 1
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def _run_overrides(run_dir: Path) -> list[str]:
    from omegaconf import OmegaConf

    path = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def _check_run_dir(run_dir: Path, overrides: list[str]) -> None:
    """RUN_DIR is one run; a sweep's folder, or several runs given at once, say what to pass."""
    from regx.app.loaded_run import check_run_dir

    folders = [o for o in overrides if "=" not in o and Path(o).is_dir()]
    if folders:
        raise UserError(
            f"{folders[0]} is a folder, not an override: regx evaluate takes one RUN_DIR; "
            "evaluate each run with its own command"
        )
    check_run_dir(run_dir, "regx evaluate {run}")


def evaluate(
    run_dir: Path,
    overrides: list[str],
    out_dir: Path | None = None,
    robustness: RobustnessRequest | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Score the run's best weights under its config + `overrides` (and the corruption,
    attack and gallery sweeps `robustness` asks for); returns (folder, summary)."""
    run_dir = Path(run_dir)
    if out_dir is not None:
        check_out_dir(out_dir)
    for ignored in robustness.check() if robustness is not None else []:
        print(f"warning: {ignored}", file=sys.stderr)
    _check_run_dir(run_dir, overrides)
    from omegaconf import OmegaConf

    from regx.app.loaded_run import open_run, trained_config, unfinished_note
    from regx.config.build import build_spec
    from regx.engine.device import resolve_device
    from regx.engine.evaluate import EvaluationRequest, evaluate_run
    from regx.engine.robustness import RobustnessRequest
    from regx.report.run_report import run_choices

    base = trained_config(run_dir)
    cfg = apply_overrides(base, overrides)
    run_overrides = _run_overrides(run_dir)
    relocated = where_and_how(overrides)
    as_trained = apply_overrides(base, relocated)
    trained = build_spec(as_trained, [*run_overrides, *relocated])
    spec = build_spec(cfg, [*run_overrides, *overrides])
    run = open_run(run_dir, resolve_device(spec.trainer.device), trained)
    note = unfinished_note(run_dir)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    same_test_set = all(
        OmegaConf.to_container(as_trained.get(k) or {}) == OmegaConf.to_container(cfg.get(k) or {})
        for k in ("dataset", "shift")
    )
    out, created = _claimed_folder(out_dir, run_dir, overrides, OmegaConf.to_yaml(cfg))
    request = EvaluationRequest(
        run_dir=run_dir,
        trained=trained,
        spec=spec,
        model=run.model,
        checkpoint=run.checkpoint,
        checkpoint_epoch=run.checkpoint_epoch,
        same_test_set=same_test_set,
        overrides=list(overrides),
        out_dir=out,
        choices=run_choices(run_dir),
        robustness=robustness or RobustnessRequest(),
    )
    return out, _scored_into(out, created, lambda: evaluate_run(request))


def _claimed_folder(
    out_dir: Path | None, run_dir: Path, overrides: list[str], config_text: str
) -> tuple[Path, bool]:
    """The evaluation's folder, claimed by creating its config.yaml (exclusively: another
    evaluation started at the same moment gets its own folder, or with --out a refusal);
    returns (folder, whether this evaluation created it)."""
    while True:
        out = out_dir or eval_dir_for(run_dir, overrides)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            with open(out / "config.yaml", "x") as f:
                f.write(config_text)
            return out, created
        except FileExistsError:
            if out_dir is not None:
                raise ConfigError(
                    "--out", out_dir, "another evaluation began writing there meanwhile: "
                    "pass a new or empty folder",
                ) from None  # fmt: skip


def _scored_into(out: Path, created: bool, score: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`score()`; if it fails, or a signal ends the command inside an import, a folder this
    evaluation created and wrote nothing but its config into is removed."""
    from regx.engine.signals import before_leaving_mid_import

    def drop_if_unwritten() -> None:
        if created and {p.name for p in out.iterdir()} <= {"config.yaml"}:
            shutil.rmtree(out, ignore_errors=True)

    try:
        with before_leaving_mid_import(drop_if_unwritten):
            return score()
    except BaseException:
        drop_if_unwritten()
        raise
