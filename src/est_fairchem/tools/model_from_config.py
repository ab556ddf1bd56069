"""Build a model from a fairchem YAML config the way fairchem's trainer does."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from est_fairchem.errors import InputError, require_file


def load_config(path: str | Path) -> dict:
    """Load a fairchem config with its ``includes:`` resolved (fairchem's own loader)."""
    from fairchem.core.common.utils import load_config as fairchem_load_config

    import yaml

    path = require_file(path, "config file")
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a YAML config (binary data: an ASE database or a "
                         "checkpoint?); expected a fairchem YAML config file") from None
    try:
        config, _, errors = fairchem_load_config(str(path))
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise InputError(f"{path}: not a YAML config ({reason})") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a fairchem YAML config (a mapping of sections)")
    if errors:
        raise InputError(f"{path}: conflicting keys in included configs: {errors}")
    if "model" not in config or "name" not in config["model"]:
        raise InputError(f"{path}: expected a 'model:' section with a 'name:' key")
    return config


def dotted_overrides(args: list[str]) -> dict:
    """``["--dataset.train.src=my.db", ...]`` (fairchem's command-line form) as a nested dict,
    each value read as fairchem reads it (a Python literal, else the string). Split at the
    first ``=`` only, so a value may hold one (``--dataset.train.select_args.selection=metal=Pt``,
    which fairchem's own parser refuses)."""
    import ast

    from est_fairchem.errors import InputError

    nested: dict = {}
    for arg in args:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep or not key or "" in key.split("."):
            raise InputError(f"{arg!r}: expected --key.path=value (fairchem's override form)")
        *parents, last = key.split(".")
        section = nested
        for name in parents:
            section = section.setdefault(name, {})
            if not isinstance(section, dict):
                raise InputError(f"{arg!r}: {name} was given a value and a sub-key")
        try:
            section[last] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            section[last] = value
    return nested


def build_model(config: dict) -> nn.Module:
    """Instantiate ``config['model']`` through fairchem's registry (dotted paths work)."""
    from fairchem.core.common.registry import registry
    from fairchem.core.common.utils import setup_imports

    setup_imports()
    model_config = copy.deepcopy(config["model"])
    name = model_config.pop("name")
    return registry.get_model_class(name)(**model_config)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameter counts: total, and per top-level child (backbone, heads, ...)."""
    counts = {"total": sum(p.numel() for p in model.parameters())}
    for name, child in model.named_children():
        counts[name] = sum(p.numel() for p in child.parameters())
    return counts
