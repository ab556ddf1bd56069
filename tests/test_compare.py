"""The comparison runner's parts: run configs, budgets from the timing, learning-rate choice,
paired statistics with Holm's correction (est_fairchem.compare; docs/guide/compare.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from est_fairchem.compare.plan import chosen_learning_rates, pending_runs, seed_runs
from est_fairchem.compare.statistics import holm, paired_difference, seeds_needed
from est_fairchem.compare.study import Run, Study, check_study, resumable, run_config, \
    with_graph_statistics
from est_fairchem.errors import InputError


def _study(tmp_path, **changes) -> Study:
    files = {}
    for name in ("data", "a", "b", "c"):
        files[name] = tmp_path / f"{name}.yml"
        files[name].write_text("model: {}\n")
    settings = dict(data=str(files["data"]), models={n: str(files[n]) for n in "abc"},
                    seeds=[0, 1, 2, 3], steps=100, batch_size=4, train_size=40, lrs=[1e-3])
    return Study(**{**settings, **changes})


DATA = {
    "trainer": "ocp",
    "dataset": {"train": {"format": "lmdb", "src": "train", "first_n": 500},
                "val": {"src": "val", "first_n": 50}, "test": {"src": "test", "first_n": 70}},
    "optim": {"eval_batch_size": 16, "max_epochs": 99},
    "outputs": {"homo": {"level": "system"}},
}


def test_a_run_draws_its_training_set_by_seed_and_trains_exactly_its_steps(tmp_path):
    study = _study(tmp_path)
    config = run_config(study, Run("steps", "a", 3, 120, 2e-3), DATA, {"name": "hydra"})
    train = config["dataset"]["train"]
    # the draw sits in the train split's own settings: fairchem copies the train keys into
    # val and test, where a sample_n would clash with their first_n
    assert train["train_split_settings"] == {"sample_n": 40, "seed": 3}
    assert "first_n" not in train and config["dataset"]["val"] == DATA["dataset"]["val"]
    assert "test" not in config["dataset"]  # tested once, from the best checkpoint
    assert config["trainer"] == "est_fairchem.trainers.PreemptibleOCPTrainer"
    optim = config["optim"]
    assert optim["max_steps"] == optim["T_max"] == 120 and optim["lr_initial"] == 2e-3
    assert optim["eta_min"] == pytest.approx(2e-5) and optim["eval_every"] == 20
    assert optim["eval_batch_size"] == 16  # the dataset config's own keys stay
    # the test split is evaluated alone: fairchem's LMDB dataset opens a file once per process
    tested = run_config(study, Run("steps", "a", 3, 120, 2e-3), DATA, {}, split="validate")
    assert tested["dataset"]["val"] == DATA["dataset"]["test"] and "test" not in tested["dataset"]
    predicted = run_config(study, Run("steps", "a", 3, 120, 2e-3), DATA, {}, split="predict")
    assert "val" not in predicted["dataset"] and predicted["dataset"]["test"]["first_n"] == 70
    assert DATA["dataset"]["train"]["first_n"] == 500  # the dataset config is not changed


def test_graph_statistics_replace_every_configured_value_and_a_model_without_them_is_refused():
    model = {"backbone": {"avg_degree": 6.5, "avg_num_nodes": 13.5},
             "heads": {"homo": {"avg_num_nodes": 40.0}}}
    filled = with_graph_statistics(model, {"avg_degree": 15.6, "avg_num_nodes": 18.0}, "m.yml")
    assert filled["backbone"] == {"avg_degree": 15.6, "avg_num_nodes": 18.0}
    assert filled["heads"]["homo"]["avg_num_nodes"] == 18.0
    assert model["backbone"]["avg_degree"] == 6.5
    with pytest.raises(InputError, match="m.yml: sets neither avg_num_nodes nor avg_degree"):
        with_graph_statistics({"backbone": {"lmax": 2}}, {"avg_degree": 1.0}, "m.yml")


def test_equal_time_budgets_come_from_the_timing_and_are_the_same_for_every_seed(tmp_path):
    study = _study(tmp_path, model_seeds={"c": 2})
    cost = {"models": {"a": {"seconds_per_step": 0.2}, "b": {"seconds_per_step": 0.3},
                       "c": {"seconds_per_step": 0.203}}}
    runs = seed_runs(study, {"a": 1e-3, "b": 3e-3, "c": 1e-3}, cost)
    time_runs = [r for r in runs if r.protocol == "time"]
    assert {r.model for r in time_runs} == {"b"}  # c is within 2 % of a: its steps runs count
    assert {r.steps for r in time_runs} == {67} and len(time_runs) == 4  # 100 x 0.2 / 0.3
    assert [r.seed for r in runs if r.model == "c"] == [0, 1]  # limited to its first 2 seeds
    assert all(r.lr == 3e-3 for r in runs if r.model == "b")
    assert [r.seed for r in runs] == sorted(r.seed for r in runs)  # seed by seed


def test_same_time_sets_how_far_a_models_cost_may_be_before_it_gets_a_time_run(tmp_path):
    cost = {"models": {"a": {"seconds_per_step": 0.2}, "b": {"seconds_per_step": 0.19},
                       "c": {"seconds_per_step": 0.3}}}
    lrs = {"a": 1e-3, "b": 1e-3, "c": 1e-3}

    def timed(same_time: float) -> set[str]:
        study = _study(tmp_path, same_time=same_time)
        return {r.model for r in seed_runs(study, lrs, cost) if r.protocol == "time"}

    assert timed(0.02) == {"b", "c"}  # b: 105 steps, 5 % off
    assert timed(0.07) == {"c"}
    with pytest.raises(InputError, match="same time 1.5"):
        check_study(_study(tmp_path, same_time=1.5))
    saved = _study(tmp_path, same_time=0.02)
    assert resumable(saved, _study(tmp_path, same_time=0.07)) == []  # only selects runs


def test_each_model_keeps_its_swept_rate_with_the_lowest_validation_error(tmp_path):
    study = _study(tmp_path, lrs=[1e-4, 1e-3, 1e-2])
    runs = {}
    for model, best in (("a", 1e-3), ("b", 1e-2), ("c", 1e-4)):
        for lr in study.lrs:
            run = Run("sweep", model, study.sweep_seed, study.steps, lr)
            runs[run.name] = {"best_val": 1.0 + abs(math.log10(lr / best))}
    assert chosen_learning_rates(study, runs) == {"a": 1e-3, "b": 1e-2, "c": 1e-4}
    del runs[Run("sweep", "b", study.sweep_seed, study.steps, 1e-4).name]
    assert chosen_learning_rates(study, runs)["b"] is None  # not chosen before the sweep ends


def test_a_study_that_cannot_run_is_refused_naming_the_value(tmp_path):
    with pytest.raises(InputError, match="sweep seed 1000 is also an evaluation seed"):
        check_study(_study(tmp_path, seeds=[0, 1000], lrs=[1e-3, 3e-3]))
    with pytest.raises(InputError, match=r"models \['d'\]"):
        check_study(_study(tmp_path, pairs=[["d", "a"]]))
    with pytest.raises(InputError, match="nothing.yml: no such file"):
        check_study(_study(tmp_path, data=str(tmp_path / "nothing.yml")))
    saved = _study(tmp_path)
    assert resumable(saved, _study(tmp_path, seeds=[0, 1, 2, 3, 4, 5])) == []
    assert resumable(saved, _study(tmp_path, steps=200, lrs=[3e-3])) == ["steps", "lrs"]


def test_paired_difference_matches_the_paired_t_test():
    from scipy import stats

    rng = np.random.default_rng(0)
    baseline = {seed: 300 + rng.normal(0, 5) for seed in range(8)}
    model = {seed: value - 10 + rng.normal(0, 3) for seed, value in baseline.items()}
    model[99] = 1.0  # a seed the baseline did not run does not count
    d = paired_difference(model, baseline)
    seeds = list(range(8))
    expected = stats.ttest_rel([model[s] for s in seeds], [baseline[s] for s in seeds])
    assert d.seeds == seeds and d.p == pytest.approx(expected.pvalue)
    assert d.low < d.mean < d.high < 0
    assert d.relative_mean == pytest.approx(np.mean([model[s] / baseline[s] - 1 for s in seeds]))


def test_holm_adjusts_in_order_and_never_below_the_raw_p():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.2, math.nan, 0.001, 0.5])
    assert math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.003) and adjusted[0] == pytest.approx(0.4)
    assert adjusted[3] == pytest.approx(0.5)


def test_seeds_needed_grows_with_the_spread():
    rng = np.random.default_rng(1)
    narrow, wide = rng.normal(0, 1, 10), rng.normal(0, 4, 10)
    assert seeds_needed(wide, 2.0) > seeds_needed(narrow, 2.0) >= 2


def test_runs_go_seed_by_seed_each_sweep_before_its_models_first_seed(tmp_path):
    study = _study(tmp_path, lrs=[1e-3, 3e-3], seeds=[0, 1])
    cost = {"models": {name: {"seconds_per_step": 0.2} for name in "abc"}}
    first = pending_runs(study, cost, {})
    assert [run.name for run in first] == [  # no rate chosen yet: only the sweeps are known
        f"sweep-{m}-lr{lr:g}-seed1000" for m in "abc" for lr in (1e-3, 3e-3)]
    done = {run.name: {"best_val": 1.0 if run.lr == 3e-3 else 2.0}
            for run in first if run.model == "a"}
    after = pending_runs(study, cost, done)
    names = [run.name for run in after]
    # a's seed 0 comes before b's sweep: it is ready, and whole pairs of seeds come first
    assert names.index("steps-a-seed0") < names.index("sweep-b-lr0.001-seed1000")
    assert names.index("steps-a-seed0") < names.index("steps-a-seed1")
    assert {run.lr for run in after if run.model == "a"} == {3e-3}


def test_later_models_run_after_every_seed_of_the_others(tmp_path):
    study = _study(tmp_path, later=["b"])
    cost = {"models": {name: {"seconds_per_step": 0.2} for name in "abc"}}
    names = [run.name for run in pending_runs(study, cost, {})]
    assert names.index("steps-c-seed3") < names.index("steps-b-seed0")


def test_long_first_starts_the_convergence_runs_before_the_others_and_changes_none(tmp_path):
    study = _study(tmp_path, long_factor=4, long_seeds=[0, 1], long_models=["a", "b"])
    cost = {"models": {name: {"seconds_per_step": 0.2} for name in "abc"}}
    usual = pending_runs(study, cost, {})
    first = pending_runs(study, cost, {}, long_first=True)
    assert [run.protocol for run in usual[-4:]] == ["long"] * 4
    assert [run.name for run in first[:4]] == [
        "long-a-seed0", "long-b-seed0", "long-a-seed1", "long-b-seed1"]
    assert set(first) == set(usual) and {run.steps for run in first[:4]} == {400}


def test_convergence_curves_are_averaged_apart_from_the_equal_steps_curves(tmp_path):
    from est_fairchem.compare.report import mean_curves

    study = _study(tmp_path)

    def run(protocol, model, seed, values):
        return {"protocol": protocol, "model": model, "seed": seed,
                "curve": [{"step": 10 * (i + 1), "val": v} for i, v in enumerate(values)]}

    runs = {"1": run("steps", "a", 0, [3.0, 2.0]), "2": run("steps", "a", 1, [5.0, 4.0]),
            "3": run("long", "a", 0, [3.0, 2.0, 1.0, 0.5]),
            "4": run("long", "a", 1, [5.0, 4.0, 3.0]),  # cut short: the mean stops at 3 points
            "5": run("sweep", "b", 1000, [9.0, 9.0])}
    assert mean_curves(study, runs, "steps", 1000.0) == {"a": ([10, 20], [4000.0, 3000.0], 2)}
    assert mean_curves(study, runs, "long", 1.0) == {"a": ([10, 20, 30], [4.0, 3.0, 2.0], 2)}


def test_holm_counts_an_equal_time_row_on_the_equal_steps_runs_once(tmp_path):
    from est_fairchem.compare.report import comparisons

    study = _study(tmp_path, pairs=[["c", "b"]])
    rng = np.random.default_rng(0)
    runs = {}
    for model, shift in (("a", 0.0), ("b", 0.3), ("c", 0.1)):
        for seed in study.seeds:
            runs[f"steps-{model}-{seed}"] = {"protocol": "steps", "model": model, "seed": seed,
                                             "test": 1.0 + shift + 0.1 * rng.normal()}
    for seed in study.seeds:  # c alone has equal-time runs (a cheaper model)
        runs[f"time-c-{seed}"] = {"protocol": "time", "model": "c", "seed": seed,
                                  "test": 0.9 + 0.1 * rng.normal()}
    rows = [r for r in comparisons(study, runs, 1.0) if "difference" in r]
    by = {(r["protocol"], r["model"], r["reference"]): r["difference"] for r in rows}
    # b has no time runs: its equal-time row against the baseline is its equal-steps row again
    assert by["time", "b", "a"]["p"] == by["steps", "b", "a"]["p"]
    distinct = [by[k]["p"] for k in (("steps", "b", "a"), ("steps", "c", "a"),
                                     ("steps", "c", "b"), ("time", "c", "a"), ("time", "c", "b"))]
    assert len(rows) == 6
    expected = dict(zip(distinct, holm(distinct)))
    for difference in by.values():
        assert difference["p_holm"] == pytest.approx(expected[difference["p"]])
    assert by["time", "b", "a"]["p_holm"] == by["steps", "b", "a"]["p_holm"]


def test_the_bootstrap_draws_seeds_and_structures_together():
    from est_fairchem.compare.statistics import bootstrap_relative_difference

    rng = np.random.default_rng(1)
    reference = {s: rng.exponential(1.0, 500) for s in range(6)}
    scaled = bootstrap_relative_difference({s: 0.9 * e for s, e in reference.items()}, reference)
    # every draw takes the same structures of both models: a uniform 10 % gain has no spread
    assert scaled["relative_mean"] == pytest.approx(-0.1)
    assert scaled["relative_low"] == pytest.approx(-0.1)
    assert scaled["relative_high"] == pytest.approx(-0.1)
    noisy = {s: e * rng.uniform(0.8, 1.0, 500) for s, e in reference.items()}  # 10 % lower
    few = {s: e[:50] for s, e in noisy.items()}
    wide = bootstrap_relative_difference(few, {s: e[:50] for s, e in reference.items()})
    narrow = bootstrap_relative_difference(noisy, reference)
    assert narrow["relative_low"] < -0.1 < narrow["relative_high"] < 0
    assert wide["relative_high"] - wide["relative_low"] > \
        2 * (narrow["relative_high"] - narrow["relative_low"])  # 10x fewer structures
    assert bootstrap_relative_difference({0: reference[0]}, reference) is None  # one seed
    with pytest.raises(ValueError, match="same test structures"):
        bootstrap_relative_difference(few, reference)
