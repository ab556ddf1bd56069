"""Normalizer values written into a config (not fitted, not read from a file) checked against
the training data before training.

fairchem's normalizer trains on ``(y - mean) / stdev`` per target
(``dataset.train.transforms.normalizer``). Values copied from another config (a demo's OC20
numbers) on other data train a model whose targets are many times off their intended scale,
and fairchem says nothing: values given beside a ``fit:`` of the same target even replace the
fit, with a warning about values "read from a file". So each target whose ``mean`` and
``stdev`` (or ``rmsd``) are numbers in the config is compared with a sample of the training
targets (up to :data:`SAMPLES` structures, spread over the dataset): when the normalised
targets' root mean square is above :data:`FACTOR` (a mean or spread the data do not have) or
below 1 / :data:`SHRINK` (a spread far wider than the data's; small sets legitimately give
a third), the run is refused naming both. Targets with element references are not checked (the normalizer then sees the
referenced values).

The check runs on the train split only (val and test inherit its ``transforms`` and may
differ from it on purpose), and only when the split has at least :data:`MIN_STRUCTURES`
structures (fewer say little about the spread).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from est_fairchem.errors import InputError

SAMPLES = 64
FACTOR = 4.0
SHRINK = 10.0
MIN_STRUCTURES = 16


def fairchem_split() -> str | None:
    """The split fairchem's ``create_dataset`` is building (``"train"``, ``"val"``, ...), read
    from its frame; None when a dataset is built otherwise (a tool, a test)."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "create_dataset" and "split" in frame.f_locals:
            split = frame.f_locals["split"]
            return split if isinstance(split, str) else None
        frame = frame.f_back
    return None


def written_normalizers(transforms: Any) -> dict[str, tuple[float, float]]:
    """``{target: (mean, stdev)}`` of the normalizer values written as numbers in
    ``transforms`` (a dataset config's ``transforms``), targets with element references
    left out."""
    if not isinstance(transforms, Mapping):
        return {}
    normalizer = transforms.get("normalizer")
    if not isinstance(normalizer, Mapping):
        return {}
    references = transforms.get("element_references") or {}
    referenced = set(references) | set((references.get("fit") or {}).get("targets") or ())
    out = {}
    for target, values in normalizer.items():
        if target in ("fit", "file") or not isinstance(values, Mapping):
            continue
        if target in referenced or "file" in references:
            continue
        mean, stdev = values.get("mean"), values.get("rmsd", values.get("stdev"))
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (mean, stdev)):
            out[target] = (float(mean), float(stdev))
    return out


def target_sample(dataset: Any, target: str, samples: int = SAMPLES) -> np.ndarray | None:
    """Every value of ``target`` in up to ``samples`` structures of ``dataset`` spread over it,
    flattened; None when the structures do not carry it."""
    count = len(dataset)
    values = []
    for index in sorted({int(i) for i in np.linspace(0, count - 1, min(samples, count))}):
        value = getattr(dataset[index], target, None)
        if value is None:
            return None
        values.append(np.asarray(value, dtype=float).reshape(-1))
    return np.concatenate(values) if values else None


def check_written_normalizers(dataset: Any, transforms: Any, source: str) -> None:
    """Raise :class:`InputError` naming ``source`` (the dataset's files), the target, the
    configured and the data's mean and stdev when a written normalizer does not fit the data
    (see the module docstring); only for the train split
    (or a dataset built outside fairchem's trainer) of :data:`MIN_STRUCTURES` or more."""
    if fairchem_split() not in (None, "train") or len(dataset) < MIN_STRUCTURES:
        return
    for target, (mean, stdev) in written_normalizers(transforms).items():
        values = target_sample(dataset, target)
        if values is None or values.size == 0:
            continue
        scale = math.sqrt(float(np.mean(((values - mean) / stdev) ** 2))) if stdev else math.inf
        if 1 / SHRINK <= scale <= FACTOR:
            continue
        raise InputError(
            f"{source}: the normalizer of {target} in the config (mean {mean:g}, stdev "
            f"{stdev:g}) does not fit the training data (mean {values.mean():.4g}, stdev "
            f"{values.std():.4g} over {values.size} values): the normalised {target} would be "
            f"{scale:.3g} times its intended scale. Fit it on the data (dataset.train.transforms"
            f".normalizer: {{fit: {{targets: {{{target}: {{}}}}}}}}, and remove the written "
            "values: they replace a fit) or write the data's values")
