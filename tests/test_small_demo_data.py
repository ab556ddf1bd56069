"""The demo configs on demo sets of any size `make-demo-data` accepts: their LR schedules build
and step through every step of a run of 1 to 50 steps per epoch (as fairchem's trainers build
them), they validate and checkpoint at each epoch's end, and through the real `fairchem`
command a 20-frame and a 100-frame set train and write checkpoints, with no per-batch
"LMDB does not contain edge index information" warning (every config building graphs on the
fly says so to fairchem's collater); `est-fairchem demo` runs on a small set.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.model_utils import REPO


DEMO_CONFIG = REPO / "configs/oc20/s2ef/demo/est_eqv2_demo.yml"


def _full_configs() -> list[Path]:
    """The configs one trains with: every one includes its parts and has a model (the parts
    that include others, such as an optim file or a comparison's dataset config, do not)."""
    return sorted(path for path in REPO.glob("configs/**/*.yml")
                  if "includes:" in path.read_text() and _has_model(path))


def _has_model(path: Path) -> bool:
    from fairchem.core.common.utils import load_config as fairchem_load_config

    return "name" in fairchem_load_config(str(path))[0].get("model", {})


DEMO_CONFIGS = [str(path.relative_to(REPO)) for path in _full_configs()
                if path.parent.name == "demo"]
EDGE_WARNING = "LMDB does not contain edge index information"


def _config(relative: str) -> dict:
    from est_fairchem.tools.model_from_config import load_config

    return load_config(REPO / relative)


def _learning_rates(config: dict, steps_per_epoch: int) -> list[float]:
    """The LR of every step of a run, from the scheduler that the config's trainer builds
    (its own ``load_extras``, on a stand-in with ``steps_per_epoch`` batches)."""
    import torch
    from fairchem.core.common.registry import registry
    from fairchem.core.common.utils import setup_imports

    setup_imports()
    trainer_class = registry.get_trainer_class(config["trainer"])
    optim = copy.deepcopy(config["optim"])
    model = torch.nn.Linear(1, 1)
    stand_in = SimpleNamespace(
        config={"optim": optim}, train_loader=[None] * steps_per_epoch, model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=optim["lr_initial"]))
    trainer_class.load_extras(stand_in)
    rates = []
    for _ in range(optim["max_epochs"] * steps_per_epoch):  # fairchem: one scheduler step per step
        rates.append(stand_in.scheduler.get_lr())
        stand_in.optimizer.step()
        stand_in.scheduler.step()
    return rates


def test_every_demo_config_is_covered():
    assert "configs/oc20/s2ef/demo/est_eqv2_tiny_deterministic.yml" in DEMO_CONFIGS
    assert {"configs/qm9/demo/est_demo.yml", "configs/oc20/is2re/demo/est_equiformer_demo.yml",
            "configs/oc20/s2ef/demo/est_eqv2_demo_warm_start.yml"} <= set(DEMO_CONFIGS)


@pytest.mark.parametrize("relative", DEMO_CONFIGS)
def test_schedule_runs_at_every_set_size_and_each_epoch_is_validated(relative):
    """1 to 50 steps per epoch (1 to 200 training samples at batch 4), the config's epochs and
    one epoch: the scheduler builds (fairchem's cosine lambda divided by zero under 10 steps
    per epoch) and every LR is positive and finite. No eval_every / checkpoint_every: fairchem
    then validates and writes checkpoint.pt at the end of each epoch, whatever its length."""
    config = _config(relative)
    assert "eval_every" not in config["optim"] and "checkpoint_every" not in config["optim"]
    for epochs in sorted({config["optim"]["max_epochs"], 1}):
        config["optim"]["max_epochs"] = epochs
        for steps_per_epoch in range(1, 51):
            rates = _learning_rates(config, steps_per_epoch)
            assert all(0 < lr < math.inf for lr in rates), (epochs, steps_per_epoch)


def test_default_s2ef_schedule_follows_the_previous_one():
    """At the default set (48 steps per epoch, 5 epochs) the OneCycleLR schedule is the old
    cosine LambdaLR (warm-up 0.1 epoch = 4 steps from 0.2 x lr, cosine to 0.05 x lr): the same
    peak at step 4, within 9 % of the peak during the warm-up (a cosine ramp, not a linear
    one) and within 2 % over the 235 steps after it."""
    from fairchem.core.models.equiformer_v2.trainers.lr_scheduler import CosineLRLambda

    config = _config("configs/oc20/s2ef/demo/est_eqv2_demo.yml")
    rates = _learning_rates(config, 48)
    peak = config["optim"]["lr_initial"]
    previous = CosineLRLambda({"warmup_epochs": 4, "warmup_factor": 0.2, "epochs": 240,
                               "lr_min_factor": 0.05})
    assert len(rates) == 240
    assert rates[0] == pytest.approx(0.2 * peak)
    assert max(rates) == pytest.approx(peak, rel=1e-3)
    assert rates[-1] == pytest.approx(0.05 * peak, rel=0.05)
    differences = [abs(lr - peak * previous(step)) / peak for step, lr in enumerate(rates)]
    assert rates[4] == pytest.approx(peak, rel=1e-3)
    assert max(differences[:5]) < 0.09 and max(differences[5:]) < 0.02








def test_demo_reuses_a_set_of_any_size_and_refuses_another_task_or_seed(tmp_path):
    """`est-fairchem demo --data D`: D's demo data of this task and seed are reused whatever
    their size; split folders without metadata.json are used as found; other demo data are
    refused naming metadata.json and what to pass."""
    from est_fairchem.errors import InputError
    from est_fairchem.tools.demo import DEMO_TASKS, ensure_demo_data

    s2ef, is2re, qm9 = DEMO_TASKS["s2ef"], DEMO_TASKS["is2re"], DEMO_TASKS["qm9"]
    (tmp_path / "metadata.json").write_text('{"task": "is2rs", "seed": 3, "train_systems": 2}')
    assert ensure_demo_data(tmp_path, 3, is2re) == "reused"
    with pytest.raises(InputError, match="holds demo data of seed 3, not 0; pass --seed 3"):
        ensure_demo_data(tmp_path, 0, is2re)
    with pytest.raises(InputError, match="holds is2rs demo data, not s2ef"):
        ensure_demo_data(tmp_path, 3, s2ef)
    for split in qm9.splits:
        (tmp_path / "found" / "lmdb" / split).mkdir(parents=True)
    assert ensure_demo_data(tmp_path / "found", 0, qm9) == "found"


def test_qm9_demo_sets_the_cosine_to_the_run_on_any_set():
    """The QM9 demo config counts CosineAnnealingLR's T_max in steps (fairchem's `ocp`
    trainer): the demo sets it to max_epochs x steps per epoch of the set it trains on."""
    from est_fairchem.tools.demo import cosine_steps_override

    qm9 = REPO / "configs/qm9/demo/est_demo.yml"
    assert _config("configs/qm9/demo/est_demo.yml")["optim"]["T_max"] == 210
    assert cosine_steps_override(qm9, 166) == ["--optim.T_max=210"]  # the default set
    assert cosine_steps_override(qm9, 17) == ["--optim.T_max=30"]  # 3 batches of 8
    assert cosine_steps_override(DEMO_CONFIG, 20) == []  # OneCycleLR scales by itself


def test_configs_with_graphs_on_the_fly_keep_fairchems_collater_quiet(caplog):
    """Every config whose backbone builds its graph (otf_graph) says so to fairchem's batch
    collater too (`model.otf_graph`), which then does not warn about a missing edge index."""
    import logging

    from ase.build import fcc111
    from fairchem.core.datasets import data_list_collater
    from fairchem.core.preprocessing import AtomsToGraphs

    samples = [AtomsToGraphs(r_edges=False, r_energy=False, r_forces=False).convert(
        fcc111("Cu", (2, 2, 3), vacuum=7.0)) for _ in range(2)]
    checked = 0
    for path in _full_configs():
        model = _config(str(path.relative_to(REPO)))["model"]
        if not model.get("backbone", {}).get("otf_graph"):
            continue
        checked += 1
        assert model.get("otf_graph") is True, path
        with caplog.at_level(logging.WARNING):
            data_list_collater(samples, otf_graph=model["otf_graph"])
        assert EDGE_WARNING not in caplog.text, path
    assert checked >= 20
