"""The one module that opens checkpoint files (``est_fairchem.checkpoints``): a load that leaves
keys out names them, and the RNG state a stopped run writes beside its checkpoint round-trips
and is refused by name when it is something else."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from est_fairchem.checkpoints import (
    CheckpointError,
    load_weights,
    read_rng_state,
    write_rng_state,
)


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("table", torch.arange(4.0))


def test_a_load_that_leaves_keys_out_names_each(caplog):
    model, source = _Small(), _Small()
    with torch.no_grad():
        source.linear.weight.fill_(0.5)
    state = {k: v for k, v in source.state_dict().items() if k != "table"}
    state["old.unused"] = torch.zeros(1)
    with caplog.at_level(logging.WARNING):
        load_weights(model, state, "run/checkpoint.pt")
    assert torch.equal(model.linear.weight, source.linear.weight)  # what fits is loaded
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "run/checkpoint.pt: 1 key(s) not in the checkpoint, left as built: table",
        "run/checkpoint.pt: 1 key(s) without a place in the model, ignored: old.unused",
    ]


def test_a_complete_load_says_nothing(caplog):
    model = _Small()
    with caplog.at_level(logging.WARNING):
        load_weights(model, _Small().state_dict(), "best_checkpoint.pt")
    assert caplog.records == []


def test_rng_state_round_trips_without_a_partial_file(tmp_path):
    path = tmp_path / "rng_state.pt"
    states = [{"torch": torch.get_rng_state(), "cuda": None}] * 2
    write_rng_state(path, 7, states)
    saved = read_rng_state(path)
    assert saved["step"] == 7 and torch.equal(saved["states"][1]["torch"], states[1]["torch"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rng_state.pt"]


def test_a_foreign_rng_state_file_is_named(tmp_path):
    text = tmp_path / "rng_state.pt"
    text.write_text("not torch\n")
    with pytest.raises(CheckpointError, match=f"{text}: not an RNG state file \\(torch.load"):
        read_rng_state(text)
    other = tmp_path / "other.pt"
    torch.save({"step": 3}, other)
    with pytest.raises(CheckpointError, match="other.pt: not an RNG state file \\(expected a "
                                              "dict with 'step' and 'states'\\)"):
        read_rng_state(other)


@pytest.mark.parametrize("name", ["s2ef_est_eqv2", "is2re_est_equiformer", "qm9_pure_est"])
def test_checkpoints_with_old_key_names_pass_the_fit_check(name, caplog):
    """The golden checkpoints (written before the update's parts were renamed) load through
    ``load_prediction_weights``, the path of ``check-equivariance --checkpoint``: its fit check
    sees their keys under the current names, and no key is left out."""
    from est_fairchem.tools.checkpoint_loading import load_prediction_weights
    from est_fairchem.tools.model_from_config import build_model, load_config
    from tests.golden.cases import CASES

    case = next(case for case in CASES if case.name == name)
    config = load_config(case.config)
    model = build_model(config)
    caplog.clear()  # the model's INFO line is logged when an earlier test left the root at INFO
    with caplog.at_level(logging.WARNING):
        checkpoint = load_prediction_weights(model, case.checkpoint, config, case.config)
    assert any(".gate.net." in key for key in checkpoint["state_dict"])  # old names
    assert [record.getMessage() for record in caplog.records] == []
    state = model.state_dict()
    for key, value in checkpoint["state_dict"].items():
        new = key.replace(".gate.net.1.", ".gate.hidden.")
        if new in state:
            assert torch.equal(state[new], value)
