"""`regx evaluate`: re-scores the best checkpoint, keeps the run's validation set, refuses
overrides that would change the training images, writes a full report in RUN_DIR/eval/."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from omegaconf import OmegaConf

from regx.app.evaluate import evaluate
from regx.errors import UserError

TINY = ["dataset=synthetic", "model=mlp", "trainer=smoke", "trainer.epochs=3"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run with the .hydra/ files Hydra writes (config, overrides)."""
    from conftest import FAST, compose_config, train_in_process

    run_dir = tmp_path_factory.mktemp("run")
    summary = train_in_process(TINY, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(compose_config([*FAST, *TINY]), run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(TINY), run_dir / ".hydra" / "overrides.yaml")
    return run_dir, summary


def test_as_trained_evaluation_reproduces_the_run(run):
    run_dir, trained = run
    out, summary = evaluate(run_dir, [])
    assert out.parent == run_dir / "eval" and out.name.endswith("-as-trained")
    for key in ("test", "test_ts", "val", "retrieval"):
        assert summary[key] == trained[key], key
    assert summary["temperature"] == trained["temperature"]
    for name in (
        "summary.json",
        "predictions.npz",
        "report.md",
        "reliability.png",
        "confidence.png",
        "curves.png",
        "config.yaml",
    ):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["evaluation"]["checkpoint"] == "checkpoints/best.pt"
    assert on_disk["evaluation"]["checkpoint_epoch"] == trained["best_epoch"]
    assert "Evaluation of `checkpoints/best.pt`" in (out / "report.md").read_text()


def test_shifted_test_set_keeps_the_validation_set_and_temperature(run):
    run_dir, trained = run
    out, summary = evaluate(
        run_dir, ["dataset.test_shift=corrupt", "shift.kind=noise", "shift.severity=5"]
    )
    assert "dataset.test_shift=corrupt" in out.name
    assert summary["dataset"]["test_shift"] == "corrupt"
    # validation is the run's own: same metrics, same fitted temperature
    assert summary["val"] == trained["val"] and summary["temperature"] == trained["temperature"]
    assert summary["test"]["nll"] != trained["test"]["nll"]
    assert summary["test"]["n"] == trained["test"]["n"]
    text = (out / "report.md").read_text()
    assert "test shift: `corrupt`" in text and f"{100 * summary['test']['acc']:.2f}" in text


def test_last_checkpoint_best_weights_are_used_without_best_pt(run, tmp_path):
    run_dir, trained = run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval"))
    (copy / "checkpoints" / "best.pt").unlink()
    _, summary = evaluate(copy, [])
    assert summary["evaluation"]["checkpoint"] == "checkpoints/last.pt (best weights)"
    assert summary["test"] == trained["test"]


def test_a_validation_split_that_came_out_differently_is_refused(run, tmp_path):
    import numpy as np

    run_dir, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval"))
    with np.load(copy / "predictions.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["val_labels"] = np.roll(arrays["val_labels"], 1)
    np.savez(copy / "predictions.npz", **arrays)
    with pytest.raises(UserError, match="validation split recomputed"):
        evaluate(copy, [])


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=1", "seed=1: cannot change in evaluate"),
        ("split.val_fraction=0.2", "split.val_fraction=0.2: cannot change in evaluate"),
        ("dataset.subset=100", "dataset.subset=100: cannot change in evaluate"),
        ("dataset=mnist", "dataset=mnist: cannot change in evaluate"),
        ("model=cnn", "model=cnn: cannot change in evaluate: it sets how the checkpoint"),
        ("trainer.epochs=5", "trainer.epochs=5: cannot change in evaluate: it sets how"),
        ("loss.gamma=0.5", "loss.gamma=0.5: the run's config has no such key"),
        (
            "trainer.epoch=3",
            "trainer.epoch=3: the run's config has no such key; did you mean trainer.epochs?",
        ),
        ("shift=none", "shift=none: replaces a whole config group"),
        ("trainer.epochs=[1", "bad override"),
        ("+hydra.run.dir=/tmp/x", "hydra.run.dir=/tmp/x: evaluate is not a Hydra run"),
        ("hydra.job.chdir=true", "hydra.job.chdir=True: evaluate is not a Hydra run"),
    ],
)
def test_refused_overrides_say_why(run, override, message):
    run_dir, _ = run
    with pytest.raises(UserError, match=re.escape(message)):
        evaluate(run_dir, [override])


def test_a_run_without_checkpoints_or_config_is_refused(run, tmp_path):
    run_dir, _ = run
    with pytest.raises(UserError, match="not a regx run directory"):
        evaluate(tmp_path, [])
    bare = tmp_path / "bare"
    shutil.copytree(run_dir / ".hydra", bare / ".hydra")
    with pytest.raises(UserError, match=re.escape("no checkpoints/best.pt or last.pt")):
        evaluate(bare, [])


def test_cli_evaluate(cli, run, tmp_path):
    run_dir, trained = run
    result = cli("evaluate", str(run_dir), "dataset.test_shift=prior", "trainer.threads=1")
    assert result.returncode == 0, result.stderr
    report = result.stdout.strip().splitlines()[-1].removeprefix("report: ")
    assert report.endswith("report.md") and "dataset.test_shift=prior" in report
    summary = json.loads(
        (run_dir / "eval" / report.split("/eval/")[1].split("/")[0] / "summary.json").read_text()
    )
    assert summary["val"] == trained["val"]
    out = tmp_path / "out"
    result = cli("evaluate", str(run_dir), "--out", str(out), "trainer.threads=1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"report: {out / 'report.md'}"
    assert (out / "report.md").is_file()
    result = cli("evaluate", str(tmp_path / "nowhere"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_a_test_set_with_other_classes_is_refused():
    """Labels are indices into the class list: other classes (or the same count under other
    names, or another order) would be scored against the wrong outputs."""
    from regx.engine.evaluate import check_same_classes
    from regx.errors import DataError

    check_same_classes(["a", "b", "c"], ["a", "b", "c"])
    for other in (["a", "b", "c", "d", "e"], ["x", "y", "z"], ["b", "a", "c"], ["a", "b"]):
        with pytest.raises(DataError, match=re.escape(f"classes ({', '.join(other)}) are not")):
            check_same_classes(["a", "b", "c"], other)
    many = [f"c{i}" for i in range(12)]
    with pytest.raises(DataError, match=re.escape("c7, … (12 in all)")):
        check_same_classes(["a", "b"], many)


def test_an_evaluation_that_fails_leaves_no_folder_behind(run):
    """A bad shift for this test set fails inside the evaluation: its eval/ folder, which
    would hold only config.yaml, goes (the run's own files stay as they were)."""
    run_dir, _ = run
    evals = run_dir / "eval"
    before = sorted(p.name for p in evals.iterdir()) if evals.is_dir() else []
    with pytest.raises(UserError, match=re.escape("shift.keep")):
        evaluate(run_dir, ["dataset.test_shift=subpop", "shift.keep=0.0001"])
    assert (sorted(p.name for p in evals.iterdir()) if evals.is_dir() else []) == before


def test_evaluating_an_unfinished_run_says_so(run, tmp_path, capsys):
    run_dir, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval"))
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    _, scored = evaluate(copy, [])
    assert scored["evaluation"]["run_status"] == "interrupted"
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {copy} did not finish (summary.json: status interrupted): using the best "
        "weights it saved so far"
    ]
    evaluate(run_dir, [])
    assert "warning" not in capsys.readouterr().err


def test_out_writes_the_report_into_a_new_folder_and_never_into_one_with_files(run, tmp_path):
    run_dir, trained = run
    out = tmp_path / "elsewhere" / "eval"
    folder, summary = evaluate(run_dir, ["trainer.threads=1"], out_dir=out)
    assert folder == out and summary["test"]["acc"] == trained["test"]["acc"]
    assert {"report.md", "summary.json", "config.yaml"} <= {p.name for p in out.iterdir()}
    written = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(UserError, match=re.escape(f"--out={out}: already holds files")):
        evaluate(run_dir, [], out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == written
    with pytest.raises(UserError, match=re.escape("is a file")):
        evaluate(run_dir, [], out_dir=out / "report.md")
    dangling = tmp_path / "link"
    dangling.symlink_to(tmp_path / "gone")
    with pytest.raises(UserError, match=re.escape(f"is a link to {tmp_path / 'gone'}, which")):
        evaluate(run_dir, [], out_dir=dangling)
    assert not (tmp_path / "gone").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert evaluate(run_dir, ["trainer.threads=1"], out_dir=empty)[0] == empty


def two_class_images(root):
    """An ImageFolder of 8×8 PNGs: train/ 24 and test/ 8 per class, class1 brighter."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 120, (8, 8, 3)) + 120 * c
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")


def test_a_run_whose_data_moved_is_evaluated_from_the_new_dataset_root(tmp_path):
    """The validation set is recomputed from the run as trained: a dataset.root override
    (where the data lives, not which images) applies to it too, and the scores match."""
    from conftest import FAST, compose_config, train_in_process
    from regx.errors import DataError

    two_class_images(tmp_path / "images")
    overrides = [
        "dataset=imagefolder",
        f"dataset.root={tmp_path / 'images'}",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "model=mlp",
        "trainer=smoke",
    ]
    run_dir = tmp_path / "run"
    trained = train_in_process(overrides, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(compose_config([*FAST, *overrides]), run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    (tmp_path / "images").rename(tmp_path / "moved")
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'images' / 'train'} does not")):
        evaluate(run_dir, [])
    _, summary = evaluate(run_dir, [f"dataset.root={tmp_path / 'moved'}"])
    assert summary["val"] == trained["val"]
    assert summary["test"]["acc"] == pytest.approx(trained["test"]["acc"], abs=1e-12)
    # the same images under another class name are not the run's data
    for split in ("train", "test"):
        (tmp_path / "moved" / split / "class1").rename(tmp_path / "moved" / split / "other")
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(DataError, match=re.escape("(class0, other) are not the run's (class0")):
        evaluate(run_dir, [f"dataset.root={tmp_path / 'moved'}"])


def test_eval_folder_names_keep_values_readable_and_say_what_they_leave_out():
    from regx.app.evaluate import _slug

    assert _slug(["between.pairs=10", "between.lams=[0.1]"]) == "between.pairs=10_between.lams=0.1"
    four = ["dataset.test_shift=subpop", "shift.score=ink", "shift.tilt=50", "shift.keep=0.3"]
    assert _slug(four) == "dataset.test_shift=subpop_shift.score=ink_shift.tilt=50_and-1-more"
    assert _slug(["shift.kind='blur'", "a b=c/d"]) == "shift.kind=blur_a-b=c-d"
    assert _slug([]) == "as-trained"


@pytest.mark.parametrize(
    "damage",
    ['{"status": "fini', "[1, 2]", '{"status": "finished", "dataset": [1]}',
     '{"status": "finished", "dataset": {"classes": "abc", "mean": [1]}}'],
)  # fmt: skip
def test_a_damaged_summary_json_is_scored_as_if_absent(run, tmp_path, capsys, damage):
    """summary.json cut short, not an object, or with a `dataset` record regx did not write:
    the run is scored all the same (statistics from its training data), the same numbers."""
    run_dir, trained = run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval"))
    (copy / "summary.json").write_text(damage)
    _, scored = evaluate(copy, ["trainer.threads=1"])
    assert scored["test"]["acc"] == trained["test"]["acc"]
    assert scored["test"]["nll"] == pytest.approx(trained["test"]["nll"], abs=1e-6)
    lines = capsys.readouterr().err.splitlines()
    if damage.startswith('{"status": "finished"'):  # only its `dataset` record is damaged
        assert lines == []
    else:
        assert len(lines) == 1
        assert lines[0].startswith(f"warning: {copy / 'summary.json'} is unreadable (not a JSON")
    assert (copy / "summary.json").read_text() == damage  # never rewritten


def test_a_sweep_folder_or_a_second_run_says_what_to_pass(run, tmp_path):
    run_dir, _ = run
    sweep = tmp_path / "sweep"
    for name in ("10", "2"):
        shutil.copytree(run_dir, sweep / name, ignore=shutil.ignore_patterns("eval"))
    with pytest.raises(UserError) as e:
        evaluate(sweep, [])
    assert str(e.value) == (
        f"{sweep} is a sweep of 2 runs, not a run: pass one of them "
        f"(e.g. regx evaluate {sweep / '2'})"
    )
    with pytest.raises(UserError) as e:
        evaluate(sweep / "2", [str(sweep / "10")])
    assert str(e.value) == (
        f"{sweep / '10'} is a folder, not an override: regx evaluate takes one RUN_DIR; "
        "evaluate each run with its own command"
    )
    assert not (sweep / "2" / "eval").exists()


def test_two_evaluations_starting_together_never_share_a_folder(tmp_path, monkeypatch):
    """The folder is claimed by creating config.yaml exclusively: the second of two
    evaluations that passed the emptiness check at the same moment is refused (--out), or
    takes the next name (RUN/eval/…)."""
    import regx.app.evaluate as ev

    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("theirs")  # the other evaluation got here first
    with pytest.raises(UserError, match="another evaluation began writing there meanwhile"):
        ev._claimed_folder(out, tmp_path, [], "mine")
    assert (out / "config.yaml").read_text() == "theirs"

    taken = tmp_path / "run" / "eval" / "taken"
    names = iter([taken, taken, tmp_path / "run" / "eval" / "next"])
    monkeypatch.setattr(ev, "eval_dir_for", lambda run_dir, overrides: next(names))
    taken.mkdir(parents=True)
    (taken / "config.yaml").write_text("theirs")
    folder, created = ev._claimed_folder(None, tmp_path / "run", [], "mine")
    assert folder.name == "next" and created and (folder / "config.yaml").read_text() == "mine"


def test_a_relative_dataset_root_means_the_folder_the_run_was_launched_in(tmp_path, monkeypatch):
    """`dataset.root=../images` typed in folder A: evaluating (or resuming) the run from
    another folder reads A/../images, not the other folder's ../images."""
    from conftest import run_cli
    from regx.app.run_paths import resume_args

    two_class_images(tmp_path / "images")
    launched_in = tmp_path / "a"
    launched_in.mkdir()
    run_dir = tmp_path / "run"
    args = ["train", "dataset=imagefolder", "dataset.root=../images", "model=mlp", "trainer=smoke"]
    r = run_cli(
        [*args, f"dataset.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"], launched_in
    )
    assert r.returncode == 0, r.stderr
    trained = json.loads((run_dir / "summary.json").read_text())
    elsewhere = tmp_path / "b" / "c"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # ../images from here does not exist
    _, summary = evaluate(run_dir, ["trainer.threads=1"])
    assert summary["test"]["acc"] == trained["test"]["acc"]
    from regx.app.torchrun import quote_override_value

    assert f"dataset.root={quote_override_value(str(tmp_path / 'images'))}" in resume_args(run_dir)


def test_a_label_noise_run_is_evaluated_with_its_memorization_numbers(tmp_path):
    """The evaluated weights' `noise` section: the same flips, the same memorization."""
    from conftest import FAST, compose_config, train_in_process

    overrides = ["trainer=smoke", "dataset.label_noise.rate=0.4", "dataset=synthetic"]
    run_dir = tmp_path / "run"
    trained = train_in_process(overrides, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(compose_config([*FAST, *overrides]), run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    _, summary = evaluate(run_dir, [])
    assert trained["noise"]["flipped"] > 0
    assert summary["noise"] == trained["noise"]
