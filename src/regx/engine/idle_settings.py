"""Settings that are legal but leave the run without what they name, each one warning line:
a mixer that mixes in none of the run's epochs (its schedule, `aug.prob=0`), a mixer whose
settings cannot work on these images (Cutout's square covering every image), a crop
padding so wide that a random crop can miss the image."""

from __future__ import annotations

import logging

from regx.engine.spec import RunSpec

log = logging.getLogger("regx")


def idle_settings(spec: RunSpec, height: int, width: int) -> list[str]:
    """The warning lines for this run on height×width training images (none: all used)."""
    found = []
    mixer, epochs = spec.mixer, spec.trainer.epochs
    if mixer is not None:
        if not any(mixer.active(e, epochs) for e in range(epochs)):
            found.append(
                f"aug={mixer.name} mixes in none of the run's {epochs} epochs (its epoch "
                "schedule leaves them all unmixed): the run trains without it"
            )
        elif getattr(mixer, "prob", 1.0) == 0:
            found.append(f"aug={mixer.name} mixes no batch (aug.prob=0): the run trains without it")
        image = mixer.image_warning(height, width)
        if image is not None:
            found.append(image)
    padding = spec.dataset.augment.crop_padding
    if padding >= min(height, width):
        found.append(
            f"dataset.train_augment.crop_padding={padding} is at least the image side "
            f"({height}×{width}): a random crop can hold no pixel of the image"
        )
    return found


def warn_idle_settings(spec: RunSpec, height: int, width: int) -> None:
    for line in idle_settings(spec, height, width):
        log.warning(line)
