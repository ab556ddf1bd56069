"""A new user's mistakes through the real commands: one line naming the file, key or value
(exit 2 for `est-fairchem`, fairchem's InputError as the last line for `fairchem`), never a
bare traceback of sqlite3, torch, yaml or a __del__; and the warm-start route of the
own-data guide through a WarmStartHydraModel config."""

from __future__ import annotations

import subprocess

import pytest
import torch

from tests.model_utils import REPO, build, est_fairchem_cli, small_model_config

DEMO_EST = REPO / "configs/oc20/s2ef/demo/est_eqv2_demo.yml"
FINETUNE = REPO / "configs/ase_db/demo/est_eqv2_finetune_oxides.yml"


def _est_fairchem(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*est_fairchem_cli(), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO)


def _one_line_error(result: subprocess.CompletedProcess, command: str) -> str:
    """The single stderr line of a refused `est-fairchem COMMAND` (exit 2, no traceback)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"est-fairchem {command}: "), result.stderr
    return last


@pytest.fixture(scope="module")
def eqv2_checkpoint(tmp_path_factory):
    """A fairchem checkpoint of the demo's small EquiformerV2 (the size of the EST configs)."""
    config = small_model_config()
    model = build(config, seed=1)
    path = tmp_path_factory.mktemp("eqv2") / "eqv2.pt"
    torch.save({"state_dict": model.state_dict(),
                "config": {"model": {**config["model"], "name": "hydra"}}}, path)
    return path


def _config_with_est(tmp_path, est: str):
    path = tmp_path / "est.yml"
    includes = "\n".join(f"  - {REPO / 'configs/oc20/s2ef' / name}" for name in
                         ("base/task.yml", "demo/optim.yml", "demo/dataset.yml",
                          "demo/eqv2_small.yml"))
    path.write_text(f"includes:\n{includes}\nmodel:\n  backbone:\n"
                    f"    model: est_fairchem.models.EquiformerV2ESTBackbone\n    est: {est}\n")
    return path


def test_warm_start_from_an_est_checkpoint_says_it_already_is_one(eqv2_checkpoint, tmp_path):
    first = tmp_path / "est.pt"
    made = _est_fairchem("warm-start", "--from", eqv2_checkpoint, "--config", DEMO_EST,
                         "--out", first)
    assert made.returncode == 0, made.stderr
    result = _est_fairchem("warm-start", "--from", first, "--config", DEMO_EST, "--out",
                           tmp_path / "again.pt")
    last = _one_line_error(result, "warm-start")
    assert f"--from {first}: already an EST checkpoint" in last
    assert "expected an EquiformerV2 one" in last and not (tmp_path / "again.pt").exists()


def test_warm_start_into_an_est_block_without_steerable_experts_says_to_add_one(
        eqv2_checkpoint, tmp_path):
    result = _est_fairchem("warm-start", "--from", eqv2_checkpoint, "--config",
                           _config_with_est(tmp_path, "{}"), "--out", tmp_path / "est.pt")
    last = _one_line_error(result, "warm-start")
    assert "no steerable expert" in last
    # the demo model's feed-forward width, read from the checkpoint
    assert "add est: {num_steerable_experts: 1, steerable_hidden_channels: 16}" in last


def test_the_valid_est_keys_of_a_typo_include_preset(tmp_path):
    result = _est_fairchem("count-params", _config_with_est(tmp_path, "{presett: paper}"))
    last = _one_line_error(result, "count-params")
    assert "unknown EST option(s) ['presett']" in last
    assert "valid options: ['preset', 'num_points'" in last


def test_warm_start_with_the_guides_warm_start_config_and_its_train_route(eqv2_checkpoint,
                                                                          tmp_path):
    """`est-fairchem warm-start --config est_eqv2_finetune_oxides.yml` (a WarmStartHydraModel
    config) writes the file; the printed route, model.warm_start.checkpoint=FILE, builds the
    model with exactly the weights the EquiformerV2 file gives through the config key."""
    from est_fairchem.tools.model_from_config import build_model, load_config

    out = tmp_path / "est.pt"
    result = _est_fairchem("warm-start", "--from", eqv2_checkpoint, "--config", FINETUNE,
                           "--out", out)
    assert result.returncode == 0, result.stderr
    route = f"--model.warm_start.checkpoint={out}"
    assert result.stdout.strip().splitlines()[-1].endswith(route)
    assert torch.load(out, weights_only=False)["config"]["model"]["name"] == "hydra"

    config = load_config(FINETUNE)
    config["model"]["warm_start"]["checkpoint"] = str(out)
    from_file = build_model(config).state_dict()
    config["model"]["warm_start"]["checkpoint"] = str(eqv2_checkpoint)
    torch.manual_seed(0)  # the command's --seed: the EST-only weights a warm start keeps
    from_eqv2 = build_model(config).state_dict()
    learned = [k for k, v in from_eqv2.items()
               if isinstance(v, torch.Tensor) and v.is_floating_point() and ".update." in k]
    assert learned and from_file.keys() == from_eqv2.keys()
    for key, value in from_eqv2.items():  # tensors, and the EST options (torch extra state)
        same = (torch.equal(from_file[key], value) if isinstance(value, torch.Tensor)
                else from_file[key] == value)
        assert same, key


def test_a_database_given_as_the_config_is_named(tmp_path):
    from ase.build import bulk
    from ase.db import connect

    db = tmp_path / "structures.db"
    with connect(db) as handle:
        handle.write(bulk("Cu"))
    result = _est_fairchem("check-equivariance", db)
    last = _one_line_error(result, "check-equivariance")
    assert last.endswith(f"{db}: not a YAML config (binary data: an ASE database or a "
                         "checkpoint?); expected a fairchem YAML config file")


def test_a_database_as_the_structure_gives_its_first_row(tmp_path):
    from ase.build import bulk
    from ase.db import connect

    db = tmp_path / "structures.db"
    with connect(db) as handle:
        handle.write(bulk("Cu", cubic=True))  # 4 atoms, row 1
        handle.write(bulk("Cu"))  # 1 atom, row 2
    result = _est_fairchem("check-equivariance", DEMO_EST, "--structure", db,
                           "--rotations", "1")
    assert result.returncode == 0, result.stderr
    assert f"structure:  {db} (4 atoms," in result.stdout


@pytest.fixture(scope="module")
def bulk_data(tmp_path_factory):
    from est_fairchem.data.demo_bulk import BulkSizes, make_bulk_demo

    out = tmp_path_factory.mktemp("bulk") / "bulk"
    make_bulk_demo(out, seed=0, sizes=BulkSizes(train=4, val=2, test=2))
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("bad", ["text file named .db", "missing file"])
def test_fairchem_train_on_a_bad_database_ends_with_the_line_naming_it(bulk_data, tmp_path,
                                                                      bad):
    """fairchem's traceback cannot be avoided, but its last line is the check's, naming the
    file: not sqlite3's "file is not a database" (no path) nor the AttributeError of the
    dataset's __del__ after a correct message."""
    from est_fairchem.tools.fairchem_runs import fairchem_executable

    path = tmp_path / "train.db"
    if bad == "text file named .db":
        path.write_text("energy forces\n1.0 0.0\n")
        expected = (f"{path}: not an ASE database (sqlite3: file is not a database); expected "
                    "an ASE .db (SQLite) or .aselmdb file written with ase.db.connect")
    else:
        expected = f"{path}: no such file or folder (a dataset src)"
    result = subprocess.run(
        [fairchem_executable(), "--mode", "train", "--config-yml",
         str(REPO / "configs/ase_db/demo/est_eqv2_stress.yml"), "--cpu",
         "--run-dir", str(tmp_path / "run"), f"--dataset.train.src={path}",
         f"--dataset.val.src={bulk_data / 'val.db'}",
         f"--dataset.test.src={bulk_data / 'test.db'}"],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "AttributeError" not in output and "sqlite3.DatabaseError" not in output
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith(f"est_fairchem.errors.InputError: {expected}"), last


def test_a_users_mistake_is_exit_2_and_a_bug_keeps_its_traceback(monkeypatch, tmp_path,
                                                                  capsys):
    """Only InputError (and missing files) become one line: a ValueError from inside the
    package is a bug, and the command lets its traceback through."""
    from est_fairchem import cli
    from est_fairchem.tools import model_from_config

    assert cli.main(["count-params", str(_config_with_est(tmp_path, "{presett: paper}"))]) == 2
    assert "unknown EST option(s) ['presett']" in capsys.readouterr().err

    def a_bug(config):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(model_from_config, "build_model", a_bug)
    with pytest.raises(ValueError, match="an internal inconsistency"):
        cli.main(["count-params", str(DEMO_EST)])
