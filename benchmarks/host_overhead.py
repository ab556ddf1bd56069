"""Host-paced cost: forward + backward of an EST model and its plain model on one CO molecule.

In a 20 A box the molecule has 2 atoms and 2 edges, so the arithmetic is negligible and the
time is the host's work: dispatching operators and running autograd. Small GPU batches expose
that work wherever the GPU waits for the host (see benchmarks/RESULTS.md, "On a GPU"). Steps
alternate between the two models, the order flipping each pair. Reported: the ratio of median
step times (EST / plain) and the quartiles of the per-pair ratios; the optimizer is left out
(its host work does not grow with the batch).

    python benchmarks/host_overhead.py --size default --steps 40 \\
        --out benchmarks/results/host_overhead_default_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from common import CONFIGS, build, collate_labelled, command_line, loss_of
from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json


def molecule_batch():
    """One EMT-labelled CO molecule (1.15 A bond) in a periodic 20 A box, collated."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    atoms = Atoms("CO", positions=[[10.0, 10.0, 10.0], [10.0, 10.0, 11.15]],
                  cell=[20.0, 20.0, 20.0], pbc=True)
    atoms.calc = EMT()
    return collate_labelled([atoms])


def forward_backward_seconds(model: torch.nn.Module, batch) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loss_of(model, batch).backward()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    add_overwrite_option(parser)
    args = parser.parse_args(argv)
    refuse_existing(parser, [args.out], args.overwrite)
    if args.steps < 2:
        parser.error(f"--steps {args.steps}: expected at least 2")

    batch = molecule_batch()
    est_config, plain_config = CONFIGS[args.size]
    configs = {"est": est_config, "plain": plain_config}
    models = {n: build(c, torch.device("cpu"), args.seed) for n, c in configs.items()}
    for model in models.values():  # warm-up
        forward_backward_seconds(model, batch)
    seconds: dict[str, list[float]] = {n: [] for n in models}
    for step in range(args.steps):
        for name in (("est", "plain") if step % 2 else ("plain", "est")):
            seconds[name].append(forward_backward_seconds(models[name], batch))
    pairs = np.array(seconds["est"]) / np.array(seconds["plain"])
    report = {
        "command": command_line(args, "benchmarks/host_overhead.py"),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__},
        "atoms": int(batch.natoms.sum()),
        "models": {n: {"config": c, "median_ms": statistics.median(seconds[n]) * 1e3}
                   for n, c in configs.items()},
        "ratio_step_time": statistics.median(seconds["est"]) / statistics.median(seconds["plain"]),
        "pair_ratio_q25": float(np.quantile(pairs, 0.25)),
        "pair_ratio_q75": float(np.quantile(pairs, 0.75)),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
