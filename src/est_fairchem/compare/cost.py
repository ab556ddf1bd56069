"""The cost of a training step, measured once, in isolation, for every model of a study.

One process, one thread, the models alternating (the order rotates each repeat, so a slow
moment of the machine is shared out): each repeat times ``steps`` training steps (collate a
batch of the training data, forward, backward, AdamW step) after ``warmup`` untimed ones.
Per model: the median seconds per step over the repeats and its interquartile range, the
parameters, and the floating-point operations of one step per structure counted by
``torch.utils.flop_counter`` (matrix products and convolutions: the gathers and scatters of
message passing are not counted, so FLOPs rank models by their dense work only).

Equal-time budgets come from this file only: ``steps x t_baseline / t_model`` for every seed
alike (:func:`equal_time_steps`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from est_fairchem.compare.study import Study


def training_batches(config: dict[str, Any], count: int, batch_size: int,
                     seed: int = 0) -> list[list]:
    """``count`` lists of ``batch_size`` structures from the config's train split (drawn as
    the study draws a seed's training set)."""
    from fairchem.core.common.utils import setup_imports
    from fairchem.core.datasets.base_dataset import create_dataset

    setup_imports()
    train = dict(config["dataset"]["train"])
    settings = train.pop("train_split_settings", None)
    if settings is not None:
        train["splits"] = {"train": settings}
    dataset = create_dataset(train, "train")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator).tolist()
    needed = count * batch_size
    order = (order * (needed // len(order) + 1))[:needed]
    items = [dataset[i] for i in order]
    return [items[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def _step_function(config: dict[str, Any], seed: int) -> tuple[Callable[[list], None],
                                                               torch.nn.Module]:
    from fairchem.core.datasets import data_list_collater

    from est_fairchem.tools.model_from_config import build_model

    torch.manual_seed(seed)
    model = build_model(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    otf_graph = config["model"].get("otf_graph", True)

    def step(structures: list) -> None:
        batch = data_list_collater(structures, otf_graph=otf_graph)
        loss = sum(value.float().pow(2).mean() for value in _tensors(model(batch))
                   if value.requires_grad)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model


def _tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a model's output (hydra models nest a dict per head)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for value in out.values() for t in _tensors(value)]
    return []


def flops_per_structure(step: Callable[[list], None], batches: list[list]) -> float:
    """Counted FLOPs of one training step, per structure, averaged over ``batches``."""
    from torch.utils.flop_counter import FlopCounterMode

    total, structures = 0, 0
    for batch in batches:
        counter = FlopCounterMode(display=False)
        with counter:
            step(batch)
        total += counter.get_total_flops()
        structures += len(batch)
    return total / structures


def measure_cost(study: Study, configs: dict[str, dict[str, Any]], repeats: int = 5,
                 steps: int = 30, warmup: int = 3,
                 progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Seconds per training step (median, IQR, every repeat), parameters and FLOPs per
    structure of each model in ``configs`` (name -> run config), one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = next(iter(configs.values()))
        batches = training_batches(first, warmup + steps, study.batch_size)
        functions = {name: _step_function(config, seed=0) for name, config in configs.items()}
        times: dict[str, list[float]] = {name: [] for name in configs}
        names = list(configs)
        for repeat in range(repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                step, _ = functions[name]
                for batch in batches[:warmup]:
                    step(batch)
                start = time.perf_counter()
                for batch in batches[warmup:]:
                    step(batch)
                times[name].append((time.perf_counter() - start) / steps)
                progress(f"cost: repeat {repeat + 1}/{repeats} {name}: "
                         f"{times[name][-1]:.4f} s/step")
        out: dict[str, Any] = {"repeats": repeats, "steps_per_repeat": steps, "warmup": warmup,
                               "batch_size": study.batch_size, "threads": 1, "models": {}}
        for name, (step, model) in functions.items():
            quartiles = statistics.quantiles(times[name], n=4, method="inclusive")
            out["models"][name] = {
                "seconds_per_step": statistics.median(times[name]),
                "iqr": [quartiles[0], quartiles[2]],
                "repeats": times[name],
                "parameters": sum(p.numel() for p in model.parameters()),
                "flops_per_structure": flops_per_structure(step, batches[:2]),
            }
        return out
    finally:
        torch.set_num_threads(threads)


def equal_time_steps(cost: dict[str, Any], baseline: str, model: str, steps: int) -> int:
    """Steps of ``model`` that take as long as ``steps`` of ``baseline`` (isolated timing)."""
    models = cost["models"]
    ratio = models[baseline]["seconds_per_step"] / models[model]["seconds_per_step"]
    return max(1, round(steps * ratio))
