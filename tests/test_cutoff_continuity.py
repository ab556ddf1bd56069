"""The pure EST's energy is continuous where a neighbour crosses the cutoff: each message and
each edge of the edge-degree embedding is scaled by a smooth envelope that vanishes at the
cutoff with two derivatives, so E(c - d) - E(c + d) falls like d^3. Without it a message kept
its size up to the cutoff (the key/value grid's LayerNorm removes the radial amplitude) and
the energy jumped by a constant. Measured (float64, random weights, the QM9 demo's small
model): 1.5e-8, 2e-15 and 0 eV at d = 1e-2, 1e-4, 1e-6 Å; without the envelope 8.26e-3,
8.25e-3, 8.25e-3 eV."""

from __future__ import annotations

import numpy as np

from tests.model_utils import build
from tests.test_pure_est import batch_of, est_config, molecule


def _methane_and_hydrogen(distance: float):
    """CH4 and an H atom on the extension of one C-H bond, ``distance`` from that H: only
    that pair is near the cutoff (the C and the other H are farther by at least 1 Å)."""
    from ase import Atoms

    methane = molecule("CH4", seed=0)
    carbon, hydrogen = methane.positions[0], methane.positions[1]
    direction = (hydrogen - carbon) / np.linalg.norm(hydrogen - carbon)
    extra = Atoms("H", positions=[hydrogen + distance * direction])
    return methane + extra


def test_energy_is_continuous_where_a_neighbour_crosses_the_cutoff(float64):
    config = est_config()
    cutoff = float(config["model"]["backbone"]["max_radius"])
    model = build(config).double().eval()

    def energy(distance: float) -> float:
        atoms = _methane_and_hydrogen(distance)
        out = model(batch_of([atoms]))
        return float(next(iter(out.values()))[next(iter(out))].sum())

    jumps = {d: abs(energy(cutoff - d) - energy(cutoff + d)) for d in (1e-2, 1e-4, 1e-6)}
    print("E(c - d) - E(c + d):", {f"{d:g}": f"{v:.2e}" for d, v in jumps.items()})
    assert jumps[1e-2] > 0  # the neighbour matters inside the cutoff
    assert jumps[1e-6] <= 1e-5 * jumps[1e-2] + 1e-13
    assert jumps[1e-4] <= 1e-3 * jumps[1e-2] + 1e-13
