"""Legal settings that leave a run without what they name warn once, naming the key; the
settings that do work warn nothing."""

from __future__ import annotations

import logging

import pytest

from conftest import compose_config
from regx.config.build import build_spec
from regx.engine.idle_settings import idle_settings


def _lines(overrides: list[str], height: int = 8, width: int = 8) -> list[str]:
    return idle_settings(build_spec(compose_config(overrides), overrides), height, width)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["+aug=samplepairing", "aug.start_epoch=50", "trainer.epochs=3"],
            "aug=samplepairing mixes in none of the run's 3 epochs (its epoch schedule leaves "
            "them all unmixed): the run trains without it",
        ),
        (
            ["+aug=mixup", "aug.prob=0"],
            "aug=mixup mixes no batch (aug.prob=0): the run trains without it",
        ),
        (
            ["+aug=cutout", "aug.size=15"],
            "aug.size=15 erases every 8×8 image entirely (a 15×15 square from any centre): "
            "the model sees blank images",
        ),
        (
            ["dataset.train_augment.crop_padding=8"],
            "dataset.train_augment.crop_padding=8 is at least the image side (8×8): a random "
            "crop can hold no pixel of the image",
        ),
    ],
)
def test_an_idle_setting_is_named(overrides: list[str], expected: str) -> None:
    assert _lines(overrides) == [expected]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["+aug=mixup", "aug.off_epoch=1", "trainer.epochs=1"],  # mixes the one epoch
        ["+aug=samplepairing", "trainer.epochs=3"],
        ["+aug=cutout", "aug.size=14"],  # from a corner centre it leaves pixels
        ["+aug=cutout", "aug.size=0.99"],
        ["dataset.train_augment.crop_padding=7"],
    ],
)
def test_working_settings_warn_nothing(overrides: list[str]) -> None:
    assert _lines(overrides) == []


def test_a_cutout_square_covers_every_image_exactly_from_the_computed_side() -> None:
    """The threshold is where a square from every centre covers the image: brute force."""
    from regx.aug.base import box_span
    from regx.aug.cutout import Cutout

    for h in (1, 2, 5, 8):
        for side in range(1, 3 * h):
            covers = all(box_span(c, side, h) == (0, h) for c in range(h))
            warned = Cutout(size=side).image_warning(h, h) is not None
            assert warned == covers, (h, side)


def test_the_run_logs_each_line_as_a_warning(tmp_path, caplog) -> None:
    from conftest import train_in_process

    with caplog.at_level(logging.WARNING, logger="regx"):
        train_in_process(
            ["dataset=synthetic", "trainer=smoke", "+aug=mixup", "aug.prob=0"], tmp_path
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "aug=mixup mixes no batch (aug.prob=0): the run trains without it" in warnings
