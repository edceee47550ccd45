"""`regx evaluate RUN_DIR [OVERRIDES…]`: re-score a run's best checkpoint, e.g. on a shifted
test set, and write a fresh report into RUN_DIR/eval/<time>-<overrides>/.

The config is the run's own `.hydra/config.yaml` with the overrides applied (Hydra's
override syntax: `key=value`, `+key=value`, `~key`). The validation set is always the
run's original one — recomputed from the run's unchanged config and seed, as every split
strategy is deterministic given both: it is the only data, besides the test set, that the
model did not train on, and the temperature is fitted there. Overrides that would change which images
were training images (`seed`, `split.*`, the dataset's training data) are refused; the
test set can change freely (`dataset.test_shift=corrupt shift.severity=5`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from regx.errors import ConfigError, UserError

# Dataset keys that leave the training images as they were (where the data lives, and
# the test-set shift); every other dataset key, the seed and the split are fixed.
FREE_DATASET_KEYS = ("test_shift", "root", "cache_dir", "download")
FIXED_PREFIXES = ("seed", "split", "dataset")


def _checkpoint(run_dir: Path) -> tuple[dict[str, Any], str, int | None]:
    """(model state dict, which file, epoch) of the run's best weights."""
    from regx.engine.checkpoint import load_checkpoint

    best, last = run_dir / "checkpoints" / "best.pt", run_dir / "checkpoints" / "last.pt"
    if best.is_file():
        ckpt = load_checkpoint(best)
        return ckpt["model"], "checkpoints/best.pt", ckpt.get("epoch")
    if last.is_file():  # last.pt keeps the best weights seen so far as well
        ckpt = load_checkpoint(last)
        state = ckpt.get("train_state") or {}
        if ckpt.get("best_weights") is not None:
            return (
                ckpt["best_weights"],
                "checkpoints/last.pt (best weights)",
                state.get("best_epoch"),
            )
        return ckpt["model"], "checkpoints/last.pt", state.get("epoch")
    raise UserError(
        f"{run_dir} has no checkpoints/best.pt or last.pt to evaluate "
        "(was it trained with trainer.checkpoint=false?)"
    )


def _check_same_validation(run_dir: Path, val_labels: Any) -> None:
    """The recomputed validation labels must equal those the run stored: a cheap guard
    against a split that came out differently (the temperature would then be fitted on
    images the model may have trained on)."""
    import numpy as np

    stored = run_dir / "predictions.npz"
    if not stored.is_file():
        return
    with np.load(stored) as npz:
        if "val_labels" not in npz.files:
            return
        same = np.array_equal(npz["val_labels"], val_labels.cpu().numpy())
    if not same:
        raise UserError(
            f"the validation split recomputed from {run_dir}'s config differs from the one "
            "the run used (predictions.npz val_labels); the model may have trained on it, so "
            "evaluate will not fit a temperature there"
        )


def _check_override(override: Any) -> None:
    key = str(override.key_or_group)
    top, _, rest = key.partition(".")
    if top in FIXED_PREFIXES and not (top == "dataset" and rest in FREE_DATASET_KEYS):
        raise ConfigError(
            key,
            override.value(),
            "cannot change in evaluate: the checkpoint was trained on the images this "
            "setting selects, and its validation set must stay the one it never trained on; "
            "allowed here: dataset.test_shift, shift.*, dataset.root, and any non-data key",
        )


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """The run's config with Hydra-syntax overrides applied (one-line errors)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import DictConfig, OmegaConf

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise UserError(f"bad override: {str(e).splitlines()[0]}") from None
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    for override in parsed:
        _check_override(override)
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
        ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    except HydraException as e:
        raise UserError(" ".join(str(e).split())) from None
    OmegaConf.set_struct(cfg, False)
    return cfg


def _slug(overrides: list[str], limit: int = 60) -> str:
    """A folder-name form of the overrides: whole overrides only, at most `limit` characters."""
    parts: list[str] = []
    for override in overrides:
        part = re.sub(r"[^A-Za-z0-9._=+-]+", "-", override).strip("-")
        if parts and len("_".join([*parts, part])) > limit:
            break
        parts.append(part[:limit])
    return "_".join(parts) or "as-trained"


def eval_dir_for(run_dir: Path, overrides: list[str]) -> Path:
    base = run_dir / "eval" / f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(overrides)}"
    out, n = base, 1
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def evaluate(
    run_dir: Path, overrides: list[str], out_dir: Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Score the run's best weights under its config + `overrides`; returns (folder, summary)."""
    run_dir = Path(run_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise UserError(
            f"{run_dir} is not a regx run directory (no .hydra/config.yaml); "
            "pass the folder that holds the run's .hydra/"
        )
    t0 = time.perf_counter()
    from omegaconf import OmegaConf

    import regx.config  # noqa: F401  (registers the resolvers the config may use)

    base = OmegaConf.load(config_file)
    base.logger = None  # trackers belong to training; evaluate writes files only
    cfg = apply_overrides(base, overrides)
    weights, checkpoint_name, checkpoint_epoch = _checkpoint(run_dir)

    import torch

    from regx.config.build import build_spec
    from regx.data.augment import Normalize
    from regx.engine import outputs
    from regx.engine.device import configure_runtime, resolve_device, seed_everything
    from regx.engine.predict import predict
    from regx.engine.results import (
        config_hash,
        device_name,
        prediction_arrays,
        score_predictions,
        versions,
    )
    from regx.engine.run import build_model, prepare_data
    from regx.report.run_report import run_choices, write_run_report

    run_overrides = []
    if (run_dir / ".hydra" / "overrides.yaml").is_file():
        run_overrides = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
    trained = build_spec(base, run_overrides)
    spec = build_spec(cfg, [*run_overrides, *overrides])
    s = spec.trainer
    device = resolve_device(s.device)
    configure_runtime(device, s.deterministic, s.threads)
    seed_everything(spec.seed)

    # Validation (and the split) exactly as in training; the test set as overridden.
    prep = prepare_data(trained, device)
    _check_same_validation(run_dir, prep.val_y)
    same_data = OmegaConf.to_container(base.dataset) == OmegaConf.to_container(cfg.dataset) and (
        OmegaConf.to_container(base.get("shift") or {})
        == OmegaConf.to_container(cfg.get("shift") or {})
    )
    test = prep.data if same_data else spec.dataset.load(seed=spec.seed)
    model = build_model(spec, prep.data, device)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"{checkpoint_name} does not fit the configured model: {first}") from None
    normalize = Normalize(prep.data.mean, prep.data.std, device, s.channels_last)

    t_eval = time.perf_counter()
    test_logits, test_feats = predict(
        model, test.test_x, normalize, device, s.eval_batch_size, s.precision, features=True
    )
    val_logits, _ = predict(model, prep.val_x, normalize, device, s.eval_batch_size, s.precision)
    scores = score_predictions(
        test_logits,
        test.test_y.to(device),
        val_logits,
        prep.val_y,
        prep.val_weight,
        test_feats,
        spec.calibration_bins,
    )
    eval_seconds = time.perf_counter() - t_eval

    out = out_dir or eval_dir_for(run_dir, overrides)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    arrays = prediction_arrays(
        test_logits, test.test_y, val_logits, prep.val_y, prep.val_weight, scores["temperature"]
    )
    outputs.write_predictions(out / "predictions.npz", **arrays)

    trained_summary = {}
    if (run_dir / "summary.json").is_file():
        trained_summary = outputs.read_json(run_dir / "summary.json")
    summary: dict[str, Any] = {"status": "finished", **scores}
    summary["split"] = dict(prep.split.info)
    summary.update(
        evaluation={
            "run_dir": str(run_dir.resolve()),
            "checkpoint": checkpoint_name,
            "checkpoint_epoch": checkpoint_epoch,
            "overrides": list(overrides),
            "run_status": trained_summary.get("status", "unfinished"),
        },
        best_epoch=checkpoint_epoch,
        epochs_run=trained_summary.get("epochs_run"),
        monitor=trained_summary.get("monitor", s.monitor),
        dataset={
            "name": test.name,
            "num_classes": test.num_classes,
            "image_size": test.image_size,
            "channels": test.channels,
            "train_size": len(prep.train_y),
            "val_size": len(prep.val_y),
            "test_size": len(test.test_y),
            "test_shift": str(cfg.dataset.get("test_shift", "none")),
        },
        seed=spec.seed,
        config_hash=config_hash(spec.config),
        overrides=[*run_overrides, *overrides],
        versions=versions(),
        device=device_name(device),
        eval_time_s=eval_seconds,
    )
    history = []
    if (run_dir / "metrics.csv").is_file():
        history = outputs.read_metrics_csv(run_dir / "metrics.csv")
    t_report = time.perf_counter()
    write_run_report(
        out,
        summary=summary,
        history=history,
        probs=torch.from_numpy(arrays["probs"]),
        probs_ts=torch.from_numpy(arrays["probs_ts"]),
        labels=test.test_y,
        n_bins=spec.calibration_bins,
        split_arrays=prep.split.arrays,
        choices=run_choices(run_dir),
        title="Evaluation report",
    )
    summary["report_time_s"] = time.perf_counter() - t_report
    summary["wall_time_s"] = time.perf_counter() - t0
    summary["finished"] = time.time()
    outputs.write_json(out / "summary.json", summary)
    return out, summary
