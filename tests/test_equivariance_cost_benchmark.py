"""benchmarks/equivariance_cost.py on one tiny variant and plain EquiformerV2: 1 layer of the
l4 size, 1 structure, 1 rotation, 2 training steps."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow  # a paper-size build or a benchmark script: not in make test-fast

TINY = ["--override", "num_layers=1", "--rotations", "1", "--structures", "1",
        "--train-steps", "2", "--timing-steps", "2", "--train-batches", "2",
        "--eval-batches", "1"]


@pytest.fixture(scope="module")
def bench():
    """The benchmark script (``benchmarks/`` is on pytest's ``pythonpath``)."""
    import equivariance_cost

    return equivariance_cost


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("equivariance_cost")
    argv = ["--variants", "sp1-fibrep64", *TINY,
            "--out", str(out / "r.json"), "--plot", str(out / "r.png")]
    return bench.main(argv), out


def _errors_ok(errors: dict) -> None:
    for key in ("energy_max", "energy_mean", "force_max", "force_mean",
                "energy_abs_max", "force_abs_max"):
        assert math.isfinite(errors[key]) and errors[key] >= 0, key
    assert errors["energy_mean"] <= errors["energy_max"]


def test_report_files_and_keys(report):
    result, out = report
    saved = json.loads((out / "r.json").read_text())
    assert {"command", "date", "machine", "settings", "plain", "variants", "meets_both"} <= set(saved)
    assert saved["settings"]["backbone"]["num_layers"] == 1
    assert saved["settings"]["backbone"]["lmax_list"] == [4]
    assert set(saved["variants"]) == {"sp1-fibrep64"}
    assert (out / "r.png").stat().st_size > 10_000
    assert saved["command"].startswith("python benchmarks/equivariance_cost.py --variants sp1-fibrep64")


def test_errors_cost_and_loss(report):
    result, _ = report
    plain, variant = result["plain"], result["variants"]["sp1-fibrep64"]
    for model in (plain, variant):
        _errors_ok(model["random"])
        _errors_ok(model["trained"])
        assert model["cost_ratio"] > 0
        assert all(math.isfinite(model[k]) for k in ("loss_first", "loss_final", "eval_loss"))
    assert variant["est"]["num_points"] == 64
    assert variant["parameters"] != plain["parameters"]
    # plain EquiformerV2 in float64 is equivariant up to its own grids and edge frames
    assert plain["random"]["energy_max"] < 1e-5
    assert plain["trained"]["energy_max"] < 1e-5


def test_training_lowers_the_loss(bench):
    plain = bench.plain_config("l4", {"num_layers": 1})
    batch = bench.make_batches(1, 2, (2, 2, 3), seed=0)
    trainer = bench.Trainer.of(bench.seeded_model(plain, seed=0), lr=1e-3)
    run = bench.train(trainer, batch, steps=5, partner=None, timing_steps=0)
    assert run["own_s"] == [] and len(run["losses"]) == 5
    assert run["losses"][-1] < run["losses"][0]


def test_variants_and_configs(bench, monkeypatch):
    variants = bench.default_variants(channels=32, ffn_hidden=32)
    assert {"default", "paper-fibrep90", "sp2-leb86", "sp2-ll324", "st1sp1-fibrep64"} <= set(variants)
    assert variants["default"] == {}
    paper = variants["paper-fibrep90"]
    assert (paper["num_steerable_experts"], paper["spherical_hidden_channels"]) == (5, 128)
    assert paper["steerable_hidden_channels"] == 32 and paper["grid_frame"] == "global"
    plain = bench.plain_config("l4")
    est = bench.est_config(plain, variants["sp2-fib64-local"])
    assert "est" not in plain["model"]["backbone"]
    assert plain["model"]["backbone"]["model"] == bench.PLAIN_BACKBONE
    assert est["model"]["backbone"]["est"]["grid_frame"] == "local"
    assert bench.unavailable_options({"no_such_option": 1}) == ["no_such_option"]
    assert bench.cost_ratio([2.0, 2.0], [1.0, 1.0])["cost_ratio"] == 2.0
    # a checkout without grid_frame: global variants run without the key, local ones skip
    monkeypatch.setattr(bench, "unavailable_options", lambda est: ["grid_frame"])
    assert bench.for_this_checkout(variants["sp2-fib64"]) == (
        {k: v for k, v in variants["sp2-fib64"].items() if k != "grid_frame"}, [])
    assert bench.for_this_checkout(variants["sp2-fib64-local"])[1] == ["grid_frame"]


def test_more_timed_steps_than_training_steps_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--train-steps", "10", "--timing-steps", "11"])
    assert "--timing-steps 11: expected at most --train-steps (10)" in capsys.readouterr().err
    assert bench.parse_args(["--train-steps", "10", "--timing-steps", "10"]).timing_steps == 10


def test_symmetric_set_is_unrattled_and_symmetric(bench):
    """The symmetric set is what it claims: CO exactly above a surface atom, and crystals whose
    forces vanish by symmetry (a Lennard-Jones pair potential: below 1e-10 eV/A), so a per-node
    frame is undefined there."""
    import numpy as np
    from ase.calculators.lj import LennardJones

    slab, copper, salt = bench.symmetric_structures(3, seed=0)
    carbon = slab.positions[slab.get_chemical_symbols().index("C")]
    top_layer = slab.positions[slab.positions[:, 2] > slab.positions[:27, 2].max() - 0.1][:9]
    assert np.min(np.linalg.norm(top_layer[:, :2] - carbon[:2], axis=1)) < 1e-9
    for crystal in (copper, salt):
        crystal.calc = LennardJones(sigma=2.3, rc=6.0)
        forces = crystal.get_forces()
        rattled = crystal.copy()
        rattled.rattle(0.05, seed=1)
        rattled.calc = LennardJones(sigma=2.3, rc=6.0)
        assert np.abs(forces).max() < 1e-10 < np.abs(rattled.get_forces()).max()
    assert len(bench.symmetric_structures(2, seed=0)) == 2


def test_symmetric_set_compares_absolute_forces(bench):
    assert bench.force_key("symmetric") == "force_abs_max"
    assert bench.force_key("rattled") == "force_max"
    errors = {"energy_max": 1e-6, "force_max": 9.0, "force_abs_max": 1e-5}
    model = {"parameters": 1000, "random": errors, "trained": errors, "eval_loss": 1.0}
    report = {"settings": {"structure_set": "symmetric"}, "plain": {**model, "cost_ratio": 1.0},
              "variants": {"v": {**model, "cost_ratio": 0.9}}}
    text = bench.table(report)
    assert "F err random (eV/A)" in text and "1.0e-05" in text and "9.0e+00" not in text
    worse = {**errors, "force_max": 99.0}  # a worse relative force error does not count here
    assert bench.meets({**model, "random": worse, "trained": worse, "cost_ratio": 0.9},
                       report["plain"], "force_abs_max")


def test_structure_count_is_checked_per_set(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--structure-set", "symmetric", "--structures", "4"])
    assert "expected 1 to 3 for --structure-set symmetric" in capsys.readouterr().err
