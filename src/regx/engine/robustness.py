"""`regx evaluate`'s sweeps on a trained model: every corruption at every severity, L∞
attacks, and retrieval on a gallery folder of any classes. Each adds a summary section.

The corruption and attack sweeps are grids of cells (kind × severity, attack × ε), scored
one after the other under a progress bar (regx.progress: two log lines off a terminal)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from regx.data.corruptions import parse_kinds, parse_severities
from regx.data.shift import corrupted_copies
from regx.engine.scoring import Evaluation
from regx.engine.spec import RunSpec
from regx.errors import ConfigError
from regx.metrics.attacks import attack_accuracy, parse_eps
from regx.metrics.retrieval import retrieval_at_k
from regx.metrics.robustness import corruption_table
from regx.progress import WorkProgress

ATTACKS = ("fgsm", "pgd")
Cell = TypeVar("Cell")


@dataclass
class RobustnessRequest:
    """What `regx evaluate --corruptions/--severities/--attack/--eps/--steps/--retrieval` asks."""

    corruptions: str | None = None  # `all` or kinds, e.g. `noise,jpeg`
    severities: str = "all"
    attack: str | None = None  # fgsm | pgd | fgsm,pgd
    eps: str = "1/255,2/255,4/255,8/255"
    steps: int = 10
    retrieval: Path | None = None  # an ImageFolder-layout folder: <class>/<image>

    def attacks(self) -> tuple[str, ...]:
        names = tuple(a.strip() for a in (self.attack or "").split(",") if a.strip())
        for name in names:
            if name not in ATTACKS:
                raise ConfigError("--attack", name, "must be fgsm, pgd or fgsm,pgd")
        return _distinct("--attack", self.attack, names)

    def eps_list(self) -> list[str]:
        """The ε of --eps as typed (summary keys), each checked, no two of the same value."""
        texts = [e.strip() for e in self.eps.split(",")]
        _distinct("--eps", self.eps, tuple(parse_eps(e) for e in texts), texts)
        return texts

    def cells(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(kinds, severities) of the corruption sweep, each without repeats."""
        kinds = _distinct("--corruptions", self.corruptions, parse_kinds(self.corruptions or ""))
        severities = _distinct("--severities", self.severities, parse_severities(self.severities))
        return kinds, severities

    def check(self) -> list[str]:
        """Every option checked before any model is loaded; warnings for options that the
        flag they belong to is missing for (they would be ignored)."""
        ignored = []
        if self.corruptions:
            self.cells()
        elif self.severities != DEFAULTS.severities:
            ignored.append("--severities applies to --corruptions, which is not given: ignored")
        attacks = self.attacks()
        if attacks:
            self.eps_list()
            if "pgd" in attacks and not (isinstance(self.steps, int) and self.steps >= 1):
                raise ConfigError("--steps", self.steps, "must be an integer ≥ 1")
        elif self.eps != DEFAULTS.eps:
            ignored.append("--eps applies to --attack, which is not given: ignored")
        if "pgd" not in attacks and self.steps != DEFAULTS.steps:
            ignored.append("--steps applies to --attack pgd, which is not given: ignored")
        if self.retrieval is not None:
            gallery_classes(self.retrieval)
        return ignored


DEFAULTS = RobustnessRequest()


def _distinct(option: str, text: Any, values: tuple, shown: Sequence[str] = ()) -> tuple:
    """`values`, refused where one repeats (a repeated cell would be scored and counted twice);
    `shown`: how the values were typed, for the message."""
    shown = shown or [str(v) for v in values]
    for i, value in enumerate(values):
        if value in values[:i]:
            first = shown[values.index(value)]
            same = "" if first == shown[i] else f" (= {first})"
            raise ConfigError(option, text, f"repeats {shown[i]}{same}; give each value once")
    return values


def gallery_classes(folder: Path) -> dict[str, list[Path]]:
    """The gallery's {class: images}, refused where no class has two images (no query would
    have a relevant image to retrieve)."""
    from regx.data.imagefolder import list_class_folders
    from regx.errors import DataError

    classes = list_class_folders(Path(folder))
    if max(len(files) for files in classes.values()) < 2:
        raise DataError(
            f"{folder}: every class folder holds one image, so no image has another of its "
            "class to retrieve; put two or more images in some class folders"
        )
    return classes


def clean_test_set(trained: RunSpec) -> Any:
    """The run's test set without any test shift (what the corruptions start from)."""
    source = copy.copy(trained.dataset)
    source.test_shift = "none"
    return source.load(seed=trained.seed)


def corruption_sweep(
    req: RobustnessRequest, ev: Evaluation, trained: RunSpec, temperature: float
) -> dict[str, Any]:
    kinds, severities = req.cells()
    clean = clean_test_set(trained)
    cells = corrupted_copies(clean.test_x, kinds, severities, trained.seed)
    what = f"{len(kinds) * len(severities)} corruption × severity cells"
    with WorkProgress(
        len(kinds) * len(severities), "cells", f"evaluating {what}", f"evaluated {what}"
    ) as progress:
        table = corruption_table(
            lambda x: ev.predict(x)[0],
            clean.test_x,
            clean.test_y,
            counted(cells, progress),
            temperature,
            ev.n_bins,
        )
    return {**table.as_dict(), "seed": trained.seed}


def counted(cells: Iterable[Cell], progress: WorkProgress) -> Iterator[Cell]:
    """`cells`, advancing `progress` as each is done: when the consumer asks for the next."""
    for cell in cells:
        yield cell
        progress.advance()


def attack_sweep(req: RobustnessRequest, ev: Evaluation, seed: int) -> dict[str, Any]:
    """summary.json `attacks`: accuracy under each attack at each ε, one cell at a time.

    FGSM takes every ε in one pass (one gradient per batch serves all); PGD runs per ε, its
    random starts drawn from a generator seeded with `seed` afresh, so an ε's accuracy does
    not depend on which other ε were asked for."""
    attacks, eps = req.attacks(), req.eps_list()
    what = f"{len(attacks) * len(eps)} attack × ε cells" + (
        f" ({req.steps} PGD steps)" if "pgd" in attacks else ""
    )
    found: dict[str, Any] = {}
    with WorkProgress(
        len(attacks) * len(eps), "cells", f"evaluating {what}", f"evaluated {what}"
    ) as progress:
        for name in attacks:
            for cell in [eps] if name == "fgsm" else [[e] for e in eps]:
                out = attack_accuracy(
                    ev.model, ev.test_x, ev.test_y, ev.normalize, eps=cell, attacks=(name,),
                    steps=req.steps, device=ev.device, batch_size=ev.batch_size, seed=seed,
                )  # fmt: skip
                found.setdefault("clean", out["clean"])
                found.setdefault(name, {}).update(out[name])
                progress.advance(len(cell))
    if "pgd" in attacks:
        found.update(steps=req.steps, step_size="eps/4", seed=seed)
    return found


def gallery_retrieval(folder: Path, ev: Evaluation) -> dict[str, Any]:
    """Retrieval (cosine, leave-one-out, query = gallery) on `folder`/<class>/<image>,
    embedded by the run's model: the classes need not be any the model knows."""
    import torch

    from regx.data.decode import DecodeSpec, decode_images

    classes = gallery_classes(folder)
    paths = [str(p) for name in sorted(classes) for p in classes[name]]
    labels = torch.tensor([i for i, name in enumerate(sorted(classes)) for _ in classes[name]])
    # the run's input shape: channels converted, images resized as its test images
    spec = DecodeSpec(channels=int(ev.test_x.shape[1]), image_size=int(ev.test_x.shape[-1]))
    images = torch.from_numpy(decode_images(paths, spec))
    _, features = ev.predict(images, features=True)
    found = retrieval_at_k(features, labels.to(ev.device), ev.analysis.retrieval_ks)
    return {**found, "folder": str(folder), "classes": sorted(classes), "images": len(paths)}


def robustness_sections(
    req: RobustnessRequest, ev: Evaluation, trained: RunSpec, temperature: float
) -> dict[str, Any]:
    """summary.json `corruptions`, `attacks`, `retrieval_gallery` (those asked for)."""
    sections: dict[str, Any] = {}
    if req.corruptions:
        sections["corruptions"] = corruption_sweep(req, ev, trained, temperature)
    if req.attacks():
        sections["attacks"] = attack_sweep(req, ev, trained.seed)
    if req.retrieval is not None:
        sections["retrieval_gallery"] = gallery_retrieval(req.retrieval, ev)
    return sections
