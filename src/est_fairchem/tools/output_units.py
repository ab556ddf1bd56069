"""Model outputs in physical units, as ``fairchem --mode predict`` writes them.

fairchem trains on normalised targets and predicts ``normalizer(output)`` (``x * rmsd +
mean``) plus, where the run had them, linear element references (the sum of per-element
values over the system's atoms) for each output. The normalizers and references come from
the config's ``dataset.train.transforms`` (``normalizer``, ``element_references``) and are
replaced, target by target, by those the checkpoint stores (``normalizers``,
``elementrefs``; old keys ``target`` / ``grad_target`` mean energy / forces). Values to be
fitted on the training set (``fit:``) without a checkpoint holding them are not applied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

_LEGACY_TARGETS = {"target": "energy", "grad_target": "forces"}


@dataclass
class OutputTransforms:
    """fairchem's ``Normalizer`` and ``LinearReferences`` modules by output name."""

    normalizers: dict[str, torch.nn.Module] = field(default_factory=dict)
    elementrefs: dict[str, torch.nn.Module] = field(default_factory=dict)

    def applied(self, key: str) -> list[str]:
        """What :meth:`physical` applies to output ``key`` (``["normalizer", ...]``)."""
        steps = []
        if key in self.normalizers:
            steps.append("normalizer")
        if key in self.elementrefs:
            steps.append("element references")
        return steps

    def physical(self, key: str, value: torch.Tensor, batch) -> torch.Tensor:
        """Output ``key`` of the batch ``batch`` ([B, k] per system or [N, k] per atom, as
        fairchem reshapes it) in physical units."""
        if key in self.normalizers:
            value = self.normalizers[key].to(value.dtype)(value)
        if key in self.elementrefs:
            value = self.elementrefs[key](value, batch)
        return value


def _train_transforms(config: dict) -> dict:
    """``transforms`` of the training set, where fairchem's trainer reads them."""
    dataset = config.get("dataset") or {}
    if isinstance(dataset, list):
        dataset = dataset[0] if dataset else {}
    else:
        dataset = dataset.get("train") or {}
    return copy.deepcopy(dataset.get("transforms") or {})


def _without_fit(options: dict | None) -> dict:
    return {key: value for key, value in (options or {}).items() if key != "fit"}


def output_transforms(config: dict, checkpoint: dict | None = None) -> OutputTransforms:
    """The transforms ``fairchem --mode predict`` applies with ``config`` and ``checkpoint``."""
    from fairchem.core.modules.normalization.element_references import (
        create_element_references,
        load_references_from_config,
    )
    from fairchem.core.modules.normalization.normalizer import (
        create_normalizer,
        load_normalizers_from_config,
    )

    transforms = _train_transforms(config)
    references = _without_fit(transforms.get("element_references"))
    normalizers = _without_fit(transforms.get("normalizer"))
    loaded = OutputTransforms(
        normalizers=load_normalizers_from_config(normalizers, dataset=None)
        if normalizers else {},
        elementrefs=load_references_from_config(references, dataset=None) if references else {},
    )
    checkpoint = checkpoint or {}
    for key, state in (checkpoint.get("normalizers") or {}).items():
        loaded.normalizers[_LEGACY_TARGETS.get(key, key)] = create_normalizer(state_dict=state)
    for key, state in (checkpoint.get("elementrefs") or {}).items():
        loaded.elementrefs[key] = create_element_references(state_dict=state)
    return loaded
