"""Per-node grid frames (``est.grid_frame: local``): an exactly equivariant spherical branch."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from est_fairchem.models.common.est_config import ESTConfig, ESTConfigError
from est_fairchem.nn import ESTUpdate
from est_fairchem.nn.local_frame import LocalFrame
from est_fairchem.sphere.transform import real_spherical_harmonics
from est_fairchem.sphere.wigner import WignerFromRotation
from est_fairchem.testing.equivariance import steerable_rotation_error
from tests import test_backbone
from tests.test_backbone import SMALL_EST, _model

LMAX = 4


def _rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """D(R) x for [N, (L+1)^2, C], with Wigner-D exact in float64."""
    wigner = WignerFromRotation(LMAX)(rotation[None])[0]
    return torch.einsum("kj,njc->nkc", wigner, x)


def _update(num_points: int, sampling: str, grid_frame: str) -> ESTUpdate:
    torch.manual_seed(0)
    repulsion = 500 if sampling == "fibonacci" else 0
    config = ESTConfig(num_points=num_points, sampling=sampling, repulsion_steps=repulsion,
                       spherical_hidden_channels=32, grid_frame=grid_frame)
    return config.update_block(LMAX, 16, [])


def _update_error(update: ESTUpdate, seed: int | None = None) -> float:
    """Max relative error of update(D x) against D update(x) over 3 rotations; with ``seed``,
    both calls draw the same random grid rotation (training mode)."""
    torch.manual_seed(1)
    x = torch.randn(6, (LMAX + 1) ** 2, 16)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    return max(steerable_rotation_error(lambda features: update(features, batch), x,
                                        o3.rand_matrix(dtype=torch.float64), LMAX, seed)
               for _ in range(3))


@pytest.mark.parametrize("lmax", [0, 1, 2, 4, 6])
def test_wigner_from_rotation_turns_the_harmonics(float64, lmax):
    """Y(R p) = D(R) Y(p) for e3nn's harmonics, the defining property, to round-off."""
    rotations = o3.rand_matrix(4, dtype=torch.float64)
    ours = WignerFromRotation(lmax)(rotations)
    assert ours.shape == (4, (lmax + 1) ** 2, (lmax + 1) ** 2)
    points = torch.nn.functional.normalize(torch.randn(30, 3, dtype=torch.float64), dim=1)
    turned = real_spherical_harmonics(lmax, torch.einsum("rij,pj->rpi", rotations, points))
    expected = torch.einsum("rkj,pj->rpk", ours, real_spherical_harmonics(lmax, points))
    assert torch.allclose(turned, expected, atol=1e-12)
    # D(R^T) = D(R)^T, here from a non-contiguous (transposed) input
    inverse = WignerFromRotation(lmax)(rotations.transpose(1, 2))
    assert torch.allclose(inverse, ours.transpose(1, 2), atol=1e-10)


def test_frame_is_a_rotation_that_turns_with_the_features(float64):
    torch.manual_seed(0)
    x = torch.randn(5, (LMAX + 1) ** 2, 16)
    rotation = o3.rand_matrix(dtype=torch.float64)
    frame = LocalFrame(16)
    frames, weights = frame(x)
    identity = torch.eye(3).expand(5, 3, 3)
    assert torch.allclose(frames @ frames.transpose(1, 2), identity, atol=1e-12)
    assert torch.allclose(torch.linalg.det(frames), torch.ones(5), atol=1e-12)
    assert torch.equal(weights, torch.ones(5))  # random features: every frame well defined
    rotated_frames, rotated_weights = frame(_rotate(x, rotation))
    assert torch.allclose(rotated_frames, frames @ rotation.T, atol=1e-10)
    assert torch.equal(rotated_weights, weights)


def _symmetric_features(num: int, scale: float = 1.0) -> torch.Tensor:
    """Features whose degree-1 channels are all parallel (b parallel to a: no frame)."""
    torch.manual_seed(3)
    x = torch.randn(num, (LMAX + 1) ** 2, 16) * scale
    x[:, 1:4] = torch.randn(num, 3, 1) * torch.rand(1, 1, 16) * scale
    return x


def test_frame_weight_falls_smoothly_from_one_to_zero_as_the_frame_degenerates(float64):
    """Weight 1 at condition number t = 1e-3, 0 at t / 10, monotone between; the same at any
    overall scale of the features (the condition numbers are relative)."""
    frame = LocalFrame(16)
    base = _symmetric_features(1)
    torch.manual_seed(4)
    perpendicular = torch.randn(1, 3, 16)
    sizes = torch.logspace(-6, 0, 25)
    weights = []
    for size in sizes:
        x = base.clone()
        x[:, 1:4] += size * perpendicular * torch.linalg.vector_norm(base)
        weights.append(float(frame(x)[1]))
        assert float(frame(x * 1e-5)[1]) == pytest.approx(weights[-1], abs=1e-9)
    assert weights[0] == 0.0 and weights[-1] == 1.0
    assert all(later >= earlier for earlier, later in zip(weights, weights[1:]))
    assert 0.0 < max(w for w in weights if w < 1.0)  # a band of intermediate weights
    assert frame(base)[1] == 0.0


def test_band_nodes_blend_the_frame_and_the_fixed_grid(float64):
    """0 < w < 1: the output is w y(frame) + (1 - w) y(fixed grid), each computed alone."""
    local = _update(64, "fibonacci", "local").eval()
    fixed = _update(64, "fibonacci", "global").eval()
    fixed.load_state_dict(local.state_dict())
    x = _symmetric_features(1)
    torch.manual_seed(5)
    x[:, 1:4] += 8e-5 * torch.randn(1, 3, 16) * torch.linalg.vector_norm(x)
    frames, weight = local.spherical.frame(x)
    assert 0.0 < float(weight) < 1.0
    gates = local.gate(x[:, 0])
    y_frame = local.spherical.on_grid(x, gates, local.spherical.wigner(frames))
    y_fixed = fixed.spherical.on_grid(x, gates, None)
    expected = torch.cat([local.spherical.scalar_branch(x[:, 0]).unsqueeze(1),
                          weight * y_frame + (1 - weight) * y_fixed], dim=1)
    assert torch.allclose(local(x), expected, atol=1e-12)


def test_branch_is_continuous_where_the_frame_degenerates(float64):
    """Perturbing a node without a frame by delta changes the output by O(delta): the limit
    does not depend on the direction of the perturbation (it did by the grid's error)."""
    update = _update(64, "fibonacci", "local").eval()
    x = _symmetric_features(1)
    out = update(x)
    changes = {}
    for delta in (1e-8, 1e-2):
        torch.manual_seed(6)
        steps = [torch.randn(1, (LMAX + 1) ** 2, 16) for _ in range(4)]
        changes[delta] = max(float((update(x + delta * step) - out).abs().max()) for step in steps)
    print("output change:", changes)
    assert changes[1e-8] <= 1e-5 * changes[1e-2]


@pytest.mark.parametrize("num_points,sampling", [(64, "fibonacci"), (86, "lebedev")])
def test_local_frame_makes_the_branch_exactly_equivariant(float64, num_points, sampling):
    """Measured (float64, eval, C=16, L=4): global grid 6.3e-2 (64 Fibonacci) and 2.1e-2
    (86 Lebedev); local frame ~1e-10 for both."""
    global_error = _update_error(_update(num_points, sampling, "global").eval())
    local_error = _update_error(_update(num_points, sampling, "local").eval())
    assert global_error > 1e-3
    assert local_error < 1e-8


def test_training_rotation_turns_the_grid_relative_to_the_frame(float64):
    """In training a random rotation per system composes with the frame: for the same draw the
    branch stays exactly equivariant, and different draws give different outputs."""
    update = _update(64, "fibonacci", "local").train()
    assert _update_error(update, seed=7) < 1e-8
    x = torch.randn(4, (LMAX + 1) ** 2, 16)
    assert not torch.allclose(update(x), update(x))


def test_symmetric_node_gets_a_finite_output_and_gradient(float64):
    update = _update(64, "fibonacci", "local").train()
    x = torch.randn(3, (LMAX + 1) ** 2, 16)
    x[0, 1:4] = 0.0  # no degree-1 features: no frame of its own
    x[1, 1:4] = torch.randn(3, 1) * torch.ones(1, 16)  # all degree-1 channels parallel
    assert update.spherical.frame(x)[1].tolist() == [0.0, 0.0, 1.0]
    x.requires_grad_(True)
    out = update(x)
    out.square().sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()


def test_local_frame_whole_model_beats_the_global_grid(float64):
    """Whole EST-EquiformerV2 (float64, eval) with its spherical experts' output scaled up 30x,
    so the spherical branch dominates the update: the global 36-point grid shows its
    discretisation error, the local frame stays at plain EquiformerV2's floor (fairchem's own
    float32 Wigner tables). Measured (energy, forces): plain 2.1e-7 / 7.8e-5, global grid
    2.2e-6 / 2.6e-3, local frame 1.0e-7 / 1.4e-5."""

    def amplified(grid_frame: str) -> torch.nn.Module:
        model = _model({**SMALL_EST, "grid_frame": grid_frame})
        with torch.no_grad():
            for block in model.backbone.blocks:
                block.update.spherical.spherical_experts.down.weight.mul_(30.0)
        return model

    suite = test_backbone.TestEquiformerV2ESTBackbone()  # imported as a module: not collected here

    def errors(model: torch.nn.Module) -> tuple[float, float]:
        measured = suite.rotation_errors(model, rotations=2)
        return measured["energy"], measured["forces"]

    plain = errors(_model(None))
    global_grid = errors(amplified("global"))
    local = errors(amplified("local"))
    print(f"rotation errors (energy, forces): plain {plain}, global {global_grid}, local {local}")
    assert local[0] < max(10 * plain[0], 1e-8) and local[1] < max(10 * plain[1], 1e-8)
    assert global_grid[0] > 10 * local[0] or global_grid[1] > 10 * local[1]


def test_grid_frame_option_is_checked():
    assert ESTConfig().grid_frame == "local"
    assert ESTConfig.from_mapping({"grid_frame": "local"}, lmax=2).grid_frame == "local"
    with pytest.raises(ESTConfigError, match=r"est.grid_frame='frame': expected one of"):
        ESTConfig.from_mapping({"grid_frame": "frame"}, lmax=2)


def test_local_frame_runs_in_float32_under_autocast():
    """fairchem's --amp: the frame, its Wigner-D and the rotations stay in float32."""
    update = _update(64, "fibonacci", "local").float().train()
    x = torch.randn(4, (LMAX + 1) ** 2, 16)
    x[0, 1:4] = 0.0  # and a node on the fixed grid
    dtypes = []
    update.spherical.wigner.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = update(x)
    assert dtypes == [torch.float32]
    assert torch.isfinite(out).all()
