"""scripts/studies: the page's rule (differences beyond twice the standard error), the
sentences it writes, the values it derives from run files, and each study's verdict on a
table where the claim holds, one where it does not, and one within seed noise."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from regx.report.runs import RunRecord
from studies import mixing, noise, open_set, shift
from studies.page import build_tables, missing_line
from studies.rules import (
    NOT_RUN,
    Outcome,
    Stat,
    chance_rate,
    compare,
    differs,
    stat_of,
    tally,
)
from studies.runs import StudyRuns, value


def tables_for(study, cells):
    """Every (condition, arm, key) of the study NOT_RUN, except `cells`:
    {condition: {arm: {key: (mean, std)}}}, three seeds each."""
    tables = {
        c.option: {a.option: dict.fromkeys(study.keys(), NOT_RUN) for a in study.arms}
        for c in study.conditions
    }
    for cond, arms in cells.items():
        for arm, values in arms.items():
            for key, (mean, std) in values.items():
                tables[cond][arm][key] = Stat(mean, std, 3)
    return tables


def verdict(study, cells):
    return study.verdict(tables_for(study, cells), study.arms, 3).outcome


# -- the rule -------------------------------------------------------------------------------
def test_a_difference_must_exceed_twice_its_standard_error():
    a = Stat(0.10, 0.01, 3)
    # standard error of the difference: sqrt(2 * 0.01² / 3) = 0.00816; twice that 0.0163
    assert not differs(a, Stat(0.116, 0.01, 3))
    assert differs(a, Stat(0.117, 0.01, 3))
    assert not differs(a, Stat(0.5, math.nan, 1))  # one seed: no claim


def test_stat_is_mean_and_sample_std():
    s = stat_of([0.5, 0.7, 0.9, None])
    assert (s.mean, s.n) == (pytest.approx(0.7), 3)
    assert s.std == pytest.approx(0.2)  # sqrt(((0.2)² + 0 + (0.2)²) / 2)


def test_sentences_say_what_the_numbers_say():
    ece = mixing.ECE
    base, worse = Stat(0.011, 0.0015, 3), Stat(0.108, 0.0122, 3)
    assert compare("mixup", ece, "none", base, worse) == (
        "mixup raises ECE from 1.10 ± 0.15% (none) to 10.80 ± 1.22%"
    )
    assert "within seed noise" in compare("mixup", ece, "none", base, Stat(0.012, 0.0015, 3))
    assert "one seed" in compare("mixup", ece, "none", base, Stat(0.2, math.nan, 1))


def test_chance_rate_is_students_t_tail_at_two():
    # t with 4 degrees of freedom: P(T > t) = 1/2 − (x/2)(1 + (1 − x²)/2), x = t/√(4 + t²)
    x = 2 / math.sqrt(8)
    assert chance_rate(3) == pytest.approx(0.5 - x / 2 * (1 + (1 - x**2) / 2), abs=1e-12)
    assert chance_rate(3) == pytest.approx(0.0581, abs=1e-4)


def test_tally_counts_and_says_when_the_support_could_be_chance():
    c, x, u = Outcome.CONFIRMED, Outcome.CONTRADICTED, Outcome.UNRESOLVED
    few = tally([c, x, *[u] * 13], 3)
    assert few.startswith(
        "1 of 15 comparisons beyond seed noise in the claimed direction, 1 against"
    )
    # 1 − (1 − p)^15 with p = P(T₄ > 2) = 0.0581: 0.59
    assert "would pass with probability 0.59" in few
    assert "probability" not in tally([c, c, c, c, *[u] * 11], 3)  # 4 of 15: P = 0.010


# -- values derived from run files ----------------------------------------------------------
def run_record(path, summary, choices=None, seed=0):
    return RunRecord(
        path=path,
        status="finished",
        message="",
        config={"seed": seed},
        choices=choices or {},
        overrides=[],
        summary=summary,
    )


def test_values_from_metrics_csv_and_summary(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "epoch,test_acc,noise_memorized\n1,0.50,0.05\n2,0.62,0.10\n3,0.58,0.30\n"
    )
    summary = {
        "test": {"acc": 0.55},
        "val": {"acc": 0.70},
        "track_test": {"best_test_acc": 0.62, "epoch_gap": 1},
        "ci": {"val_test_gap": [0.10, 0.18]},
    }
    run = run_record(tmp_path, summary)
    assert value(run, "final_test_acc") == pytest.approx(0.58)
    assert value(run, "final_memorized") == pytest.approx(0.30)
    assert value(run, "peak_drop") == pytest.approx(0.04)  # 0.62 − 0.58
    assert value(run, "regret") == pytest.approx(0.07)  # 0.62 − 0.55 (picked)
    assert value(run, "abs_gap") == pytest.approx(0.15)
    assert value(run, "gap_ci") == pytest.approx(0.04)
    assert value(run, "track_test.epoch_gap") == 1.0


def test_missing_cells_are_named(tmp_path):
    runs = [
        run_record(tmp_path / str(s), {"test": {"acc": 0.9}}, {"arm": arm}, s)
        for s in range(3)
        for arm in ("open_set/ce", "open_set/am_softmax_035")
    ]
    study_runs = StudyRuns({(None, r.choices["arm"]): [] for r in runs}, [])
    for r in runs:
        study_runs.cells[(None, r.choices["arm"])].append(r)
    tables = build_tables(open_set.STUDY, study_runs)
    assert tables[None]["open_set/ce"]["test.acc"] == Stat(0.9, 0.0, 3)
    assert tables[None]["open_set/am_softmax_02"]["test.acc"].n == 0
    line = missing_line(open_set.STUDY, study_runs)
    assert line.endswith(": AM-Softmax m=0.2; AM-Softmax m=auto; cosine head, m=0.")
    assert "m=0.35" not in line


def test_missing_cells_under_conditions_are_named(tmp_path):
    def runs_of(cond, arm):
        return [run_record(tmp_path, {}, {"arm": arm, "condition": cond}, s) for s in range(3)]

    cells = {("shift/prior", a.option): runs_of("shift/prior", a.option) for a in shift.ARMS[:3]}
    cells[("shift/corrupt", "shift/random")] = runs_of("shift/corrupt", "shift/random")
    line = missing_line(shift.STUDY, StudyRuns(cells, []))
    assert "conditions subpop, brightness, tilt 1, subpop, brightness, tilt 2" in line
    assert "; resample, pixel logreg under corruption (negative control);" in line
    assert "; weighted, random features (every condition)." in line


# -- each study's verdict: holds / does not hold / within noise ---------------------------
GAP, MISS = mixing.GAP.key, mixing.MISS.key
NONE = {"mixing/none": {GAP: (1.10, 0.05), MISS: (0.36, 0.02)}}


def test_mixing_holds_when_mixup_and_samplepairing_lower_gap_and_miss_rate():
    cells = {
        **NONE,
        "mixing/mixup_uniform": {GAP: (0.60, 0.05), MISS: (0.20, 0.03)},
        "mixing/mixup_beta02": {GAP: (1.05, 0.05), MISS: (0.35, 0.02)},  # one variant suffices
        "mixing/samplepairing": {GAP: (0.80, 0.04), MISS: (0.25, 0.03)},
    }
    assert verdict(mixing.STUDY, {None: cells}) is Outcome.CONFIRMED


def test_mixing_does_not_hold_when_samplepairing_raises_the_miss_rate():
    cells = {
        **NONE,
        "mixing/mixup_uniform": {GAP: (0.60, 0.05), MISS: (0.20, 0.03)},
        # Δ = 0.09 against 2·SE = 2·√(2·0.02²/3) = 0.033
        "mixing/samplepairing": {GAP: (0.80, 0.04), MISS: (0.45, 0.02)},
    }
    assert verdict(mixing.STUDY, {None: cells}) is Outcome.CONTRADICTED


def test_mixing_within_noise_is_not_resolved():
    cells = {
        **NONE,
        "mixing/mixup_uniform": {GAP: (0.60, 0.05), MISS: (0.20, 0.03)},
        # Δ = 0.04 < 2·SE = 2·√(2·0.05²/3) = 0.082
        "mixing/samplepairing": {GAP: (1.06, 0.05), MISS: (0.25, 0.03)},
    }
    assert verdict(mixing.STUDY, {None: cells}) is Outcome.UNRESOLVED


ACC = noise.ACC.key
CE_SYM40 = {"noise/ce": {ACC: (0.600, 0.010)}}


def gamma_arms(mean, std):
    return {opt: {ACC: (mean, std)} for opt in noise.GAMMA_ARMS}


def test_noise_holds_when_some_gamma_beats_cross_entropy_under_noise():
    arms = {**CE_SYM40, **gamma_arms(0.600, 0.010), "noise/gamma_ce_05": {ACC: (0.650, 0.010)}}
    assert verdict(noise.STUDY, {"noise/sym40": arms}) is Outcome.CONFIRMED


def test_noise_does_not_hold_when_every_gamma_is_below_under_every_noisy_condition():
    cells = {
        cond: {**CE_SYM40, **gamma_arms(0.560, 0.010)}
        for cond in ("noise/sym20", "noise/sym40", "noise/asym40")
    }
    # a win on clean labels is not a win under noise
    cells["noise/clean"] = {**CE_SYM40, **gamma_arms(0.700, 0.010)}
    assert verdict(noise.STUDY, cells) is Outcome.CONTRADICTED


def test_noise_within_noise_is_not_resolved():
    arms = {**CE_SYM40, **gamma_arms(0.610, 0.010)}  # Δ 0.010 < 2·SE 0.0163
    assert verdict(noise.STUDY, {"noise/sym40": arms}) is Outcome.UNRESOLVED


OPEN = open_set.OPEN_MAP.key


def margins(mean):
    return {opt: {OPEN: (mean, 0.01)} for opt in open_set.MARGINS}


def test_open_set_holds_when_a_margin_beats_cross_entropy():
    cells = {"open_set/ce": {OPEN: (0.25, 0.01)}, **margins(0.25)}
    cells["open_set/am_softmax_035"] = {OPEN: (0.30, 0.01)}
    cells["open_set/am_softmax_0"] = {OPEN: (0.40, 0.01)}  # m=0 is not a margin: ignored
    assert verdict(open_set.STUDY, {None: cells}) is Outcome.CONFIRMED


def test_open_set_does_not_hold_when_every_margin_is_below():
    cells = {"open_set/ce": {OPEN: (0.25, 0.01)}, **margins(0.20)}
    assert verdict(open_set.STUDY, {None: cells}) is Outcome.CONTRADICTED


def test_open_set_within_noise_is_not_resolved():
    cells = {"open_set/ce": {OPEN: (0.25, 0.01)}, **margins(0.26)}
    assert verdict(open_set.STUDY, {None: cells}) is Outcome.UNRESOLVED


SGAP = shift.GAP.key


def split_arms(mean):
    return {a.option: {SGAP: (mean, 0.005)} for a in shift.ARMS[1:]}


def test_shift_holds_when_an_adversarial_split_tracks_the_test_set_better():
    arms = {"shift/random": {SGAP: (0.040, 0.005)}, **split_arms(0.040)}
    arms["shift/resample_features"] = {SGAP: (0.010, 0.005)}
    assert verdict(shift.STUDY, {"shift/subgroup_t2": arms}) is Outcome.CONFIRMED


def test_shift_does_not_hold_when_every_adversarial_split_is_worse():
    arms = {"shift/random": {SGAP: (0.010, 0.005)}, **split_arms(0.040)}
    assert verdict(shift.STUDY, {"shift/prior": arms}) is Outcome.CONTRADICTED


def test_shift_within_noise_is_not_resolved_and_the_control_does_not_count():
    within = {"shift/random": {SGAP: (0.040, 0.005)}, **split_arms(0.035)}  # Δ < 2·SE 0.0082
    control = {"shift/random": {SGAP: (0.200, 0.005)}, **split_arms(0.010)}
    cells = {"shift/brightness_t2": within, shift.CONTROL: control}
    assert verdict(shift.STUDY, cells) is Outcome.UNRESOLVED


# -- the presets and the page agree, and each scale's settings reach the run --------------
CONF = Path(__file__).resolve().parent.parent / "conf"
STUDIES = {"mixing": mixing, "noise": noise, "open_set": open_set, "shift": shift}


@pytest.mark.parametrize("key", list(STUDIES))
def test_each_preset_sweeps_exactly_the_arms_and_conditions_the_page_reads(key):
    import yaml

    params = yaml.safe_load((CONF / "experiment" / f"study_{key}.yaml").read_text())["hydra"][
        "sweeper"
    ]["params"]
    study = STUDIES[key].STUDY
    assert params["arm"].split(",") == [a.option for a in study.arms]
    conditions = [c.option for c in study.conditions if c.option]
    assert params.get("condition", "").split(",") == (conditions or [""])
    assert params["seed"] == "0,1,2"
    for option in [*params["arm"].split(","), *conditions]:
        group = "arm" if option in params["arm"].split(",") else "condition"
        assert (CONF / group / f"{option}.yaml").is_file(), option


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["experiment=study_noise", "arm=noise/mixup", "condition=noise/asym40"],
            {"epochs": 40, "weight_decay": 1e-4, "preset": "mnist", "mixer": "Mixup"},
        ),
        (
            ["experiment=study_noise", "scale=cifar", "arm=noise/ce", "condition=noise/asym40"],
            {"epochs": 10, "weight_decay": 1e-4, "preset": "cifar10", "mixer": None},
        ),
        (
            [
                "experiment=study_shift",
                "scale=cifar",
                "arm=shift/resample_logreg",
                "condition=shift/corrupt",
            ],
            {"epochs": 8, "pca": 32, "corrupt": ("brightness", 3), "mode": "resample"},
        ),
        (
            ["experiment=study_shift", "arm=shift/weight_features", "condition=shift/corrupt"],
            {"epochs": 30, "corrupt": ("blur", 2), "mode": "weight"},
        ),
        (
            ["experiment=study_mixing", "scale=cifar", "arm=mixing/manifold_mixup"],
            {"epochs": 10, "mixer": "ManifoldMixup", "widths": [16, 32, 64]},
        ),
        (["experiment=study_open_set", "arm=open_set/am_softmax_0"], {"epochs": 30, "m": 0.0}),
    ],
)
def test_a_study_cell_builds_with_its_scales_settings(overrides, expected, compose_cfg):
    from regx.config.build import build_spec

    cfg = compose_cfg([*overrides, "dataset.root=/nonexistent"])
    spec = build_spec(cfg)
    got = {"epochs": spec.trainer.epochs}
    if "weight_decay" in expected:
        got["weight_decay"] = spec.trainer.optimizer.weight_decay
    if "preset" in expected:
        got["preset"] = spec.dataset.label_noise.preset
    if "mixer" in expected:
        got["mixer"] = type(spec.mixer).__name__ if spec.mixer else None
    if "pca" in expected:
        got["pca"] = spec.split.discriminator.pca
    if "corrupt" in expected:
        got["corrupt"] = (spec.dataset.shift.kind, spec.dataset.shift.severity)
    if "mode" in expected:
        got["mode"] = spec.split.mode
    if "widths" in expected:
        got["widths"] = list(cfg.model.widths)
    if "m" in expected:
        got["m"] = spec.loss.m
    assert got == expected
