"""Warm start of EST-EquiformerV2 from EquiformerV2 weights: same predictions at step 0."""

from __future__ import annotations

import copy
import subprocess

import pytest
import torch

from est_fairchem.models.equiformer_v2.warm_start import WarmStartError, warm_start
from est_fairchem.testing.structures import graph_batch, made_slab
from tests.model_utils import build, est_fairchem_cli, small_model_config

RADIUS = 5.0
EST = {"num_points": 36, "num_steerable_experts": 3, "num_spherical_experts": 2,
       "spherical_hidden_channels": 16, "steerable_hidden_channels": 16, "grid_frame": "global"}


def _config(est: dict | None = None, **overrides) -> dict:
    config = small_model_config(est, otf_graph=False, max_radius=RADIUS, **overrides)
    config["model"]["otf_graph"] = False
    return config


def _trained_like_eqv2(seed: int = 1, **overrides) -> torch.nn.Module:
    """A plain EquiformerV2 whose weights are moved off their initialisation."""
    model = build(_config(**overrides), seed=seed).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _outputs(model, batch, seed: int = 5) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)  # EquiformerV2 draws a random roll angle for each edge frame
    out = model(batch)
    return {k: (v[k] if isinstance(v, dict) else v).detach() for k, v in out.items()}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


@pytest.fixture
def batch(float64):
    return graph_batch([made_slab(3), made_slab(4)], RADIUS)


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("experts", [(1, 2), (3, 2), (2, 0)])
def test_warm_started_est_predicts_as_the_equiformer_v2_it_came_from(batch, mode, experts):
    eqv2 = _trained_like_eqv2()
    est_options = dict(EST, num_steerable_experts=experts[0], num_spherical_experts=experts[1])
    est = build(_config(est_options), seed=2).double()
    before = _outputs(getattr(est, mode)(), batch)
    warm_start(est, eqv2.state_dict())
    expected = _outputs(getattr(eqv2, mode)(), batch)
    got = _outputs(getattr(est, mode)(), batch)
    for key in ("energy", "forces"):
        assert _relative(expected[key], got[key]) < 1e-12, key
        assert _relative(expected[key], before[key]) > 1e-3, "the EST model was not changed"


def test_stored_graph_statistics_are_not_weights_and_a_change_is_logged(batch, caplog):
    """The baseline's checkpoint keeps its graph statistics (torch extra state): the warm
    start copies the weights, keeps the EST model's own statistics and logs the change."""
    eqv2 = _trained_like_eqv2(avg_degree=28.6)
    state = eqv2.state_dict()
    assert state["backbone._extra_state"]["graph_statistics"]["avg_degree"] == 28.6
    est = build(_config(dict(EST), avg_degree=23.4), seed=2).double()
    with caplog.at_level("WARNING"):
        warm_start(est, state)
    assert est.backbone.graph_statistics["avg_degree"] == 23.4
    assert ("the checkpoint was trained with model.backbone.avg_degree=28.6, the EST config "
            "uses 23.4" in caplog.text)
    same = build(_config(dict(EST), avg_degree=28.6), seed=2).double()
    caplog.clear()
    warm_start(same, state)
    assert "trained with" not in caplog.text
    expected, got = _outputs(eqv2.eval(), batch), _outputs(same.eval(), batch)
    assert _relative(expected["energy"], got["energy"]) < 1e-12


def test_experts_differ_and_the_spherical_branch_learns(batch):
    """Zero-sum symmetry breaking: experts differ; EST-only weights receive gradients."""
    est = build(_config(EST), seed=2).double()
    warm_start(est, _trained_like_eqv2().state_dict(), symmetry_breaking=0.01)
    update = est.backbone.blocks[0].update
    weights = [e.ffn.so3_linear_2.weight for e in update.steerable_experts]
    assert not torch.equal(weights[0], weights[1])
    est.train()(batch)["energy"]["energy"].sum().backward()
    for param in (update.spherical.spherical_experts.down.weight,
                  update.spherical.scalar_branch.linear.weight, update.gate.output.weight):
        assert param.grad is not None and float(param.grad.abs().max()) > 0


def test_mismatched_sizes_list_the_tensors(float64):
    est = build(_config(EST), seed=2)
    deeper = _trained_like_eqv2(num_layers=3)
    with pytest.raises(WarmStartError) as err:
        warm_start(est, deeper.state_dict())
    assert "backbone.blocks.2.ga" in str(err.value) and "no place in the EST model" in str(err.value)
    wider = _trained_like_eqv2(ffn_hidden_channels=32)
    with pytest.raises(WarmStartError) as err:
        warm_start(est, wider.state_dict())
    assert "steerable_experts.0.ffn.so3_linear_1.weight" in str(err.value)
    assert "(3, 32, 16)" in str(err.value)


def test_heads_the_est_model_lacks_are_left_out(batch, caplog):
    """An OMat24 / MPtrj checkpoint's stress head when the new data have no stress: left out
    and logged; energies and forces still predict as the checkpoint's."""
    eqv2 = _trained_like_eqv2()
    state = dict(eqv2.state_dict())
    state["output_heads.stress.block.scalar_MLP.0.weight"] = torch.zeros(16, 16)
    est = build(_config(EST), seed=2).double().eval()
    with caplog.at_level("INFO"):
        warm_start(est, state)
    assert "heads ['stress'] are not in the EST model" in caplog.text
    expected, got = _outputs(eqv2.eval(), batch), _outputs(est, batch)
    assert _relative(expected["energy"], got["energy"]) < 1e-12
    state["backbone.blocks.0.extra.weight"] = torch.zeros(1)  # the backbone must still fit
    with pytest.raises(WarmStartError, match="backbone.blocks.0.extra.weight"):
        warm_start(build(_config(EST), seed=2).double(), state)


def test_pre_hydra_checkpoint_layout(batch):
    """fairchem's published OC20 checkpoints are the deprecated single-module equiformer_v2."""
    from est_fairchem.tools.model_from_config import build_model

    options = copy.deepcopy(_config()["model"]["backbone"])
    options.pop("model")
    torch.manual_seed(1)
    legacy = build_model({"model": {"name": "equiformer_v2", **options}}).double()
    with torch.no_grad():
        for p in legacy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {f"module.{k}": v for k, v in legacy.state_dict().items()}  # as DDP saved it
    est = build(_config(EST), seed=2).double()
    warm_start(est, state)
    expected = _outputs(legacy.eval(), batch)
    got = _outputs(est.eval(), batch)
    for key in ("energy", "forces"):
        assert _relative(expected[key].reshape(got[key].shape), got[key]) < 1e-12, key


def test_config_key_warm_start_and_ema_weights(tmp_path, batch):
    """`model.name: WarmStartHydraModel` + `warm_start.checkpoint`; EMA weights are the ones used."""
    from est_fairchem.tools.model_from_config import build_model

    eqv2 = _trained_like_eqv2()
    names = [n for n, _ in eqv2.named_parameters()]
    raw = {k: v + 0.1 if k in names else v for k, v in eqv2.state_dict().items()}  # not EMA
    checkpoint = {
        "state_dict": {f"module.{k}": v.float() if isinstance(v, torch.Tensor) else v
                       for k, v in raw.items()},  # with the stored graph statistics
        "config": _config(),
        "ema": {"decay": 0.999, "num_updates": None, "collected_params": [],
                "shadow_params": [eqv2.state_dict()[n].float() for n in names]},
    }
    checkpoint["config"]["model"]["name"] = "hydra"
    path = tmp_path / "eqv2.pt"
    torch.save(checkpoint, path)
    config = _config(EST)
    config["model"]["name"] = "est_fairchem.models.WarmStartHydraModel"
    config["model"]["warm_start"] = {"checkpoint": str(path)}
    est = build_model(config).double().eval()
    expected = _outputs(eqv2.float().double().eval(), batch)
    got = _outputs(est, batch)
    for key in ("energy", "forces"):
        assert _relative(expected[key], got[key]) < 1e-12, key

    config["model"]["warm_start"] = {"checkpoint": str(path), "symetry_breaking": 0.1}
    with pytest.raises(WarmStartError, match="symetry_breaking"):
        build_model(config)


def test_cli_refuses_to_overwrite_and_names_mismatches(tmp_path):
    eqv2 = _trained_like_eqv2(num_layers=3).float()
    path = tmp_path / "eqv2.pt"
    torch.save({"state_dict": eqv2.state_dict(), "config": {"model": {"name": "hydra"}}}, path)
    out = tmp_path / "est.pt"
    out.write_text("a file the user made")
    command = [*est_fairchem_cli(), "warm-start", "--from", str(path),
               "--config", "configs/oc20/s2ef/demo/est_eqv2_demo.yml", "--out", str(out)]
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert out.read_text() == "a file the user made"
    mismatch = subprocess.run([*command, "--overwrite"], capture_output=True, text=True)
    assert mismatch.returncode == 2
    assert "backbone.blocks.2.ga" in mismatch.stderr
    assert out.read_text() == "a file the user made"
