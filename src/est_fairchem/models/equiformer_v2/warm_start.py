"""Warm start an EST-EquiformerV2 model from EquiformerV2 weights, predictions unchanged.

Mapping (EST key <- EquiformerV2 key), everything else copied under the same name:

    blocks.i.update.steerable_experts.j.norm.*  <- blocks.i.norm_2.*   (every expert j)
    blocks.i.update.steerable_experts.j.ffn.*   <- blocks.i.ffn.*

EST-only parameters keep their initialisation except three, set so that the EST update equals
the feed-forward block it replaces:

* the gate's output layer (``gate.output``) is zero, so the gate is uniform:
  ``g_k = 1 / (n_st + n_sp)``;
* the spherical experts' output layer (``spherical.spherical_experts.down`` and its bias) and
  the invariant (l=0) branch's linear layer (``spherical.scalar_branch.linear``) are zero, so
  the spherical branch outputs zero (and still receives gradients);
* each steerable expert's output layer (``so3_linear_2``, linear in its weights) is scaled by
  ``(n_st + n_sp) / n_st``, so the gated sum of the n_st identical experts is the FFN.

Identical experts would stay identical under gradient descent (same gate logit, same
gradient), so a zero-sum perturbation is added to the experts' output weights:
``W_j = c W + eps * std(W) * (Z_j - mean_k Z_k)``. The experts then differ, yet their mean, and
so the model's prediction, is unchanged (to float rounding).

Heads of the checkpoint that the EST model does not have (an OMat24 / MPtrj stress head when
the new data has no stress) are left out, and logged; a head of the EST model must find its
weights. Both fairchem checkpoint layouts are read: hydra (``backbone.*``, ``output_heads.<head>.*``)
and the deprecated single-module ``equiformer_v2`` of fairchem's published OC20 checkpoints
(``blocks.*``, ``energy_block.*``, ``force_block.*``).

Stored options (torch's ``_extra_state``) are not weights: the EST model keeps its own. The
graph statistics a checkpoint of the package's ``EquiformerV2Backbone`` stores are compared
with the EST config's, and a difference is logged, naming both (a warm start may move to other
data on purpose; the weights were trained for the stored scaling).
"""

from __future__ import annotations

import logging
import re

import torch
from torch import nn

from est_fairchem.checkpoints import strip_module_prefix
from est_fairchem.errors import InputError

_EXPERT = re.compile(
    r"^backbone\.blocks\.(?P<block>\d+)\.update\.steerable_experts\.\d+\.(?P<part>norm|ffn)\.(?P<rest>.+)$"
)
_HEAD = re.compile(r"^output_heads\.[^.]+\.(?P<rest>(?:energy_block|force_block)\..+)$")
# EquiformerV2's fixed buffers (SO(3) index maps, grid matrices, radial offsets): rebuilt from
# the config, so they are compared but never the reason a warm start fails to be listed first.
_TABLE = re.compile(
    r"(?:^|\.)(?:SO3_grid|SO3_rotation|mapping|mappingReduced)\.|expand_index$|"
    r"balance_degree_weight$|distance_expansion\.offset$"
)


class WarmStartError(InputError):
    """The EquiformerV2 weights do not fit the EST model (the message lists the tensors)."""


def is_hydra_layout(state: dict[str, torch.Tensor]) -> bool:
    return any(key.startswith("backbone.") for key in state)


def source_key(est_key: str, hydra_layout: bool) -> str:
    """The EquiformerV2 key an EST hydra-model key is copied from."""
    match = _EXPERT.match(est_key)
    if match:
        part = "norm_2" if match["part"] == "norm" else "ffn"
        est_key = f"backbone.blocks.{match['block']}.{part}.{match['rest']}"
    if hydra_layout:
        return est_key
    head = _HEAD.match(est_key)
    if head:
        return head["rest"]
    return est_key.removeprefix("backbone.")


def is_est_only(est_key: str) -> bool:
    """Parameters of the EST update with no EquiformerV2 counterpart."""
    return ".update." in est_key and not _EXPERT.match(est_key)


def est_weight_key(state: dict[str, object]) -> str | None:
    """A key of ``state`` that only an EST model has (an EST update block's), or None."""
    return next((key for key in strip_module_prefix(state)
                 if ".update." in key and (is_est_only(key) or _EXPERT.match(key))), None)


def check_is_eqv2_state(state: dict[str, object]) -> None:
    """Raise ``WarmStartError`` when ``state`` already holds an EST model's weights (EST
    update blocks): a warm start converts EquiformerV2 weights, there is nothing to convert."""
    est_key = est_weight_key(state)
    if est_key is not None:
        raise WarmStartError(
            f"already an EST checkpoint (it holds EST update weights such as '{est_key}'), "
            "expected an EquiformerV2 one: train from an EST checkpoint with fairchem's "
            "--checkpoint, or finetune_config.starting_checkpoint for new heads")


def feed_forward_width(eqv2_state: dict[str, object]) -> int | None:
    """The hidden width of the checkpoint's feed-forward blocks (``ffn_hidden_channels``)."""
    for key, value in strip_module_prefix(eqv2_state).items():
        if key.endswith("ffn.so3_linear_1.bias") and isinstance(value, torch.Tensor):
            return int(value.shape[0])
    return None


def check_has_steerable_experts(model: nn.Module, eqv2_state: dict[str, object]) -> None:
    """Raise ``WarmStartError`` when an EST update block of ``model`` has no steerable expert:
    the checkpoint's feed-forward weights go into the steerable experts."""
    from est_fairchem.nn.est_update import ESTUpdate

    if any(m.num_steerable == 0 for m in model.modules() if isinstance(m, ESTUpdate)):
        width = feed_forward_width(eqv2_state)
        raise WarmStartError(
            "the EST config has no steerable expert (est.num_steerable_experts is 0), and the "
            "warm start puts the checkpoint's feed-forward weights into steerable experts: add "
            f"est: {{num_steerable_experts: 1, steerable_hidden_channels: {width or 'F'}}}"
            + ("" if width else " (F: the checkpoint's ffn_hidden_channels)"))


def _is_stored_options(key: str) -> bool:
    return key == "_extra_state" or key.endswith("._extra_state")


def _log_graph_statistics_change(model: nn.Module, source: dict[str, object]) -> None:
    """Log each graph statistic the checkpoint's backbone stored with another value than the
    EST model's backbone uses."""
    from est_fairchem.models.common.graph_statistics import statistic_differences

    stored = source.get("backbone._extra_state", source.get("_extra_state"))
    configured = getattr(getattr(model, "backbone", model), "graph_statistics", {})
    for key, (trained, new) in statistic_differences(stored, configured, "backbone.").items():
        logging.warning(f"warm start: the checkpoint was trained with {key}={trained:g}, the "
                        f"EST config uses {new:g}; the messages' scaling changes with it")


def copy_eqv2_weights(model: nn.Module, eqv2_state: dict[str, torch.Tensor]) -> None:
    """Load every tensor of ``eqv2_state`` into its EST counterpart (see the module docstring).

    Raises:
        WarmStartError: listing the EST tensors whose source is missing or of another shape,
            and the EquiformerV2 tensors that have no place in the EST model.
    """
    source = strip_module_prefix(eqv2_state)
    hydra_layout = is_hydra_layout(source)
    _log_graph_statistics_change(model, source)
    source = {key: value for key, value in source.items() if not _is_stored_options(key)}
    parameters = {name for name, _ in model.named_parameters()}
    target = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    problems: list[str] = []
    for key, value in target.items():
        if is_est_only(key) or _is_stored_options(key):
            continue
        src = source_key(key, hydra_layout)
        if src not in source:
            if key in parameters:  # buffers (fixed SO(3) tables) may be rebuilt, not stored
                problems.append(f"  {key} {tuple(value.shape)}: no '{src}' in the checkpoint")
            continue
        used.add(src)
        found = source[src]
        if not isinstance(found, torch.Tensor) or found.shape != value.shape:
            what = (tuple(found.shape) if isinstance(found, torch.Tensor)
                    else f"(a {type(found).__name__})")
            problems.append(f"  {key} {tuple(value.shape)} <- '{src}' {what}")
            continue
        loaded[key] = source[src]
    unused = sorted(set(source) - used)
    heads = {key.split(".")[1] for key in target if key.startswith("output_heads.")}
    left_out = sorted({key.split(".")[1] for key in unused if key.startswith("output_heads.")
                       and key.split(".")[1] not in heads})
    if left_out:  # e.g. an OMat24 stress head when fine-tuning on data without stress
        logging.info(f"warm start: the checkpoint's heads {left_out} are not in the EST "
                     "model and are left out")
        unused = [key for key in unused if not (key.startswith("output_heads.")
                                                and key.split(".")[1] in left_out)]
    tables = [key for key in unused if _TABLE.search(key)]
    problems += [
        f"  '{key}' {tuple(source[key].shape)}: no place in the EST model"
        for key in unused if not _TABLE.search(key)
    ]
    if problems:
        shown = problems[:60] + (["  ..."] if len(problems) > 60 else [])
        if tables:
            shown.append(f"  (and {len(tables)} fixed SO(3) tables without a place)")
        raise WarmStartError(
            f"the EquiformerV2 weights do not match the EST config ({len(problems)} learned "
            "tensors):\n" + "\n".join(shown)
        )
    model.load_state_dict(loaded, strict=False)


@torch.no_grad()
def start_as_feed_forward(model: nn.Module, symmetry_breaking: float, generator: torch.Generator) -> int:
    """Set every EST update block of ``model`` to equal its steerable experts' mean FFN.

    Returns the number of EST update blocks changed.
    """
    from est_fairchem.nn.est_update import ESTUpdate

    updates = [m for m in model.modules() if isinstance(m, ESTUpdate)]
    for update in updates:
        num_experts = update.num_steerable + update.num_spherical
        update.gate.output.weight.zero_()
        update.gate.output.bias.zero_()
        if update.spherical is not None:
            update.spherical.spherical_experts.down.weight.zero_()
            update.spherical.spherical_experts.down_bias.zero_()
            update.spherical.scalar_branch.linear.weight.zero_()
            update.spherical.scalar_branch.linear.bias.zero_()
        _scale_and_perturb_outputs(
            [expert.ffn.so3_linear_2 for expert in update.steerable_experts],
            num_experts / update.num_steerable, symmetry_breaking, generator,
        )
    return len(updates)


def _scale_and_perturb_outputs(
    layers: list[nn.Module], scale: float, symmetry_breaking: float, generator: torch.Generator
) -> None:
    weight = layers[0].weight
    noise = torch.randn((len(layers), *weight.shape), generator=generator, dtype=torch.float64)
    noise = (noise - noise.mean(dim=0)) * symmetry_breaking * float(weight.std())
    if len(layers) == 1:
        noise.zero_()
    for layer, delta in zip(layers, noise):
        layer.weight.mul_(scale).add_(delta.to(weight.dtype))
        layer.bias.mul_(scale)


def warm_start(
    model: nn.Module, eqv2_state: dict[str, torch.Tensor], symmetry_breaking: float = 0.01,
    seed: int = 0,
) -> None:
    """Copy EquiformerV2 weights into the EST hydra ``model`` so it predicts as EquiformerV2.

    Args:
        model: an EST-EquiformerV2 hydra model of the same size as the EquiformerV2 one.
        eqv2_state: the EquiformerV2 model's state dict (either checkpoint layout).
        symmetry_breaking: relative size of the zero-sum perturbation of the experts.
        seed: seed of that perturbation.
    """
    if symmetry_breaking < 0:
        raise WarmStartError(f"symmetry_breaking={symmetry_breaking}: expected >= 0")
    check_is_eqv2_state(eqv2_state)
    check_has_steerable_experts(model, eqv2_state)
    copy_eqv2_weights(model, eqv2_state)
    generator = torch.Generator().manual_seed(seed)
    if start_as_feed_forward(model, symmetry_breaking, generator) == 0:
        raise WarmStartError("the model has no EST update blocks: is it an EST config?")
