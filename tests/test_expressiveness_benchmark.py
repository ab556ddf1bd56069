"""The k-fold star benchmark (``benchmarks/expressiveness.py``, docs/design.md §12.2): data, the
symmetry argument on the TFN baseline, the EST readouts, training and the report."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytestmark = pytest.mark.slow  # a paper-size build or a benchmark script: not in make test-fast

@pytest.fixture(scope="module")
def bench():
    """The benchmark script (``benchmarks/`` is on pytest's ``pythonpath``)."""
    import expressiveness

    return expressiveness


def pooled_pair(bench, model: str, readout: str, lmax: int, fold: int, points: int = 64,
                channels: int = 8):
    """(model, p0, p1, angle): pooled readout features of the two graphs, seed-0 float64
    model."""
    _, angle = bench.draw_rotation(fold, 0)
    torch.manual_seed(0)
    net = bench.build_model(model, readout, lmax, channels, points, torch.float64).eval()
    with torch.no_grad():
        p0, p1 = net.pooled(bench.collate(bench.star_pair(fold, angle)))
    return net, p0, p1, angle


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / max(a.norm(), b.norm()))


@pytest.mark.parametrize("fold", [2, 3, 5, 10])
def test_star_graphs_are_distinct_rotations(bench, fold):
    u, angle = bench.draw_rotation(fold, 0)
    assert 1 <= u <= fold and 0 < angle < 2 * math.pi / fold
    g0, g1 = bench.star_pair(fold, angle)
    assert g0.pos.shape == (fold + 1, 3) and g0.edge_src.shape == (2 * fold,)
    assert torch.allclose(g0.pos[1:].norm(dim=1), torch.ones(fold, dtype=torch.float64))
    assert torch.allclose(g1.pos, g0.pos @ bench.rotation_z(angle).T)
    distances = [torch.pdist(g.pos).sort().values for g in (g0, g1)]
    assert torch.allclose(*distances, atol=1e-12)
    # not equal, not even up to a permutation of the spokes (q is not a multiple of 2 pi / k)
    gap = torch.cdist(g0.pos[1:], g1.pos[1:]).min(dim=1).values
    assert gap.min() > 1e-3
    assert (g0.labels.item(), g1.labels.item()) == (0, 1)


def test_tfn_is_exactly_equivariant(bench):
    net, p0, p1, angle = pooled_pair(bench, "tfn", "coefficients", 3, 3)
    assert relative(p1, bench.rotate_readout(net, p0, bench.rotation_z(angle))) < 1e-12


@pytest.mark.parametrize("lmax,fold", [(1, 2), (1, 3), (2, 3), (2, 5), (3, 5), (3, 10)])
def test_tfn_cannot_separate_folds_above_lmax(bench, lmax, fold):
    """§13.2: pooled degree <= L features of a k-fold symmetric graph, k > L, only have the
    z-axial (m = 0) part, which a rotation about z leaves unchanged."""
    _, p0, p1, _ = pooled_pair(bench, "tfn", "coefficients", lmax, fold)
    assert relative(p0, p1) < 1e-6


@pytest.mark.parametrize("lmax,fold", [(2, 2), (3, 2), (3, 3)])
def test_tfn_separates_folds_up_to_lmax(bench, lmax, fold):
    _, p0, p1, _ = pooled_pair(bench, "tfn", "coefficients", lmax, fold)
    assert relative(p0, p1) > 1e-2


def test_est_grid_readout_separates_fold_above_lmax(bench):
    """L = 1, k = 5: the pooled grid features differ by a few %, independent of the point
    count (genuine high-degree content of the per-node grid functions); the coefficient
    readout differs only by the grid's symmetry breaking, which shrinks with more points
    (the benchmark's default C = 16)."""
    _, g0, g1, _ = pooled_pair(bench, "est", "grid", 1, 5, channels=16)
    _, c0, c1, _ = pooled_pair(bench, "est", "coefficients", 1, 5, channels=16)
    grid_64, coeff_64 = relative(g0, g1), relative(c0, c1)
    assert grid_64 > 1e-2 and coeff_64 < 1e-3
    _, g0, g1, _ = pooled_pair(bench, "est", "grid", 1, 5, points=256, channels=16)
    _, c0, c1, _ = pooled_pair(bench, "est", "coefficients", 1, 5, points=256, channels=16)
    assert relative(g0, g1) == pytest.approx(grid_64, rel=0.1)
    assert relative(c0, c1) < coeff_64 / 2


def test_est_coefficient_difference_is_the_equivariance_error(bench):
    net, p0, p1, angle = pooled_pair(bench, "est", "coefficients", 1, 10)
    diagnostic = bench.separability(net, bench.star_pair(10, angle), angle)
    assert diagnostic["relative_difference"] == pytest.approx(relative(p0, p1))
    assert 1e-7 < diagnostic["equivariance_error"] < 1e-2
    assert diagnostic["relative_difference"] < 10 * diagnostic["equivariance_error"]


def test_training_fits_separable_and_not_inseparable(bench):
    pair_sep = bench.star_pair(2, bench.draw_rotation(2, 0)[1])
    pair_insep = bench.star_pair(3, bench.draw_rotation(3, 0)[1])
    torch.manual_seed(0)
    net = bench.build_model("tfn", "coefficients", 2, 8, 64, torch.float64)
    assert bench.train_once(net, pair_sep, 60, 1e-3, 0)["test_accuracy"] == 100.0
    torch.manual_seed(0)
    net = bench.build_model("tfn", "coefficients", 1, 8, 64, torch.float64)
    result = bench.train_once(net, pair_insep, 30, 1e-3, 0)
    assert result["test_accuracy"] == 50.0 and result["final_accuracy"] == 50.0


@pytest.mark.parametrize("model,readout", [("tfn", "coefficients"), ("est", "grid")])
def test_vectorised_training_matches_separate_runs(bench, model, readout):
    """``train_seeds`` (all seeds in one vmapped forward, the benchmark's path) reproduces
    ``train_once`` seed by seed."""
    pair = bench.star_pair(3, bench.draw_rotation(3, 0)[1])
    seeds, nets, reference = [0, 1], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        reference.append(bench.train_once(
            bench.build_model(model, readout, 3, 8, 64, torch.float64), pair, 4, 1e-3, seed))
        torch.manual_seed(seed)
        nets.append(bench.build_model(model, readout, 3, 8, 64, torch.float64))
    for ref, vec in zip(reference, bench.train_seeds(nets, pair, 4, 1e-3, seeds)):
        assert vec["test_accuracy"] == ref["test_accuracy"]
        assert vec["best_epoch"] == ref["best_epoch"]
        assert vec["final_loss"] == pytest.approx(ref["final_loss"], rel=1e-9)


def test_main_writes_report_and_plot(bench, tmp_path):
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    bench.main(["--models", "tfn/coefficients", "est/grid", "--lmax", "1", "--folds", "2",
                "--seeds", "0", "1", "--epochs", "2", "--workers", "1",
                "--diagnostic-points", "--out", str(out), "--plot", str(png)])
    report = json.loads(out.read_text())
    assert {"command", "date", "machine", "settings", "readout", "results"} <= set(report)
    assert report["machine"]["torch"] == torch.__version__
    rows = {(r["model"], r["readout"]): r for r in report["results"]}
    assert set(rows) == {("tfn", "coefficients"), ("est", "grid")}
    assert len(rows["tfn", "coefficients"]["accuracies"]) == 2
    assert set(rows["est", "grid"]["separability_init_float64"]) == {"64"}
    assert png.stat().st_size > 0
