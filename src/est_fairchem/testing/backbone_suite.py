"""The tests every backbone must pass, written once: subclass :class:`BackboneSuite` with a
config and pytest runs them for that backbone.

    class TestMyBackbone(BackboneSuite):
        def model_config(self) -> dict:
            return {"model": {...}}          # a fairchem hydra model section

The suite builds the model as fairchem does (seeded), on made structures (a rattled Cu(111)
slab with CO for periodic models, rattled ethanol for molecular ones: no symmetry hides an
error), and checks, in float64 and eval mode unless said otherwise:

- forward in float32 and float64: finite outputs of the declared shapes;
- a batch of two systems predicts what each system predicts alone;
- rotation of the structure (and its cell): invariant outputs unchanged, vector outputs
  (``vector_outputs``, e.g. forces) rotated, within the class's tolerance of each output;
- translation and permutation of the atoms;
- an unknown ``est`` option is refused when the model is built, naming the key;
- in a training step every backbone parameter gets a finite, nonzero gradient;
- on CUDA (when present) the outputs equal the CPU's.

Tolerances are class attributes: the floors differ by backbone (fairchem's EquiformerV2 uses
float32 Wigner tables and random edge frames; a global grid has its discretisation error).
Imports pytest: this module is for test suites.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
import torch

from est_fairchem.testing.equivariance import default_dtype, relative_error, rotation_errors
from est_fairchem.testing.structures import graph_batch, made_molecule, made_slab


def model_outputs(model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
    """A hydra model's outputs by name: ``{output: tensor}`` from ``{head: {output: tensor}}``."""
    out = {}
    for head, value in model(batch).items():
        out.update(value if isinstance(value, dict) else {head: value})
    return out


class BackboneSuite:
    """Shared backbone tests; subclasses supply :meth:`model_config` (see the module doc)."""

    periodic: bool = True
    """Periodic slabs (True) or molecules without a cell (False)."""
    radius: float = 6.0
    """Cutoff of the float64 graphs the batches bring (the config's ``max_radius``)."""
    vector_outputs: tuple[str, ...] = ()
    """Outputs that rotate as vectors (per atom); every other output must be invariant."""
    rotation_tolerance: float = 1e-6
    """Largest relative change of an output under a rotation (rotated for vectors)."""
    rotation_tolerances: dict[str, float] = {}
    """Per-output rotation tolerances (e.g. ``{"energy": 2e-6, "forces": 1e-3}``): an invariant
    and a derivative have different floors; outputs not named here use ``rotation_tolerance``."""
    symmetry_tolerance: float = 1e-7
    """Largest relative change under translation and permutation, and batching."""

    def model_config(self) -> dict:
        raise NotImplementedError("a BackboneSuite subclass returns its fairchem model config")

    # -- helpers a subclass may reuse -------------------------------------------------------

    def build(self, config: dict | None = None, dtype: torch.dtype = torch.float64,
              seed: int = 0) -> torch.nn.Module:
        from est_fairchem.tools.model_from_config import build_model

        torch.manual_seed(seed)
        with default_dtype(dtype):
            return build_model(config or self.model_config()).to(dtype).eval()

    def structures(self, count: int = 1) -> list:
        make = made_slab if self.periodic else made_molecule
        return [make(seed=3 + i) for i in range(count)]

    def batch(self, atoms_list: list, dtype: torch.dtype = torch.float64):
        return graph_batch(atoms_list, self.radius, dtype)

    def predict(self, model: torch.nn.Module, atoms_list: list,
                dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
        with default_dtype(dtype):
            outputs = model_outputs(model, self.batch(atoms_list, dtype))
        return {k: v.detach() for k, v in outputs.items()}

    def predictor(self, model: torch.nn.Module) -> Callable[[object], dict[str, torch.Tensor]]:
        return lambda atoms: self.predict(model, [atoms])

    def rotation_errors(self, model: torch.nn.Module, rotations: int = 3) -> dict[str, float]:
        """Largest relative change of each output of ``model`` under ``rotations`` seeded
        random rotations of the suite's first structure (vector outputs rotated)."""
        (atoms,) = self.structures(1)
        return rotation_errors(self.predictor(model), atoms, vectors=self.vector_outputs,
                               rotations=rotations)

    def assert_rotation_equivariant(self, model: torch.nn.Module,
                                    rotations: int = 3) -> dict[str, float]:
        """:meth:`rotation_errors` of ``model``, each within its output's tolerance."""
        errors = self.rotation_errors(model, rotations)
        assert errors, "no output compared"
        for name, error in errors.items():
            tolerance = self.rotation_tolerances.get(name, self.rotation_tolerance)
            assert error < tolerance, f"{name}: relative error {error:.2e} >= {tolerance:.0e}"
        return errors

    # -- the tests ---------------------------------------------------------------------------

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
    def test_forward_gives_finite_outputs_of_the_declared_shapes(self, dtype):
        atoms_list = self.structures(2)
        outputs = self.predict(self.build(dtype=dtype), atoms_list, dtype)
        natoms = sum(len(atoms) for atoms in atoms_list)
        assert outputs, "the model returned no output"
        for name, value in outputs.items():
            assert value.dtype == dtype, name
            assert torch.isfinite(value).all(), name
            expected = (natoms, 3) if name in self.vector_outputs else (len(atoms_list),)
            assert tuple(value.shape) == expected, f"{name}: {tuple(value.shape)}"

    def test_a_batch_predicts_what_each_system_predicts_alone(self):
        model = self.build()
        first, second = self.structures(2)
        together = self.predict(model, [first, second])
        alone = [self.predict(model, [first]), self.predict(model, [second])]
        for name, value in together.items():
            expected = torch.cat([alone[0][name], alone[1][name]])
            assert relative_error(value, expected) < self.symmetry_tolerance, name

    def test_rotating_the_structure_rotates_vectors_and_keeps_invariants(self):
        self.assert_rotation_equivariant(self.build())

    def test_translation_and_permutation_change_nothing(self):
        model = self.build()
        (atoms,) = self.structures(1)
        reference = self.predict(model, [atoms])
        shifted = atoms.copy()
        shifted.positions += np.array([0.7, -1.3, 0.4])
        order = np.random.default_rng(0).permutation(len(atoms))
        for moved, index in ((shifted, None), (atoms[order], order)):
            for name, value in self.predict(model, [moved]).items():
                expected = reference[name]
                if index is not None and name in self.vector_outputs:
                    expected = expected[torch.as_tensor(index)]
                assert relative_error(value, expected) < self.symmetry_tolerance, name

    def test_an_unknown_est_option_is_refused_naming_it(self):
        from est_fairchem.models.common.est_config import ESTConfigError

        config = copy.deepcopy(self.model_config())
        backbone = config["model"]["backbone"]
        if "est" not in backbone:
            pytest.skip("a backbone without EST options")
        backbone["est"] = {**(backbone["est"] or {}), "num_pionts": 36}
        with pytest.raises(ESTConfigError, match="num_pionts"):
            self.build(config)

    def test_every_backbone_parameter_gets_a_gradient(self):
        model = self.build().train()
        with default_dtype(torch.float64):
            outputs = model_outputs(model, self.batch(self.structures(2)))
            sum(value.pow(2).sum() for value in outputs.values()).backward()
        backbone = [(n, p) for n, p in model.named_parameters() if n.startswith("backbone.")]
        assert backbone
        idle = [n for n, p in backbone if p.grad is None or not bool(p.grad.abs().max() > 0)]
        assert idle == [], f"{len(idle)} of {len(backbone)} parameters without gradient: {idle}"
        assert all(torch.isfinite(p.grad).all() for _, p in backbone)

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    def test_cuda_predicts_what_the_cpu_predicts(self):
        atoms_list = self.structures(2)
        cpu = self.predict(self.build(), atoms_list)
        model = self.build().cuda()
        with default_dtype(torch.float64):
            outputs = model_outputs(model, self.batch(atoms_list).to("cuda"))
        gpu = {k: v.detach().cpu() for k, v in outputs.items()}
        for name, value in cpu.items():
            assert relative_error(gpu[name], value) < 1e-6, name
