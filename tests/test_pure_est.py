"""The pure EST model (ESTBackbone, paper Figure 3) as fairchem builds it: invariances of a QM9
target in float64, batching, the message block's equivariance, training-mode grid rotation and
config errors; and the QM9 layout (L = 2) of EST with Equiformer's graph attention."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml
from e3nn import o3

from est_fairchem.errors import InputError
from est_fairchem.models.common.est_config import ESTConfigError
from est_fairchem.testing import relative_error, rotate_steerable
from est_fairchem.testing.backbone_suite import BackboneSuite
from est_fairchem.testing.equivariance import rotation_errors
from tests.model_utils import REPO, build

SMALL_MODEL = REPO / "configs/qm9/demo/est_small.yml"
SMALL_GA_MODEL = REPO / "configs/qm9/demo/est_ga_small.yml"
HEAD = {"module": "est_fairchem.models.EquiformerScalarHead", "output_name": "u0_atomization",
        "avg_num_nodes": 18.03}


def est_config(est: dict | None = None, message: dict | None = None, **overrides) -> dict:
    """The QM9 demo's small pure EST with a scalar head; ``est``/``message`` update its options."""
    model = copy.deepcopy(yaml.safe_load(SMALL_MODEL.read_text())["model"])
    model["backbone"]["est"].update(est or {})
    model["backbone"]["message"].update(message or {})
    model["backbone"].update(overrides)
    model["heads"] = {"u0_atomization": HEAD}
    return {"model": model}


def _model(est: dict | None = None, **overrides) -> torch.nn.Module:
    return build(est_config(est, **overrides)).double().eval()


def molecule(name: str = "CH3CH2OH", seed: int = 0):
    """An ASE G2 molecule, rattled so that no symmetry hides errors."""
    from ase.build import molecule as ase_molecule

    atoms = ase_molecule(name)
    atoms.positions += np.random.default_rng(seed).normal(0, 0.05, size=atoms.positions.shape)
    return atoms


def batch_of(atoms_list, positions: list[np.ndarray] | None = None):
    """A fairchem batch of molecules with float64 positions (graphs built by the model)."""
    from fairchem.core.datasets import data_list_collater
    from fairchem.core.preprocessing import AtomsToGraphs

    a2g = AtomsToGraphs(r_edges=False, r_fixed=True, r_pbc=True)
    data = []
    for i, atoms in enumerate(atoms_list):
        sample = a2g.convert(atoms)
        pos = atoms.positions if positions is None else positions[i]
        sample.pos = torch.as_tensor(pos, dtype=torch.float64)
        data.append(sample)
    return data_list_collater(data, otf_graph=True)


def _predict(model, atoms_list, positions=None) -> torch.Tensor:
    return model(batch_of(atoms_list, positions))["u0_atomization"]["u0_atomization"].detach()


def _rotation_error(model, rotations: int = 3, absolute: bool = False) -> float:
    """Largest relative (or, with ``absolute``, absolute) change of the target under
    ``rotations`` random rotations of a rattled ethanol."""
    if absolute:
        atoms = molecule()
        reference = _predict(model, [atoms])
        return max(float((_predict(model, [turned]) - reference).abs().max())
                   for turned in _rotations_of(atoms, rotations))
    errors = rotation_errors(lambda atoms: {"target": _predict(model, [atoms])}, molecule(),
                             rotations=rotations)
    return errors["target"]


def _rotations_of(atoms, rotations: int):
    from e3nn import o3

    from est_fairchem.testing.structures import rotated

    torch.manual_seed(5)
    return [rotated(atoms, o3.rand_matrix(dtype=torch.float64).numpy()) for _ in range(rotations)]


def test_backbone_layers_are_message_and_update_blocks():
    from est_fairchem.models import ESTBackbone
    from est_fairchem.models.pure_est.message import ESTMessageBlock
    from est_fairchem.nn.est_update import ESTUpdate

    model = _model()
    assert isinstance(model.backbone, ESTBackbone)
    assert len(model.backbone.layers) == 2
    for layer in model.backbone.layers:
        assert isinstance(layer.message, ESTMessageBlock) and isinstance(layer.update, ESTUpdate)
        assert layer.message.num_spherical == 2 and layer.update.num_steerable == 2
    atoms = molecule()
    out = model.backbone(batch_of([atoms]))["node_embedding"]
    assert out.shape == (len(atoms), 16) and torch.isfinite(out).all()
    # one row per atom, its own: permuting the atoms permutes the rows (and nothing else)
    order = np.random.default_rng(0).permutation(len(atoms))
    permuted = model.backbone(batch_of([atoms[order]]))["node_embedding"]
    torch.testing.assert_close(permuted, out[torch.as_tensor(order)], rtol=1e-9, atol=1e-12)
    assert (out[0] - out[1]).abs().max() > 1e-6  # distinct atoms, distinct embeddings


def test_target_invariant_under_rotation(float64):
    """Random weights, eval mode, max over 3 rotations of rattled ethanol. The attention and
    point-wise experts are not band-limited, so a finite grid leaves an error that falls with
    S; measured: Lebedev-26 (the demo's) 1.4e-3, Fibonacci-64 (the QM9 configs', the paper's
    S for L = 2) 2.3e-4; also Lebedev-50 3.6e-4, Lebedev-86 1.2e-4, Lebedev-110 6.6e-5,
    Fibonacci-32 1.3e-3, Fibonacci-100 1.3e-4. Bounds ~10x above the measured values."""
    demo = _rotation_error(_model())
    fibonacci = _rotation_error(_model({"num_points": 64, "sampling": "fibonacci"}))
    print(f"rotation errors: lebedev-26 {demo:.1e}, fibonacci-64 {fibonacci:.1e}")
    assert demo < 1.5e-2
    assert fibonacci < 2.5e-3






def _message_harness(model, atoms):
    """(messages(x, pos), x, pos) for the first message block of ``model`` on ``atoms``."""
    from est_fairchem.models.common.graph import molecular_radius_graph
    from est_fairchem.models.pure_est.embedding import edge_harmonics

    backbone = model.backbone
    block = backbone.layers[0].message
    pos = torch.as_tensor(atoms.positions, dtype=torch.float64)
    batch = torch.zeros(len(atoms), dtype=torch.long)
    z = torch.as_tensor(atoms.numbers)
    torch.manual_seed(0)
    x = torch.randn(len(atoms), 9, 16, dtype=torch.float64)

    def messages(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        src, dst = molecular_radius_graph(pos, batch, 5.0, 500)
        vec = pos[src] - pos[dst]
        radial = backbone.radial_basis(vec.norm(dim=1), z, src, dst)
        return block(x, src, dst, radial, edge_harmonics(2, vec), batch).detach()

    return messages, x, pos


def test_message_block_is_equivariant(float64):
    """m(D x, R r) = D m(x, r) for the message block alone (eval, Lebedev-50): its degree 1 and
    2 outputs rotate with the input. Measured 1.1e-3 (unit-normal random inputs); bound 10x."""
    messages, x, pos = _message_harness(_model({"num_points": 50}), molecule())
    rotation = o3.rand_matrix(dtype=torch.float64)
    expected = rotate_steerable(messages(x, pos), rotation, 2)
    actual = messages(rotate_steerable(x, rotation, 2), pos @ rotation.T)
    error = relative_error(actual[:, 1:], expected[:, 1:])
    print(f"message block equivariance error (l > 0): {error:.1e}")
    assert error < 1e-2


def test_training_mode_rotates_the_grid_but_keeps_the_messages(float64):
    """In training the message block samples on a randomly rotated grid: its degree > 0
    messages change only by the grid's discretisation error (measured 1.5e-3 with Lebedev-50;
    bound ~7x), where a missing back-rotation changes them by 0.4 (measured); and they
    do change, so the rotation is applied."""
    model = _model({"num_points": 50})
    messages, x, pos = _message_harness(model, molecule())
    reference = messages(x, pos)
    model.train()
    torch.manual_seed(3)
    error = relative_error(messages(x, pos)[:, 1:], reference[:, 1:])
    print(f"training-mode (random grid rotation) relative change of messages: {error:.1e}")
    assert 1e-9 < error < 1e-2


def test_est_with_graph_attention_in_the_qm9_layout_is_invariant(float64):
    """EST with Equiformer's graph attention at L = 2 (irreps up to 2e, harmonics 1x0e+1x1e+1x2e),
    the demo's small size, random weights: plain Equiformer is exact (measured 4.7e-16); EST's
    largest change of the target (eV; with Equiformer's radial basis the random-weight target
    is ~1e-3 eV, so changes, not relative errors) measured 2.4e-3 with the demo's Lebedev-26 grid
    and 1.7e-4 with the QM9 configs' Fibonacci-64 (3.4e-4 and 3.2e-5 with the earlier
    per-element basis). Bounds 10x; more points must do better."""
    model = copy.deepcopy(yaml.safe_load(SMALL_GA_MODEL.read_text())["model"])
    model["heads"] = {"u0_atomization": HEAD}
    plain = copy.deepcopy(model)
    plain["backbone"]["model"] = "est_fairchem.models.EquiformerBackbone"
    del plain["backbone"]["est"]
    fibonacci = copy.deepcopy(model)
    fibonacci["backbone"]["est"].update({"num_points": 64, "sampling": "fibonacci"})
    errors = [_rotation_error(build({"model": m}).double().eval(), absolute=True)
              for m in (plain, model, fibonacci)]
    print("EST-with-GA rotation changes (eV): plain {:.1e}, lebedev-26 {:.1e}, fibonacci-64 "
          "{:.1e}".format(*errors))
    assert errors[0] < 1e-12
    assert errors[1] < 2.5e-2
    assert errors[2] < 2e-3 and errors[2] < errors[1]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"message": {"num_spherical_experts": 0}}, "message.num_spherical_experts"),
        ({"message": {"top_k": 2}}, "top_k"),
        ({"est": {"fourier_channels": 8}}, "est.fourier_channels"),
        ({"est": {"num_points": 8}}, "est.num_points"),
    ],
)
def test_invalid_options_fail_naming_the_key(overrides, key):
    with pytest.raises(ESTConfigError, match=key.replace(".", r"\.")):
        build(est_config(overrides.get("est"), overrides.get("message")))


def test_invalid_backbone_values_fail_naming_the_key():
    with pytest.raises(InputError, match="basis_type='cosine'"):
        build(est_config(basis_type="cosine"))
    with pytest.raises(InputError, match="irreps_mlp_mid='12x3q'"):
        build(est_config(irreps_mlp_mid="12x3q"))
    with pytest.raises(InputError, match="regress_forces"):
        build(est_config(regress_forces=True))


class TestESTBackbone(BackboneSuite):
    """The shared backbone tests on the pure EST (the QM9 demo's small model, default grid in
    its update blocks), on molecules without a cell."""

    periodic = False
    radius = 5.0
    rotation_tolerance = 2.5e-3  # the message block's grid (Fibonacci-64: 2.3e-4 measured)
    symmetry_tolerance = 1e-10

    def model_config(self) -> dict:
        return est_config({"grid_frame": "local", "num_points": 64, "sampling": "fibonacci"})
