"""The QM9 config tree: every per-target config of both model families loads through fairchem's
own include mechanism (no conflicting duplicates) with the target, metric, normaliser, head and
hyperparameter group it should have."""

from __future__ import annotations

from pathlib import Path

import pytest

from est_fairchem.data.qm9_convert import ATOMREF_TARGETS, TARGETS
from tests.model_utils import REPO

MODELS = {"est": "est_fairchem.models.ESTBackbone",
          "est_ga": "est_fairchem.models.EquiformerESTBackbone"}


def _load(path: Path) -> dict:
    from fairchem.core.common.utils import load_config

    config, _, duplicates_error = load_config(str(path))
    assert not duplicates_error, f"{path}: conflicting includes {duplicates_error}"
    return config


@pytest.mark.parametrize("family", sorted(MODELS))
@pytest.mark.parametrize("target", TARGETS)
def test_per_target_config(family, target):
    config = _load(REPO / "configs/qm9" / family / f"{target}.yml")
    energy = target in ATOMREF_TARGETS
    key = f"{target}_atomization" if energy else target
    assert config["trainer"] == "ocp"
    assert list(config["outputs"]) == [key]
    assert config["outputs"][key]["property"] == key
    assert config["loss_functions"] == [{key: {"fn": "mae", "coefficient": 1}}]
    assert config["evaluation_metrics"]["primary_metric"] == f"{key}_mae"
    head = config["model"]["heads"][key]
    assert head["output_name"] == key
    assert head["module"] == "est_fairchem.models.EquiformerScalarHead"
    assert head["avg_num_nodes"] == pytest.approx(18.03, abs=0.01)
    backbone = config["model"]["backbone"]
    assert backbone["model"] == MODELS[family]
    assert backbone["use_pbc"] is False
    assert backbone["avg_degree"] == pytest.approx(15.58, abs=0.01)
    assert backbone["num_layers"] == 6 and backbone["max_radius"] == 5.0
    normalizer = config["dataset"]["train"].get("transforms", {}).get("normalizer")
    optim = config["optim"]
    if energy:  # Equiformer's U0/U/H/G settings: raw eV, Bessel basis, no dropout
        assert normalizer is None
        radial = (backbone["basis_type"], backbone["number_of_basis"], backbone["alpha_drop"])
        assert radial == ("bessel", 8, 0.0)
        assert (optim["lr_initial"], optim["batch_size"], optim["max_epochs"]) == (1.5e-4, 32, 600)
        assert optim["optimizer_params"]["weight_decay"] == 0.0
    else:  # standardised with the training split's statistics, fitted by fairchem
        assert list(normalizer["fit"]["targets"]) == [key]
        radial = (backbone["basis_type"], backbone["number_of_basis"], backbone["alpha_drop"])
        assert radial == ("gaussian", 128, 0.2)
        assert (optim["lr_initial"], optim["batch_size"], optim["max_epochs"]) == (5e-4, 128, 300)
        assert optim["optimizer_params"]["weight_decay"] == 5e-3
    steps_per_epoch = -(-110_000 // optim["batch_size"])
    assert optim["total_steps"] == optim["max_epochs"] * steps_per_epoch
    assert optim["eval_every"] == steps_per_epoch
    _check_warmup_then_cosine(optim, steps_per_epoch)


def _check_warmup_then_cosine(optim: dict, steps_per_epoch: int) -> None:
    """fairchem's LRScheduler built from the config: 5 warm-up epochs from 1e-6 to the peak
    lr, then down to 1e-6 at the last step (Equiformer's QM9 schedule)."""
    import torch
    from fairchem.core.modules.scheduler import LRScheduler

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=optim["lr_initial"])
    scheduler = LRScheduler(optimizer, optim)
    warmup = 5 * steps_per_epoch
    lrs = {0: scheduler.get_lr()}
    for step in range(1, warmup + 1):
        scheduler.step()
    lrs[warmup] = scheduler.get_lr()
    inner = scheduler.scheduler
    inner.last_epoch = optim["total_steps"] - 2  # jump to the end of the cosine
    scheduler.step()
    lrs["end"] = scheduler.get_lr()
    assert lrs[0] == pytest.approx(1e-6, rel=1e-3)
    assert lrs[warmup] == pytest.approx(optim["lr_initial"], rel=1e-3)
    assert lrs["end"] == pytest.approx(1e-6, rel=1e-2)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_demo_config(family):
    config = _load(REPO / "configs/qm9/demo" / f"{family}_demo.yml")
    assert config["model"]["backbone"]["model"] == MODELS[family]
    assert list(config["outputs"]) == ["u0_atomization"]
    fit = config["dataset"]["train"]["transforms"]["normalizer"]["fit"]
    assert list(fit["targets"]) == ["u0_atomization"]


def test_qm9_demo_reads_the_evaluator_lines_of_a_fairchem_log(tmp_path):
    """`est-fairchem demo --task qm9` takes MAEs from evaluation lines (no step count), not from
    training lines, for metric names with digits (u0_atomization_mae)."""
    from est_fairchem.tools.demo import DEMO_TASKS, _logged_mae

    log = tmp_path / "train.log"
    log.write_text(
        "2026 ocp_trainer.py:194: (INFO): u0_atomization_mae: 8.81e-01, u0_atomization_mse: "
        "1.29e+00, loss: 6.84e-01, lr: 1.99e-03, epoch: 4.76e-01, step: 1.00e+01\n"
        "2026 base_trainer.py:863: (INFO): Evaluating on val.\n"
        "2026 base_trainer.py:905: (INFO): u0_atomization_mae: 0.4454, u0_atomization_mse: "
        "0.3634, loss: 0.3460, epoch: 1.0000\n"
        "2026 base_trainer.py:905: (INFO): u0_atomization_mae: 0.3419, u0_atomization_mse: "
        "0.2341, loss: 0.2656, epoch: 2.0000\n"
    )
    assert DEMO_TASKS["qm9"].primary_metric == "u0_atomization_mae"
    assert _logged_mae(log, "u0_atomization_mae") == [0.4454, 0.3419]
