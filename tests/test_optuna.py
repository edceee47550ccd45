"""regx's Optuna search (`hydra/sweeper=regx_optuna`): the best trial is the one whose
summary.json holds the best value; the study lives in SQLite in the sweep dir and a
relaunch continues it; a pruner stops a hopeless trial; two objectives give a Pareto front
that no trial beats; a bad search-space line ends in one line.

The searches run `regx train -m` through `run_hydra` in this process, 2 epochs
(`trainer=smoke`) on the synthetic data set.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf

from fault_helpers import error_line, hydra_in_process, metric_rows, read_summary
from regx.app.pruning import build_pruning_hook
from regx.app.search.space import override_text, parse_space
from regx.app.sweeps import (
    objective_direction,
    objective_directions,
    objective_keys,
    objective_value,
)
from regx.errors import ConfigError, RunPruned

SMOKE = ["trainer=smoke", "dataset=synthetic"]  # 2 epochs on 512 synthetic 8×8 images
# Searches whose pruning is not under test train 1 epoch, and skip the end-of-sweep comparison
# table (tests/test_sweeps.py tests it): seconds saved on every trial and every search.
QUICK = ["trainer.epochs=1", "~hydra.callbacks.sweep_report"]


def search(args: list[str], sweep: Path) -> tuple[int, str, str]:
    return hydra_in_process(["-m", *args, *SMOKE, f"hydra.sweep.dir={sweep}"])


def stored_study(sweep: Path, name: str = "regx") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep}/optuna.db")


# -- a search stopped after 2 trials and launched again with n_trials=6 -------------------


@dataclass
class Continued:
    sweep: Path
    first_out: str
    out: str
    kept: dict[tuple[int, str], bytes]  # trials 0 and 1's files after the first launch
    cut_params: dict[str, Any]  # the trial the stopped search left running


@pytest.fixture(scope="module")
def continued(tmp_path_factory) -> Continued:
    sweep = tmp_path_factory.mktemp("search") / "sweep"
    preset = ["hparams_search=gamma_ce_optuna", *QUICK]  # γ-CE + mixup: γ, lr, α; val.nll
    code, first_out, err = search([*preset, "hydra.sweeper.n_trials=2"], sweep)
    assert code == 0, err
    names = ("summary.json", "metrics.csv", "predictions.npz", "checkpoints/last.pt")
    kept = {(j, name): (sweep / str(j) / name).read_bytes() for j in (0, 1) for name in names}
    # what a search killed during its third trial leaves: that trial RUNNING in the study,
    # its run dir holding a summary of a run that did not finish
    study = stored_study(sweep)
    cut = study.ask(study.trials[0].distributions)
    (sweep / "2").mkdir()
    (sweep / "2" / "summary.json").write_text(json.dumps({"status": "running"}))
    code, out, err = search([*preset, "hydra.sweeper.n_trials=6"], sweep)
    assert code == 0, err
    return Continued(sweep, first_out, out, kept, dict(cut.params))


def test_the_best_trial_is_the_run_with_the_best_summary_value(continued):
    sweep = continued.sweep
    runs = {j: read_summary(sweep / str(j)) for j in (0, 1, 3, 4, 5, 6)}
    assert all(s["status"] == "finished" for s in runs.values())
    for j in runs:  # each trial: γ-CE with mixup, γ, lr and α drawn from the space
        cfg = OmegaConf.load(sweep / str(j) / ".hydra" / "config.yaml")
        assert cfg.sweep.trial.number == j
        assert cfg.loss._target_ == "regx.losses.gamma_ce.GammaCrossEntropy"
        assert 0.0 <= cfg.loss.gamma <= 0.9
        assert 0.005 <= cfg.trainer.optimizer.lr <= 0.2
        assert 0.1 <= cfg.aug.alpha <= 2.0
    nll = {j: s["val"]["nll"] for j, s in runs.items()}
    best = min(nll, key=nll.get)  # val.nll: direction auto is minimize
    # the study holds exactly the summaries' values
    study = stored_study(sweep)
    assert {t.number: t.value for t in study.trials if t.value is not None} == nll
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert (results.best_trial, results.best_value) == (best, nll[best])
    assert results.run_dir == str(sweep / str(best))
    overrides = OmegaConf.load(sweep / str(best) / ".hydra" / "overrides.yaml")
    assert {f"{k}={v}" for k, v in results.best_params.items()} <= set(overrides)
    assert f"best trial: #{best} of 6  val.nll = {nll[best]:.6g}" in continued.out
    assert f"run dir: {sweep / str(best)}" in continued.out
    # trials.csv: every trial, best first, with its number
    with open(sweep / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == sorted(nll, key=nll.get)
    assert [float(r["val.nll"]) for r in rows] == sorted(nll.values())


def test_a_relaunch_continues_the_study_and_reruns_only_the_cut_off_trial(continued):
    sweep = continued.sweep
    assert "0 of 2 trials done before, 2 to run" in continued.first_out
    assert "trial 2: cut off by the stopped search; asked again" in continued.out
    assert "2 of 6 trials done before, 4 to run" in continued.out
    trials = stored_study(sweep).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", *["COMPLETE"] * 4]
    # the cut-off trial's parameters were asked again first, as trial 3
    assert trials[3].params == continued.cut_params
    assert trials[3].user_attrs["retry_of"] == 2
    # the first launch's trials did not run again: their files are byte for byte the same
    for (j, name), content in continued.kept.items():
        assert (sweep / str(j) / name).read_bytes() == content, (j, name)
    assert json.loads((sweep / "2" / "summary.json").read_text()) == {"status": "running"}
    assert continued.out.count("run dir: ") == 4 + 1  # 4 trials ran, plus the best trial's line


# -- pruning ----------------------------------------------------------------------------


def _trial_cfg(storage: str, number: int, objective: Any = "val.acc"):
    trial = {"storage": storage, "study": "s", "number": number}
    return OmegaConf.create({"objective": objective, "sweep": {"trial": trial}})


def test_the_pruning_hook_reports_each_epoch_and_prunes_a_hopeless_trial(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    for curve in ([0.6, 0.8], [0.7, 0.9]):  # two completed trials: the median at epoch 1 is 0.65
        trial = study.ask()
        for epoch, value in enumerate(curve, 1):
            trial.report(value, epoch)
        study.tell(trial, curve[-1])
    study.set_user_attr("regx_pruner", {"name": "median", "n_startup_trials": 2})
    good, bad, nll = study.ask(), study.ask(), study.ask()

    build_pruning_hook(_trial_cfg(storage, good.number)).after_epoch({"epoch": 1, "val_acc": 0.75})
    hook = build_pruning_hook(_trial_cfg(storage, bad.number))
    with pytest.raises(RunPruned, match=r"^pruned by the search at epoch 1$") as pruned:
        hook.after_epoch({"epoch": 1, "val_acc": 0.3, "val_loss": 2.0})
    assert (pruned.value.epoch, pruned.value.exit_code) == (1, 5)
    row = {"epoch": 2, "val_acc": 0.5, "val_loss": 1.25, "val_ece": 0.1}
    build_pruning_hook(_trial_cfg(storage, nll.number, "val.nll")).after_epoch(row)
    reported = {t.number: t.intermediate_values for t in stored_study(tmp_path, "s").trials}
    assert reported[good.number] == {1: 0.75}
    assert reported[bad.number] == {1: 0.3}
    assert reported[nll.number] == {2: 1.25}  # val.nll's per-epoch value is val_loss

    # no hook: outside a search, for a finished trial, for several objectives
    assert build_pruning_hook(OmegaConf.create({"objective": "val.acc"})) is None
    assert build_pruning_hook(_trial_cfg(storage, 0)) is None
    assert build_pruning_hook(_trial_cfg(storage, good.number, ["val.acc", "val.ece"])) is None
    with pytest.raises(ConfigError, match=r"^objective=test.acc: has no per-epoch value"):
        build_pruning_hook(_trial_cfg(storage, good.number, "test.acc"))


def test_a_median_pruner_stops_a_hopeless_trial_before_its_last_epoch(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(
        storage=f"sqlite:///{sweep}/optuna.db", study_name="regx", direction="maximize"
    )
    for lr in (0.1, 0.1, 1e-6):  # two good trials, then one that cannot learn in 2 epochs
        study.enqueue_trial({"trainer.optimizer.lr": lr})
    code, out, err = search(
        [
            "hydra/sweeper=regx_optuna",
            "trainer.optimizer.lr=tag(log,interval(1e-6,0.3))",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.pruner.name=median",
            "hydra.sweeper.pruner.median.n_startup_trials=2",
            "hydra.sweeper.pruner.median.n_warmup_steps=1",
        ],
        sweep,
    )
    assert code == 0, err
    trials = stored_study(sweep).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    for t in trials:  # every epoch's val_acc went to the trial (metrics.csv has 6 digits)
        rows = metric_rows(sweep / str(t.number))
        logged = {int(r["epoch"]): float(r["val_acc"]) for r in rows}
        assert t.intermediate_values == pytest.approx(logged, abs=1e-6)
    assert len(metric_rows(sweep / "2")) == 1  # pruned after epoch 1 of 2
    assert read_summary(sweep / "2")["status"] == "pruned"
    assert "trial 2: pruned by the search at epoch 1" in out
    assert "pruned" not in err  # pruning is the search's own doing: no error line
    assert "[job 3/3 done]" in out  # and no failed job


# -- several objectives --------------------------------------------------------------------


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(acc, ece): a is no worse than b in both (higher acc, lower ECE) and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and a != b


def test_a_two_objective_search_prints_a_front_no_trial_beats(tmp_path):
    sweep = tmp_path / "sweep"
    code, out, err = search(
        [
            "hparams_search=acc_ece_pareto",  # objective [val.acc, val.ece], γ and mixup α
            "hydra.sweeper.n_trials=4",
            "hydra/launcher=joblib",  # 2 trials asked at once, run in parallel processes
            "hydra.sweeper.n_jobs=2",
            *QUICK,
        ],
        sweep,
    )
    assert code == 0, err
    assert (out + err).count("is launching 2 jobs") == 2
    points = {}
    for j in range(4):
        summary = read_summary(sweep / str(j))
        points[j] = (summary["val"]["acc"], summary["val"]["ece"])
    study = stored_study(sweep)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert {t.number: tuple(t.values) for t in study.trials} == points
    lines = out[out.index("Pareto front: ") :].splitlines()
    assert (
        lines[0].startswith("Pareto front: ")
        and "of 4 trials (val.acc max, val.ece min)" in lines[0]
    )
    front = [int(ln.split()[0][1:]) for ln in lines[1:] if ln.startswith("  #")]
    assert front
    for a in front:  # on the front: nobody dominates it, and it dominates every trial off it
        assert not any(_dominates(points[b], points[a]) for b in points), (a, points)
    for b in set(points) - set(front):
        assert any(_dominates(points[a], points[b]) for a in front), (b, points)
    with open(sweep / "pareto.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == front
    assert [(float(r["val.acc"]), float(r["val.ece"])) for r in rows] == [points[a] for a in front]


# -- failures -----------------------------------------------------------------------------


def test_a_failed_run_is_a_failed_trial_and_the_search_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    study = optuna.create_study(
        storage=f"sqlite:///{sweep}/optuna.db", study_name="regx", direction="maximize"
    )
    for lr in (1e12, 0.05):  # lr=1e12 diverges: that run returns NaN
        study.enqueue_trial({"trainer.optimizer.lr": lr})
    code, out, err = search(
        [
            "hydra/sweeper=regx_optuna",
            "trainer.optimizer.lr=choice(1e12,0.05)",
            "hydra.sweeper.n_trials=2",
            *QUICK,
        ],
        sweep,
    )
    assert code == 0, err
    trials = stored_study(sweep).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert read_summary(sweep / "0")["status"] == "diverged"
    assert trials[1].value == read_summary(sweep / "1")["val"]["acc"]  # objective val.acc
    assert f"trial 0 failed ({sweep / '0'}): diverged: " in out


def test_a_search_where_every_trial_failed_ends_in_one_error_line(tmp_path):
    # the default sweep dir (out_dir/multirun/<date>/<time>-<pid>): the study is stored there
    # every trial fails loading its data (a setting a search cannot check before it runs)
    args = ["hydra/sweeper=regx_optuna", "loss=gamma_ce", "loss.gamma=interval(0.1,0.5)"]
    missing = ["dataset=imagefolder", f"dataset.root={tmp_path / 'no-data'}"]
    code, _, err = hydra_in_process(
        ["-m", *args, "hydra.sweeper.n_trials=2", *SMOKE, *missing, f"out_dir={tmp_path}"]
    )
    assert code == 1
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert [t.state.name for t in stored_study(sweep).trials] == ["FAIL", "FAIL"]
    assert err.strip().splitlines()[-1] == (
        f"error: all 2 trials failed; see summary.json in the trials' run dirs under {sweep}"
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("space", "reached"),
    [("interval(0,2)", "2.0"), ("choice(0.2,1.5)", "1.5"), ("interval(-1,0.5)", "-1.0")],
)
def test_a_range_reaching_values_a_run_refuses_is_refused_before_any_trial(
    space, reached, tmp_path
):
    sweep = tmp_path / "sweep"
    code, _, err = search(
        ["hydra/sweeper=regx_optuna", "loss=gamma_ce", f"loss.gamma={space}"], sweep
    )
    assert code == 2
    assert error_line(err) == (
        f"error: the search over loss.gamma reaches loss.gamma={reached}, which a run refuses "
        f"(loss.gamma={reached}: must be in [0, 1]): keep the range within what loss.gamma allows"
    )
    assert not any(p.is_dir() for p in sweep.iterdir()) if sweep.exists() else True


def test_an_objective_no_finished_run_has_stops_the_search_after_its_first_trial(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["hydra/sweeper=regx_optuna", "loss=gamma_ce", "loss.gamma=interval(0.1,0.5)"]
    code, _, err = search(
        [*args, "objective=val.nosuch", "hydra.sweeper.n_trials=3", *QUICK], sweep
    )
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(
        f"error: objective=val.nosuch: the finished run {sweep / '0'} has no number there in "
        "its summary.json (numbers there: val.acc, val.nll, "
    ), line
    assert line.endswith("); name one of its keys")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0"]  # no second trial
    assert [t.state.name for t in stored_study(sweep).trials] == ["FAIL"]


FORMS = (
    "must be interval(lo, hi), int(interval(lo, hi)), tag(log, interval(lo, hi)), "
    "choice(a, b, ...), range(lo, hi[, step]) or a fixed value"
)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "+hydra.sweeper.params.loss.gamma='interval(0.5,0.1)'",
            "hydra.sweeper.params.loss.gamma=interval(0.5,0.1): an interval needs finite lo < hi",
        ),
        (
            "+hydra.sweeper.params.loss.gamma='interval(0.1,'",
            f"hydra.sweeper.params.loss.gamma=interval(0.1,: {FORMS}",
        ),
        ("loss.gamma=shuffle(0.1,0.2)", f"loss.gamma=shuffle(0.1,0.2): {FORMS}"),
        (
            "trainer.optimizer.lr=tag(log,interval(0,0.1))",
            "trainer.optimizer.lr=tag(log,interval(0,0.1)): "
            "tag(log, interval(lo, hi)) needs lo > 0",
        ),
    ],
)
def test_a_bad_search_space_line_is_one_line_and_exit_2(line, message, tmp_path):
    sweep = tmp_path / "sweep"
    code, _, err = search(["hydra/sweeper=regx_optuna", "loss=gamma_ce", line], sweep)
    assert (code, error_line(err)) == (2, f"error: {message}")
    assert not (sweep / "optuna.db").exists() and not (sweep / "0").exists()


def test_without_optuna_the_sweeper_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    code, _, err = search(["hydra/sweeper=regx_optuna", "loss.gamma=interval(0,1)"], tmp_path)
    assert code == 2
    assert err.strip() == (
        "error: hydra/sweeper=regx_optuna needs the 'optuna' package, which is not "
        "installed: pip install 'regx[sweep]'"
    )


# -- the parts ------------------------------------------------------------------------------


def test_the_search_space_forms_become_optuna_distributions():
    from optuna.distributions import CategoricalDistribution as Cat
    from optuna.distributions import FloatDistribution as Float
    from optuna.distributions import IntDistribution as Int

    params = {
        "loss.gamma": "interval(0, 0.9)",
        "trainer.optimizer.lr": "tag(log, interval(1e-3, 0.3))",
        "model.width": "int(interval(8, 64))",
        "trainer.batch_size": "range(32, 129, 32)",
        "loss": "choice(ce, gamma_ce)",
        "seed": 3,
    }
    cli = ["+aug.alpha=interval(0.1,2)", "loss.gamma=interval(0.1,0.5)", "trainer=smoke"]
    space = parse_space(params, cli)
    assert space.distributions == {
        "loss.gamma": Float(0.1, 0.5),  # the command line wins over `params`
        "trainer.optimizer.lr": Float(1e-3, 0.3, log=True),
        "model.width": Int(8, 64),
        "trainer.batch_size": Int(32, 128, step=32),  # 32, 64, 96, 128
        "loss": Cat(("ce", "gamma_ce")),
        "aug.alpha": Float(0.1, 2.0),
    }
    assert space.fixed == ["seed=3", "trainer=smoke"]
    drawn = {"aug.alpha": 0.5, "loss": "gamma_ce", "trainer.batch_size": 64}
    overrides = ["seed=3", "trainer=smoke", "+aug.alpha=0.5", "loss=gamma_ce"]
    assert space.overrides(drawn) == [*overrides, "trainer.batch_size=64"]
    # values go back as Hydra reads them: quoted where a bare word would change
    texts = [override_text(v) for v in ("a,b", "1", True, None, 1e-06)]
    assert texts == ["'a,b'", "'1'", "true", "null", "1e-06"]


def test_objectives_and_their_directions():
    assert objective_keys("val.nll") == ["val.nll"]
    assert objective_keys(OmegaConf.create(["val.acc", "val.ece"])) == ["val.acc", "val.ece"]
    assert objective_direction("auto", "val.nll") == "minimize"
    assert objective_direction("auto", "test.ece") == "minimize"
    assert objective_direction("auto", "val.acc") == "maximize"
    assert objective_direction("auto", "retrieval.recall_at_1") == "maximize"
    assert objective_direction("minimize", "val.acc") == "minimize"
    assert objective_directions("auto", ["val.acc", "val.ece"]) == ["maximize", "minimize"]
    both = ["val.acc", "val.ece"]
    assert objective_directions(["minimize", "auto"], both) == ["minimize", "minimize"]
    with pytest.raises(ConfigError, match=r"^hydra.sweeper.direction=\[maximize\]: must be"):
        objective_directions(["maximize"], ["val.acc", "val.ece"])
    with pytest.raises(ConfigError, match=r"^objective=\[val.acc,val.acc\]: must not name"):
        objective_keys(["val.acc", "val.acc"])
    summary = {"val": {"acc": 0.75, "ece": 0.0625}}
    assert objective_value(OmegaConf.create({"objective": "val.acc"}), summary) == 0.75
    assert objective_value(OmegaConf.create({"objective": both}), summary) == [0.75, 0.0625]
    assert math.isnan(objective_value(OmegaConf.create({"objective": "test.acc"}), summary))


def test_the_sweeper_configs(compose_cfg):
    for name in ("regx_optuna", "optuna"):  # optuna: the earlier name, the same sweeper
        cfg = compose_cfg([f"hydra/sweeper={name}"], return_hydra_config=True)
        node = cfg.hydra.sweeper
        assert node._target_ == "hydra_plugins.regx_sweepers.optuna_sweeper.RegxOptunaSweeper"
        assert (node.direction, node.study_name, node.pruner.name) == ("auto", "regx", "none")
    pareto = compose_cfg(["hparams_search=acc_ece_pareto"], return_hydra_config=True)
    assert list(pareto.objective) == ["val.acc", "val.ece"]
    assert sorted(pareto.hydra.sweeper.params) == ["aug.alpha", "loss.gamma"]
