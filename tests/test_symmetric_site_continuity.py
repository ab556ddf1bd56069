"""The local frame (``est.grid_frame: local``, the default) is continuous at symmetric sites.

At an adsorbate on top of an atom of an ideal slab, or in a perfect crystal, a node's degree-1
features vanish or are all parallel, so its frame is ill defined; there the frame's weight is 0
and the branch runs on the fixed grid (``nn/local_frame.py``). Measure: move the adsorbate (or
strain the crystal) by d in four directions; the spread of E(d) - E(0) over directions falls
like d^2 for a continuous energy at a stationary point, and stays of the order of the grid's
error wherever the limit depends on the direction. Forces must change by O(d).

Measured before the blend (float64, random weights, lmax 4, 16 channels, 6 A, CO on top of an
ideal 3x3x3 Cu(111) slab): spread(1e-6 A) / spread(1e-2 A) = 2.2e-3, force change at 1e-6 A
8.7e-6 eV/A; plain EquiformerV2 1.0e-7 and 1.0e-6 eV/A; figures after it are in the test
docstrings.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from est_fairchem.errors import InputError
from est_fairchem.testing import relative_error
from est_fairchem.testing.structures import graph_batch, made_slab, rotated
from tests.model_utils import build, small_model_config

RADIUS = 6.0
LMAX_4 = {"lmax_list": [4], "mmax_list": [2]}
DISTANCES = (1e-6, 1e-4, 1e-2)
SIDEWAYS = ((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0))


def _model(est: dict | None) -> torch.nn.Module:
    config = small_model_config(est, otf_graph=False, max_radius=RADIUS, **LMAX_4)
    config["model"]["otf_graph"] = False
    return build(config).double().eval()


def _predict(model, atoms) -> tuple[float, torch.Tensor]:
    torch.manual_seed(0)  # EquiformerV2's random edge frames: the same draw every call
    out = model(graph_batch([atoms], RADIUS))
    return float(out["energy"]["energy"].detach()), out["forces"]["forces"].detach()


def co_on_top(size: tuple[int, int, int] = (3, 3, 3)):
    """CO, carbon down, exactly on top of a surface atom of an ideal Cu(111) slab."""
    from ase.build import add_adsorbate, fcc111, molecule

    slab = fcc111("Cu", size=size, vacuum=8.0)
    slab.set_tags(np.where(slab.get_tags() == 1, 1, 0))
    adsorbate = molecule("CO")
    adsorbate.rotate(180, "x")  # ASE's CO has O first at +z: C down
    add_adsorbate(slab, adsorbate, 1.9, "ontop")
    slab.pbc = True
    return slab


def _displacement_spreads(model, atoms, move) -> dict[float, tuple[float, float]]:
    """{d: (spread over directions of E(d) - E(0), max |F(d) - F(0)|)}; ``move(atoms, d, u)``
    returns the structure moved by d along direction u."""
    energy, forces = _predict(model, atoms)
    spreads = {}
    for distance in DISTANCES:
        energies, force_changes = [], []
        for direction in SIDEWAYS:
            energy_d, forces_d = _predict(model, move(atoms, distance, np.array(direction)))
            energies.append(energy_d - energy)
            force_changes.append(float((forces_d - forces).abs().max()))
        spreads[distance] = (max(energies) - min(energies), max(force_changes))
    print({f"{d:g}": f"{e:.1e} eV / {f:.1e} eV/A" for d, (e, f) in spreads.items()})
    return spreads


def _move_adsorbate(atoms, distance: float, direction: np.ndarray):
    out = atoms.copy()
    adsorbate = np.arange(len(out)) >= len(out) - 2
    out.positions[adsorbate] += distance * direction
    return out


def _strain(atoms, distance: float, direction: np.ndarray):
    """Strain of size ``distance`` (atoms carried with the cell): direction (+-1, 0, 0) a
    stretch or compression along x, (0, +-1, 0) a shear in xy."""
    strain = np.zeros((3, 3))
    if direction[0] != 0:
        strain[0, 0] = direction[0] * distance
    else:
        strain[0, 1] = strain[1, 0] = direction[1] * distance / 2
    out = atoms.copy()
    out.set_cell(np.array(atoms.cell) @ (np.eye(3) + strain), scale_atoms=True)
    return out


def _strain_second_differences(model, atoms) -> dict[float, tuple[float, float]]:
    """{d: (max over the two strains of |E(+d) + E(-d) - 2 E(0)|, max |F(d) - F(0)|)}: the
    second difference removes the stress's linear term, so it falls like d^2 where the energy
    is continuous (and stays ~ the jump where its limit depends on the direction)."""
    energy, forces = _predict(model, atoms)
    out = {}
    for distance in DISTANCES:
        predictions = [_predict(model, _strain(atoms, distance, np.array(u))) for u in SIDEWAYS]
        (e_xx, f_xx), (e_xx_minus, f_xx_minus), (e_xy, f_xy), (e_xy_minus, f_xy_minus) = predictions
        second = max(abs(e_xx + e_xx_minus - 2 * energy), abs(e_xy + e_xy_minus - 2 * energy))
        force_change = max(float((f - forces).abs().max()) for _, f in predictions)
        out[distance] = (second, force_change)
    print({f"{d:g}": f"{e:.1e} eV / {f:.1e} eV/A" for d, (e, f) in out.items()})
    return out


def _assert_continuous(spreads: dict[float, tuple[float, float]], force_floor: float = 1e-9) -> None:
    """The energy's spread falls like d^2 (ratio 1e-8 from 1e-2 to 1e-6 A; a jump keeps it
    near 1), the force change like d (ratio 1e-4), down to ``force_floor`` eV/A."""
    energy_small, forces_small = spreads[1e-6]
    energy_large, forces_large = spreads[1e-2]
    assert energy_large > 0  # the motion matters
    assert energy_small <= 1e-5 * energy_large + 1e-13
    assert forces_small <= 1e-3 * forces_large + force_floor


def _briefly_trained(model: torch.nn.Module, steps: int = 30) -> torch.nn.Module:
    """``steps`` Adam steps on EMT energies and forces of made slabs (CO, OH, O on Cu)."""
    from ase.calculators.emt import EMT

    from est_fairchem.data.demo_s2ef import make_slab_with_adsorbate

    rng = np.random.default_rng(0)
    systems = []
    for adsorbate in ("CO", "OH", "O", "CO"):
        atoms = make_slab_with_adsorbate("Cu", adsorbate, rng)
        atoms.positions += rng.normal(0, 0.05, size=atoms.positions.shape)
        atoms.calc = EMT()
        systems.append((atoms, atoms.get_potential_energy(), atoms.get_forces()))
    mean = np.mean([energy for _, energy, _ in systems])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(steps):
        atoms, energy, forces = systems[step % len(systems)]
        out = model(graph_batch([atoms], RADIUS))
        loss = (out["energy"]["energy"].sum() - (energy - mean)) ** 2 + (
            out["forces"]["forces"] - torch.as_tensor(forces)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_frame_weight_is_zero_at_symmetric_sites_and_one_elsewhere(float64):
    """The fallback is chosen by the geometry, not by round-off: on an ideal slab with CO on
    top the CO's nodes get weight 0 in every block; a rattled slab's nodes all get weight 1
    (exact equivariance)."""
    model = _model({})
    weights = {}

    def record(name):
        def hook(module, inputs, output):
            weights[name] = output[1]
        return hook

    for index, block in enumerate(model.backbone.blocks):
        block.update.spherical.frame.register_forward_hook(record(index))
    slab = co_on_top()
    _predict(model, slab)
    carbon, oxygen = len(slab) - 2, len(slab) - 1
    for weight in weights.values():
        assert weight[carbon] == 0 and weight[oxygen] == 0
    _predict(model, made_slab())
    for weight in weights.values():
        assert torch.all(weight == 1)


def test_energy_and_forces_are_continuous_at_an_on_top_site(float64):
    """Measured (spread of E(d) - E(0), largest force change; d = 1e-6, 1e-4, 1e-2 A):
    1.6e-12 / 9.2e-10 / 8.5e-6 eV and 4.6e-7 / 4.6e-5 / 3.8e-3 eV/A (ratio 1.9e-7); the frame
    before the blend 9.4e-9 / 2.6e-8 / 8.5e-6 eV (ratio 1.1e-3) with 8.7e-6 eV/A at 1e-6 A;
    the fixed grid 1.3e-12 eV (ratio 1.6e-7); plain EquiformerV2 1.4e-10 eV (ratio 5.0e-6:
    its float32 Wigner tables break the site's symmetry at first order)."""
    _assert_continuous(_displacement_spreads(_model({}), co_on_top(), _move_adsorbate))


@pytest.mark.slow  # 30 float64 training steps first: not in make test-fast
def test_trained_model_is_continuous_at_an_on_top_site(float64):
    model = _briefly_trained(_model({}))
    _assert_continuous(_displacement_spreads(model, co_on_top(), _move_adsorbate))


def test_perfect_crystal_under_strain_is_continuous(float64):
    """Perfect fcc Cu: every atom is an inversion centre, so no node has degree-1 features and
    the forces vanish at any strain (their floor, ~1e-7 eV/A, is round-off). Measured (second
    difference and force change at d = 1e-6, 1e-4, 1e-2): 6.5e-10 / 4.4e-6 / 1.1e-2 eV and
    1.1e-7 / 1.6e-7 / 1.1e-5 eV/A; the frame before the blend: a spread of E(d) - E(0) of
    8.1e-7 eV at 1e-6 (1.6e-4 of that at 1e-2) and a force change of 2.1e-5 eV/A at every d
    (a jump)."""
    from ase.build import bulk

    crystal = bulk("Cu", "fcc", a=3.61, cubic=True)
    _assert_continuous(_strain_second_differences(_model({}), crystal), force_floor=1e-6)


def test_equivariance_stays_exact_without_symmetry(float64):
    """A rattled slab (no symmetric site): the local frame's whole-model rotation errors stay
    at plain EquiformerV2's floor (fairchem's float32 Wigner tables)."""
    plain, local = _model(None), _model({})
    atoms = made_slab()
    errors = {}
    for name, model in (("plain", plain), ("local", local)):
        energy, forces = _predict(model, atoms)
        rotation = o3.rand_matrix(dtype=torch.float64)
        energy_r, forces_r = _predict(model, rotated(atoms, rotation.numpy()))
        errors[name] = (relative_error(torch.tensor(energy_r), torch.tensor(energy)),
                        relative_error(forces_r, forces @ rotation.T))
    print("rotation errors (energy, forces):", errors)
    assert errors["local"][0] < max(10 * errors["plain"][0], 1e-8)
    assert errors["local"][1] < max(10 * errors["plain"][1], 1e-8)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -1e-3])
def test_frame_threshold_is_checked(threshold):
    from est_fairchem.nn.local_frame import LocalFrame

    with pytest.raises(InputError, match="threshold"):
        LocalFrame(4, threshold=threshold)
