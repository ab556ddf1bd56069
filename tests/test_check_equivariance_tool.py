"""check_equivariance on what a user points it at: every output the config declares (energy and
forces; a QM9 target on a made molecule), absolute errors that agree with the relative ones, the
noise flag off on an ordinary slab, and unreadable or unsuitable structures named."""

from __future__ import annotations

from pathlib import Path

import pytest

from est_fairchem.errors import InputError
from tests.model_utils import REPO, est_fairchem_cli


@pytest.mark.parametrize("config", ["configs/oc20/s2ef/demo/est_eqv2_demo.yml",
                                    "configs/oc20/s2ef/demo/eqv2_demo.yml"])
def test_absolute_and_relative_errors_agree_on_the_made_slab(config):
    from est_fairchem.tools.check_equivariance import check_equivariance

    result = check_equivariance(REPO / config, rotations=2, seed=1)
    energy, forces = result["outputs"]["energy"], result["outputs"]["forces"]
    assert (energy["degree"], forces["degree"]) == (0, 1) and result["unchecked"] == {}
    # One energy per structure: relative error = |E_rot - E| / |E|, so the largest absolute change
    # over the rotations is the largest relative error times |E|.
    assert energy["abs_error_max"] == pytest.approx(energy["error_max"] * abs(energy["value"]),
                                                    rel=1e-9)
    assert 0 < forces["abs_error_max"] < 1e-2 * forces["mean_abs"]
    assert forces["at_noise_level"] is False


def test_molecular_models_get_a_molecule_and_their_own_targets():
    """A QM9 config (no cell, elements H-F, target u0_atomization) is checked on a made
    molecule, on the output its config declares."""
    from est_fairchem.tools.check_equivariance import check_equivariance

    config = REPO / "configs/qm9/demo/est_ga_demo.yml"
    result = check_equivariance(config, rotations=2)
    assert result["structure"] == "made ethanol molecule"
    assert list(result["outputs"]) == ["u0_atomization"]
    target = result["outputs"]["u0_atomization"]
    # random weights put this target near 0 (6e-4 eV), so its change (measured 2.7e-3 eV with
    # the global grid) is the measure, not the relative error
    assert target["degree"] == 0 and 0 < target["abs_error_max"] < 1e-2


def test_structures_outside_the_element_table_are_refused(tmp_path):
    from ase.build import fcc111

    from est_fairchem.tools.check_equivariance import check_equivariance

    slab = tmp_path / "pt.traj"
    fcc111("Pt", (2, 2, 3), vacuum=6.0).write(slab)
    with pytest.raises(InputError, match=r"pt.traj: elements Pt are outside the model's element "
                                         r"table \(max_num_elements: 10"):
        check_equivariance(REPO / "configs/qm9/demo/est_demo.yml", structure=slab, rotations=1)


def test_unreadable_structures_are_named(tmp_path):
    from est_fairchem.tools.check_equivariance import read_structure

    missing = tmp_path / "none.traj"
    with pytest.raises(FileNotFoundError, match=f"structure file not found: {missing}"):
        read_structure(missing)
    garbage = tmp_path / "notes.xyz"
    garbage.write_text("not a structure\n")
    with pytest.raises(InputError, match="notes.xyz: ASE cannot read a structure"):
        read_structure(garbage)
    assert garbage.read_text() == "not a structure\n"  # the user's file is left as it was


def test_progress_line_names_the_structure_and_its_edges():
    from est_fairchem.tools.check_equivariance import check_equivariance

    lines: list[str] = []
    result = check_equivariance(REPO / "configs/oc20/s2ef/demo/eqv2_demo.yml", rotations=1,
                                progress=lines.append)
    assert len(lines) == 1 and f"({result['atoms']} atoms, {result['edges']} edges" in lines[0]
    assert result["edges"] > result["atoms"]


def test_the_graph_uses_the_built_models_own_cutoff(tmp_path):
    """design §14.2: the neighbour list takes the cutoff of the model the config builds, also
    where the config sets none (fairchem's EquiformerV2 default, 5 A), so no other radius
    enters the check."""
    import yaml

    from est_fairchem.tools.check_equivariance import check_equivariance, model_cutoff
    from est_fairchem.tools.model_from_config import build_model, load_config

    config = load_config(REPO / "configs/oc20/s2ef/demo/eqv2_demo.yml")
    assert config["model"]["backbone"].pop("max_radius") != 5.0
    path = tmp_path / "no_cutoff.yml"
    path.write_text(yaml.safe_dump(config))
    assert model_cutoff(build_model(config), path) == 5.0
    lines: list[str] = []
    check_equivariance(path, rotations=1, progress=lines.append)
    assert "every neighbour within 5 A" in lines[0]


def test_declared_outputs_follow_the_config():
    from est_fairchem.tools.check_equivariance import declared_outputs

    outputs = {"energy": {"shape": 1, "level": "system"},
               "forces": {"irrep_dim": 1, "level": "atom"},
               "stress": {"level": "system",
                          "decomposition": {"stress_isotropic": {"irrep_dim": 0}}}}
    checked, unchecked = declared_outputs({"outputs": outputs})
    assert checked == {"energy": 0, "forces": 1}
    assert list(unchecked) == ["stress"] and "not compared" in unchecked["stress"]
    assert declared_outputs({"model": {}}) == ({"energy": 0, "forces": 1}, {})


def test_rotation_count_must_be_positive():
    import subprocess

    from est_fairchem.tools.check_equivariance import check_equivariance

    with pytest.raises(InputError, match="rotations=0: expected at least 1"):
        check_equivariance(REPO / "configs/oc20/s2ef/demo/eqv2_demo.yml", rotations=0)
    result = subprocess.run([*est_fairchem_cli(), "check-equivariance",
                             "configs/oc20/s2ef/demo/eqv2_demo.yml", "--rotations", "0"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "--rotations: 0: expected a positive integer" in result.stderr


def _saved_checkpoint(config_path: Path, path: Path) -> Path:
    """A fairchem-format checkpoint of ``config_path``'s model with its initial weights."""
    import torch

    from est_fairchem.tools.model_from_config import build_model, load_config

    config = load_config(config_path)
    torch.manual_seed(0)
    torch.save({"state_dict": build_model(config).state_dict(), "config": config,
                "normalizers": {}, "elementrefs": {}, "ema": None}, path)
    return path


def test_a_checkpoint_of_another_size_lists_every_mismatched_tensor(tmp_path):
    """The tiny config's checkpoint (1 layer, 8 channels) against the demo config (2 layers,
    16 channels): one error with each tensor's name, checkpoint shape and model shape."""
    from est_fairchem.errors import InputError
    from est_fairchem.tools.check_equivariance import check_equivariance

    checkpoint = _saved_checkpoint(REPO / "configs/oc20/s2ef/demo/est_eqv2_tiny_deterministic.yml",
                                   tmp_path / "tiny.pt")
    with pytest.raises(InputError) as error:
        check_equivariance(REPO / "configs/oc20/s2ef/demo/est_eqv2_demo.yml", checkpoint,
                           rotations=1)
    message = str(error.value)
    assert message.startswith(f"{checkpoint}: its weights do not fit the model of ")
    assert "backbone.sphere_embedding.weight: checkpoint (90, 8), model (90, 16)" in message
    assert message.endswith("\n  ...")  # the first 60 listed
    assert "_extra_state" not in message


def test_the_fit_check_names_missing_and_unexpected_tensors():
    import torch

    from est_fairchem.tools.checkpoint_loading import fit_problems
    from tests.model_utils import build, small_model_config

    model = build(small_model_config())
    weights = dict(model.state_dict())
    del weights["backbone.blocks.1.norm_1.affine_weight"]
    weights["backbone.extra.weight"] = torch.zeros(2, 3)
    assert fit_problems(model, weights) == [
        "  'backbone.extra.weight' (2, 3): no place in the model",
        "  backbone.blocks.1.norm_1.affine_weight (2, 16): not in the checkpoint"]


@pytest.mark.parametrize("kind", ["text", "zip", "list", "torch list", "empty"])
def test_files_that_are_not_checkpoints_are_named(tmp_path, kind):
    import pickle
    import zipfile

    import torch

    from est_fairchem.errors import InputError
    from est_fairchem.tools.check_equivariance import check_equivariance

    path = tmp_path / f"{kind.replace(' ', '_')}.pt"
    if kind == "text":
        path.write_text("epoch 3: loss 0.1\n")
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not a checkpoint")
    elif kind == "list":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    elif kind == "torch list":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(b"")
    with pytest.raises(InputError, match=f"{path}: .*fairchem checkpoint"):
        check_equivariance(REPO / "configs/oc20/s2ef/demo/est_eqv2_demo.yml", path, rotations=1)


def test_the_command_prints_a_foreign_file_as_one_error(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint\n")
    result = subprocess.run([*est_fairchem_cli(), "check-equivariance",
                             "configs/oc20/s2ef/demo/est_eqv2_demo.yml", "--checkpoint",
                             str(path)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert f"{path}: not a fairchem checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_checkpoint_of_other_est_options_is_refused_naming_them(tmp_path):
    """The options a checkpoint was trained with are checked here too (the file is named)."""
    from est_fairchem.errors import InputError
    from est_fairchem.tools.check_equivariance import check_equivariance

    tiny = REPO / "configs/oc20/s2ef/demo/est_eqv2_tiny_deterministic.yml"
    checkpoint = _saved_checkpoint(tiny, tmp_path / "tiny.pt")
    changed = tmp_path / "changed.yml"
    changed.write_text(f"includes:\n  - {tiny}\nmodel:\n  backbone:\n    est:\n"
                       "      num_points: 24\n")
    with pytest.raises(InputError, match=f"{checkpoint}: the checkpoint was trained with other "
                                         r"options .*est.num_points: trained 16, configured 24"):
        check_equivariance(changed, checkpoint, rotations=1)
