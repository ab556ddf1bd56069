"""Stress with the EST-EquiformerV2 backbone and fairchem's rank-2 symmetric head (the OMat24
layout, ``configs/ase_db/demo/est_eqv2_stress.yml``): the predicted stress rotates as
R s R^T with the structure and its cell."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from est_fairchem.testing.equivariance import default_dtype, rotation_errors
from est_fairchem.testing.structures import graph_batch
from tests.model_utils import REPO, build

STRESS_CONFIG = REPO / "configs/ase_db/demo/est_eqv2_stress.yml"


def stress_model_config(**est) -> dict:
    """The model section of the stress demo config, graphs given (float64 checks)."""
    from fairchem.core.common.utils import load_config

    config, _, _ = load_config(str(STRESS_CONFIG))
    model = copy.deepcopy(config["model"])
    model["otf_graph"] = model["backbone"]["otf_graph"] = False
    model["backbone"]["est"] = est
    return {"model": model}


def stress_from_parts(isotropic: torch.Tensor, anisotropic: torch.Tensor) -> torch.Tensor:
    """[B, 1] isotropic and [B, 5] anisotropic parts -> [B, 3, 3] stress, as fairchem's
    trainer puts them together (its change-of-basis matrix for rank 2)."""
    from fairchem.core.common.utils import cg_change_mat

    irreps = torch.zeros(isotropic.shape[0], 9, dtype=isotropic.dtype)
    irreps[:, :1], irreps[:, 4:] = isotropic, anisotropic
    return (irreps @ cg_change_mat(2).to(irreps.dtype)).view(-1, 3, 3)


def _bulk(seed: int = 1):
    from est_fairchem.data.demo_bulk import strained_bulk

    atoms = strained_bulk("Cu", np.random.default_rng(seed), repeat=(2, 1, 1))
    atoms.calc = None
    return atoms


def _predict(model, radius: float):
    def predict(atoms) -> dict[str, torch.Tensor]:
        out = model(graph_batch([atoms], radius))
        stress = stress_from_parts(out["stress_isotropic"], out["stress_anisotropic"])
        return {"energy": out["energy"].detach(), "stress": stress.detach()}

    return predict


def _stress_errors(config: dict) -> tuple[dict, dict]:
    """Rotation errors with the stress compared as R s R^T, and compared unrotated."""
    with default_dtype(torch.float64):
        model = build(config).double().eval()
        radius = float(config["model"]["backbone"]["max_radius"])
        errors = rotation_errors(_predict(model, radius), _bulk(), tensors=("stress",))
        unrotated = rotation_errors(_predict(model, radius), _bulk())
    return errors, unrotated


@pytest.mark.parametrize("est", [{}, {"grid_frame": "global", "num_points": 36}],
                         ids=["default", "global_grid"])
def test_stress_rotates_as_a_rank_two_tensor(est):
    """Measured (float64, eval, random weights, max over 3 rotations of a strained Cu bulk):
    relative stress error 5.7e-6 (default) and 9.5e-6 (global grid), energy 9e-7 (the floor
    of fairchem's float32 Wigner tables in the backbone); bounds ~10x. A stress compared
    unrotated (s against R s R^T) is off by 1.7, so a head or basis that does not rotate the
    stress fails."""
    errors, unrotated = _stress_errors(stress_model_config(**est))
    print(errors, unrotated)
    assert errors["stress"] < 1e-4 and errors["energy"] < 1e-5
    assert unrotated["stress"] > 1e-1


def test_fairchem_rank2_head_is_only_approximately_equivariant():
    """Why the configs use EquivariantRank2Head: fairchem's own head, with the same weights
    layout, misses R s R^T by several percent (measured 4.6e-2; its MLPs act on degree-2
    components), and its weights load into the equivariant head unchanged."""
    config = stress_model_config()
    config["model"]["heads"]["stress"]["module"] = "rank2_symmetric_head"
    errors, _ = _stress_errors(config)
    print(errors)
    assert errors["stress"] > 1e-3
    fairchem_head = build(config).output_heads["stress"]
    equivariant = build(stress_model_config()).output_heads["stress"]
    equivariant.load_state_dict(fairchem_head.state_dict(), strict=True)


def test_stress_is_symmetric():
    with default_dtype(torch.float64):
        config = stress_model_config()
        model = build(config).double().eval()
        stress = _predict(model, float(config["model"]["backbone"]["max_radius"]))(_bulk())["stress"]
    assert torch.allclose(stress, stress.transpose(1, 2), atol=1e-12)
    assert stress.abs().max() > 0


def test_warm_start_from_an_omat24_layout_checkpoint_keeps_energy_and_forces():
    """An EquiformerV2 hydra model with fairchem's OMat24 heads (energy, forces, rank-2
    stress) warm-starts the EST stress config: energies and forces as the checkpoint's, the
    stress head's weights copied (the equivariant head then computes its own stress from
    them: fairchem's head is not equivariant)."""
    from est_fairchem.models.equiformer_v2.warm_start import warm_start

    with default_dtype(torch.float64):
        plain = stress_model_config()
        plain["model"]["backbone"]["model"] = "equiformer_v2_backbone"
        plain["model"]["backbone"].pop("est")
        plain["model"]["heads"]["stress"]["module"] = "rank2_symmetric_head"
        eqv2 = build(plain, seed=1).double().eval()
        with torch.no_grad():
            for parameter in eqv2.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        est = build(stress_model_config(num_steerable_experts=1, steerable_hidden_channels=16),
                    seed=2).double().eval()
        warm_start(est, eqv2.state_dict())
        radius = float(plain["model"]["backbone"]["max_radius"])
        batch = graph_batch([_bulk()], radius)
        torch.manual_seed(5)  # EquiformerV2's random edge-frame rolls
        expected = eqv2(batch)
        torch.manual_seed(5)
        got = est(batch)
    for key in ("energy", "forces"):
        assert torch.allclose(got[key], expected[key], rtol=1e-10, atol=1e-12), key
    for name, value in eqv2.output_heads["stress"].state_dict().items():
        assert torch.equal(est.output_heads["stress"].state_dict()[name], value), name


def test_an_omat24_31M_model_warm_starts_the_est_finetune_config():
    """fairchem's OMat24 EquiformerV2-31M layout (configs/ase_db/omat24/model_eqv2_31M.yml,
    heads included) fits configs/ase_db/omat24/est_eqv2_31M_finetune.yml tensor for tensor."""
    from fairchem.core.common.utils import load_config

    from est_fairchem.models.equiformer_v2.warm_start import warm_start

    folder = REPO / "configs/ase_db/omat24"
    plain, _, _ = load_config(str(folder / "model_eqv2_31M.yml"))
    est, _, _ = load_config(str(folder / "est_eqv2_31M_finetune.yml"))
    est_model = copy.deepcopy(est["model"])
    est_model["name"] = "hydra"  # the warm start applied by hand, without a checkpoint file
    est_model.pop("warm_start")
    omat = build({"model": plain["model"]})
    model = build({"model": est_model}, seed=1)
    warm_start(model, omat.state_dict())
    assert 30e6 < sum(p.numel() for p in omat.parameters()) < 32e6
    head = model.output_heads["stress"]
    assert type(head).__name__ == "EquivariantRank2Head"
    assert torch.equal(head.block.irrep2_MLP[0].weight,
                       omat.output_heads["stress"].block.irrep2_MLP[0].weight)
