"""Search presets compose with the command a user writes from their description:
`hparams_search=gamma_ce_optuna +aug=mixup loss=gamma_ce` is the preset alone (the preset
already sets both), composed and run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from fault_helpers import hydra_in_process, read_summary

PRESETS = ("gamma_ce_optuna", "acc_ece_pareto")


def _composed(compose_cfg, overrides: list[str]) -> tuple[dict, dict, str | None]:
    """(job config, sweeper node, recorded aug choice) of `regx train OVERRIDES`."""
    cfg = compose_cfg(overrides, return_hydra_config=True)
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper)
    choice = cfg.hydra.runtime.choices.get("aug")
    job = OmegaConf.to_container(cfg)  # ${now:…} and the job number differ by design
    job.pop("hydra")
    return job, sweeper, choice


@pytest.mark.parametrize("preset", PRESETS)
def test_naming_the_presets_own_choices_composes_to_the_preset(preset, compose_cfg):
    alone = _composed(compose_cfg, [f"hparams_search={preset}"])
    named = _composed(compose_cfg, [f"hparams_search={preset}", "+aug=mixup", "loss=gamma_ce"])
    assert named == alone
    job, sweeper, choice = alone
    mixup = yaml.safe_load((Path(__file__).parent.parent / "conf/aug/mixup.yaml").read_text())
    assert job["aug"] == mixup  # mixup's config as the aug group has it
    assert job["loss"]["_target_"] == "regx.losses.gamma_ce.GammaCrossEntropy"
    assert choice == "mixup"  # what run reports and `regx report` show as the aug option
    assert sweeper["params"]["aug.alpha"] == "interval(0.1, 2.0)"


def test_a_search_from_the_named_command_runs_mixup_trials(tmp_path):
    sweep = tmp_path / "sweep"
    code, out, err = hydra_in_process(
        [
            "-m",
            "hparams_search=gamma_ce_optuna",
            "+aug=mixup",
            "loss=gamma_ce",
            "hydra.sweeper.n_trials=1",
            "trainer=smoke",
            "trainer.epochs=1",
            "dataset=synthetic",
            "~hydra.callbacks.sweep_report",
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert code == 0, err
    assert "best trial: #0 of 1" in out
    trial = sweep / "0"
    assert read_summary(trial)["status"] == "finished"
    cfg = OmegaConf.load(trial / ".hydra" / "config.yaml")
    assert cfg.aug._target_ == "regx.aug.mixup.Mixup"
    assert 0.1 <= cfg.aug.alpha <= 2.0 and 0.0 <= cfg.loss.gamma <= 0.9
    hydra_cfg = OmegaConf.load(trial / ".hydra" / "hydra.yaml")
    assert hydra_cfg.hydra.runtime.choices.aug == "mixup"
    assert "aug=mixup loss=gamma_ce" in (trial / "report.md").read_text()
