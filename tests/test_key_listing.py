"""Every config key regx ships, with its role (regx.keys): a new key fails this test until
it is listed here, so nobody forgets to decide whether it changes the experiment."""

from __future__ import annotations

from omegaconf import OmegaConf

from regx.config import compose_config
from regx.config.paths import config_dir
from regx.keys import flatten_config, role_of

GROUPS = ("dataset", "model", "loss", "split", "trainer", "aug", "logger")

EXPECTED_ROLES = {
    "aug": "experiment",
    "aug._target_": "experiment",
    "aug.alpha": "experiment",
    "aug.cutmix_alpha": "experiment",
    "aug.final_off_epochs": "experiment",
    "aug.holes": "experiment",
    "aug.lam": "experiment",
    "aug.layers": "experiment",
    "aug.mixup_alpha": "experiment",
    "aug.mode": "experiment",
    "aug.off_epoch": "experiment",
    "aug.off_epochs": "experiment",
    "aug.on_epochs": "experiment",
    "aug.prob": "experiment",
    "aug.size": "experiment",
    "aug.start_epoch": "experiment",
    "aug.switch_prob": "experiment",
    "between.lams": "evaluation",
    "between.pairs": "evaluation",
    "calibration.bootstrap": "evaluation",
    "calibration.n_bins": "evaluation",
    "dataset._target_": "experiment",
    "dataset.cache_dir": "io",
    "dataset.channels": "experiment",
    "dataset.data_seed": "experiment",
    "dataset.download": "io",
    "dataset.holdout_classes": "experiment",
    "dataset.image_size": "experiment",
    "dataset.label_noise.class_map": "experiment",
    "dataset.label_noise.kind": "experiment",
    "dataset.label_noise.preset": "experiment",
    "dataset.label_noise.rate": "experiment",
    "dataset.label_noise.seed_offset": "experiment",
    "dataset.max_pixels": "io",
    "dataset.mean": "experiment",
    "dataset.noise": "experiment",
    "dataset.num_classes": "experiment",
    "dataset.num_test": "experiment",
    "dataset.num_train": "experiment",
    "dataset.root": "io",
    "dataset.std": "experiment",
    "dataset.subset": "experiment",
    "dataset.test_shift": "evaluation",
    "dataset.train_augment.crop_padding": "experiment",
    "dataset.train_augment.flip": "experiment",
    "logger.mlflow._target_": "execution",
    "logger.mlflow.experiment": "execution",
    "logger.mlflow.run_name": "execution",
    "logger.mlflow.store_dir": "execution",
    "logger.mlflow.tracking_uri": "execution",
    "logger.tensorboard._target_": "execution",
    "logger.tensorboard.subdir": "execution",
    "loss._target_": "experiment",
    "loss.epsilon": "experiment",
    "loss.gamma": "experiment",
    "loss.gamma_end": "experiment",
    "loss.gamma_start": "experiment",
    "loss.m": "experiment",
    "loss.margin": "experiment",
    "loss.margin_every": "experiment",
    "loss.margin_warmup": "experiment",
    "loss.s": "experiment",
    "loss.schedule": "experiment",
    "loss.threshold": "experiment",
    "model._target_": "experiment",
    "model.convs_per_stage": "experiment",
    "model.depth": "experiment",
    "model.dropout": "experiment",
    "model.hidden": "experiment",
    "model.name": "experiment",
    "model.output_scale": "experiment",
    "model.tta": "experiment",
    "model.weights": "experiment",
    "model.whiten_eps": "experiment",
    "model.whiten_kernel": "experiment",
    "model.widen": "experiment",
    "model.width": "experiment",
    "model.widths": "experiment",
    "noise.track_every": "evaluation",
    "objective": "execution",
    "out_dir": "io",
    "outputs.features_dtype": "io",
    "outputs.save_features": "io",
    "retrieval.ks": "evaluation",
    "seed": "replicate",
    "shift._target_": "evaluation",
    "shift.keep": "evaluation",
    "shift.kind": "evaluation",
    "shift.score": "evaluation",
    "shift.severity": "evaluation",
    "shift.strength": "evaluation",
    "shift.tilt": "evaluation",
    "split._target_": "experiment",
    "split.clean_val": "experiment",
    "split.clip": "experiment",
    "split.cnn_epochs": "experiment",
    "split.cnn_patience": "experiment",
    "split.cnn_width": "experiment",
    "split.device": "experiment",
    "split.discriminator": "experiment",
    "split.feature_epochs": "experiment",
    "split.feature_pca": "experiment",
    "split.features": "experiment",
    "split.folds": "experiment",
    "split.logreg_c": "experiment",
    "split.mode": "experiment",
    "split.pca": "experiment",
    "split.val_fraction": "experiment",
    "split.weight_train": "experiment",
    "sweep.skip_done": "execution",
    "track_test": "execution",
    "trainer.batch_size": "experiment",
    "trainer.channels_last": "execution",
    "trainer.checkpoint": "execution",
    "trainer.compile": "execution",
    "trainer.data_on_device": "execution",
    "trainer.deterministic": "execution",
    "trainer.device": "execution",
    "trainer.early_stop": "experiment",
    "trainer.epochs": "experiment",
    "trainer.eval_batch_size": "execution",
    "trainer.grad_clip": "experiment",
    "trainer.monitor": "experiment",
    "trainer.nan_check_every": "execution",
    "trainer.num_workers": "execution",
    "trainer.optimizer.lr": "experiment",
    "trainer.optimizer.momentum": "experiment",
    "trainer.optimizer.name": "experiment",
    "trainer.optimizer.nesterov": "experiment",
    "trainer.optimizer.weight_decay": "experiment",
    "trainer.precision": "experiment",
    "trainer.reuse_host_memory": "execution",
    "trainer.progress": "execution",
    "trainer.resume": "execution",
    "trainer.scheduler.gamma": "experiment",
    "trainer.scheduler.milestones": "experiment",
    "trainer.scheduler.min_lr_ratio": "experiment",
    "trainer.scheduler.name": "experiment",
    "trainer.scheduler.warmup_epochs": "experiment",
    "trainer.threads": "execution",
}


def shipped_keys() -> set[str]:
    """The keys of the default config and of every option of every group."""
    compositions = [[]]
    for group in GROUPS:
        for path in sorted((config_dir() / group).glob("*.yaml")):
            override = f"+aug={path.stem}" if group == "aug" else f"{group}={path.stem}"
            extra = ["dataset.root=DIR"] if path.stem == "imagefolder" else []
            compositions.append([override, *extra])
    keys: set[str] = set()
    for overrides in compositions:
        config = OmegaConf.to_container(compose_config(overrides), resolve=False)
        config.pop("hydra", None)
        keys |= set(flatten_config(config))
    return keys


def test_every_shipped_key_is_listed_with_its_role() -> None:
    keys = shipped_keys()
    assert sorted(keys - set(EXPECTED_ROLES)) == [], "new keys: add them with their role"
    assert {k: role_of(k) for k in keys} == {k: EXPECTED_ROLES[k] for k in keys}
