"""Activation checkpointing (``backbone.activation_checkpointing``, on in every QM9 config) on
the pure EST: each layer runs again in backward, and the loss and every parameter gradient are
those of the stored forward, random grid rotations included."""

from __future__ import annotations

import torch

from tests.model_utils import build, seeded_gradients
from tests.test_pure_est import batch_of, est_config, molecule

TARGET = "u0_atomization"


def _model(checkpointing: bool) -> torch.nn.Module:
    """The QM9 demo's small pure EST, float64, training mode, random grid rotations on."""
    config = est_config({"random_grid_rotation": True}, activation_checkpointing=checkpointing)
    return build(config, seed=0).double().train()


def _layer_calls(model: torch.nn.Module) -> list[int]:
    """A counter of the first layer's forward calls (a list of one int, updated in place)."""
    calls = [0]
    model.backbone.layers[0].register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_checkpointing_gives_the_stored_forwards_loss_and_gradients(float64):
    stored, recomputed = _model(False), _model(True)
    assert recomputed.backbone.activation_checkpointing
    assert not stored.backbone.activation_checkpointing
    recomputed.load_state_dict(stored.state_dict())
    batch = batch_of([molecule("CH3CH2OH", seed=1), molecule("CH3CHO", seed=2)])
    targets = torch.tensor([-1.5, 0.5], dtype=torch.float64)
    losses = {}

    def loss(name: str):
        def of(model: torch.nn.Module) -> torch.Tensor:
            prediction = model(batch)[TARGET][TARGET].reshape(-1)
            losses[name] = (prediction - targets).square().mean()
            return losses[name]
        return of

    calls = {"stored": _layer_calls(stored), "recomputed": _layer_calls(recomputed)}
    gradients = {"stored": seeded_gradients(stored, loss("stored"), seed=7),
                 "recomputed": seeded_gradients(recomputed, loss("recomputed"), seed=7)}
    # the checkpointed layer ran again in backward; the stored one ran once
    assert calls == {"stored": [1], "recomputed": [2]}
    assert torch.equal(losses["recomputed"].detach(), losses["stored"].detach())
    assert float(losses["stored"]) > 0
    names = {n for n, p in stored.named_parameters() if n.startswith("backbone.")}
    assert gradients["stored"].keys() == gradients["recomputed"].keys()
    assert names <= gradients["stored"].keys()  # every backbone parameter got a gradient
    for name, grad in gradients["stored"].items():
        assert grad.abs().max() > 0 or not name.startswith("backbone."), name
        torch.testing.assert_close(gradients["recomputed"][name], grad, rtol=1e-10,
                                   atol=1e-13, msg=name)


def test_without_grad_or_in_eval_the_layers_run_once(float64):
    """Checkpointing only applies to a training step: evaluation runs each layer once."""
    model = _model(True).eval()
    calls = _layer_calls(model)
    batch = batch_of([molecule("CH3CH2OH", seed=1)])
    with torch.no_grad():
        model(batch)
    assert calls == [1]
