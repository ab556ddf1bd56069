"""Equivariance error of EST blocks against their cost, per point set, S and L.

For each sampling (Fibonacci lattice with and without repulsion, Lebedev, EquiformerV2's
latitude-longitude grid), degree L and point count S:

- error of one EST operation ``EST(x)`` alone (as docs/design.md §13.1) and of residual stacks of
  1-6 blocks (``x <- x + EST(x)``, as in a model); spherical branch only: one spherical expert, no
  steerable expert, so all error comes from the grid. Random weights, float64, eval mode (no grid
  rotation): mean over random rotations R of mean|f(D(R)x) - D(R)f(x)| / mean|D(R)f(x)| on random
  steerable features;
- cost: wall time of the forward + inverse transform alone and of one whole EST block forward
  (float32, N nodes x C channels), so accuracy per unit cost is visible.

Note: the paper's Table 5 measures stacks of full EST message-passing layers on QM9 molecules;
the pure EST backbone arrives with the QM9 issue, so stacks of update blocks stand in here.

    python benchmarks/equivariance.py                         # L = 1, 2, 4 on CPU
    python benchmarks/equivariance.py --lmax 4 6 --layers 6 --out benchmarks/results/eq.json
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from functools import partial
from pathlib import Path

import torch

from est_fairchem.models.common.est_config import ESTConfig
from est_fairchem.nn.est_update import ESTUpdate
from est_fairchem.sphere.points import lebedev_point_counts
from est_fairchem.sphere.transform import min_sphere_points
from est_fairchem.testing.equivariance import random_rotation, steerable_rotation_error
from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json

SAMPLINGS = (("fibonacci", 0), ("fibonacci", 500), ("lebedev", 0), ("latlong", 0))


def label(sampling: str, repulsion: int) -> str:
    return f"{sampling}+repulsion" if repulsion else sampling


def point_counts(sampling: str, lmax: int, factors: list[float]) -> list[int]:
    """Valid S for this sampling near factor x the sampling bound."""
    bound = min_sphere_points(lmax, sampling)
    counts = []
    for factor in factors:
        target = max(bound, int(round(bound * factor)))
        if sampling == "lebedev":
            valid = sorted(c for c in lebedev_point_counts() if c >= target)
            if not valid:
                continue
            count = valid[0]
        elif sampling == "latlong":
            count = math.ceil(math.sqrt(target)) ** 2
        else:
            count = target
        if count not in counts:
            counts.append(count)
    return counts


def est_stack(lmax: int, channels: int, points: int, sampling: str, repulsion: int,
              layers: int, seed: int) -> list[ESTUpdate]:
    torch.manual_seed(seed)
    config = ESTConfig(num_points=points, sampling=sampling, repulsion_steps=repulsion,
                       num_spherical_experts=1, random_grid_rotation=False, grid_frame="global")
    return [config.update_block(lmax, channels, []).double().eval() for _ in range(layers)]


def run_stack(blocks: list[ESTUpdate], x: torch.Tensor, depth: int) -> torch.Tensor:
    for block in blocks[:depth]:
        x = x + block(x)
    return x


@torch.no_grad()
def equivariance_errors(
    blocks, lmax: int, channels: int, rotations: int, seed: int
) -> tuple[float, list[float]]:
    """(error of EST(x) alone, errors after 1..len(blocks) residual blocks), float64."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(16, (lmax + 1) ** 2, channels, generator=generator, dtype=torch.float64)
    op_error, errors = 0.0, [0.0] * len(blocks)
    for _ in range(rotations):
        rotation = random_rotation()
        op_error += steerable_rotation_error(blocks[0], x, rotation, lmax) / rotations
        for depth in range(1, len(blocks) + 1):
            stack = partial(run_stack, blocks, depth=depth)
            errors[depth - 1] += steerable_rotation_error(stack, x, rotation, lmax) / rotations
    return op_error, errors


@torch.no_grad()
def timings(block: ESTUpdate, lmax: int, nodes: int, channels: int, repeats: int) -> dict:
    block = block.float()
    x = torch.randn(nodes, (lmax + 1) ** 2, channels)

    def best(fn) -> float:
        fn()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return min(samples) * 1e3

    transform = block.spherical.transform
    return {
        "transform_ms": best(lambda: transform.from_grid(transform.to_grid(x))),
        "block_ms": best(lambda: block(x)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmax", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--factors", type=float, nargs="+", default=[1, 1.5, 2, 4, 8],
                        help="point counts as multiples of the sampling bound")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--channels", type=int, default=32, help="channels of the error runs")
    parser.add_argument("--rotations", type=int, default=4)
    parser.add_argument("--time-nodes", type=int, default=256)
    parser.add_argument("--time-channels", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="PNG: error against block time")
    add_overwrite_option(parser)
    args = parser.parse_args()
    refuse_existing(parser, [args.out, args.plot], args.overwrite)

    rows = []
    for lmax in args.lmax:
        for sampling, repulsion in SAMPLINGS:
            for points in point_counts(sampling, lmax, args.factors):
                blocks = est_stack(lmax, args.channels, points, sampling, repulsion,
                                   args.layers, args.seed)
                op_error, errors = equivariance_errors(
                    blocks, lmax, args.channels, args.rotations, args.seed)
                timing_block = est_stack(lmax, args.time_channels, points, sampling, repulsion,
                                         1, args.seed)[0]
                row = {"lmax": lmax, "sampling": label(sampling, repulsion), "points": points,
                       "op_error": op_error, "errors_by_depth": errors,
                       **timings(timing_block, lmax, args.time_nodes, args.time_channels,
                                 args.repeats)}
                rows.append(row)
                print(f"L={lmax} {row['sampling']:<22} S={points:<5} "
                      f"op {op_error:.2e}  stack(1) {errors[0]:.2e}  "
                      f"stack({args.layers}) {errors[-1]:.2e}  "
                      f"transform {row['transform_ms']:.2f} ms  block {row['block_ms']:.1f} ms",
                      flush=True)
    report = {
        "command": "python benchmarks/equivariance.py " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items() if k not in ("out", "plot") and v is not None),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__},
        "rows": rows,
    }
    if args.out:
        write_json(args.out, report)
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lmaxes = sorted({r["lmax"] for r in rows})
    fig, axes = plt.subplots(1, len(lmaxes), figsize=(5 * len(lmaxes), 4), squeeze=False)
    for ax, lmax in zip(axes[0], lmaxes):
        for name in dict.fromkeys(r["sampling"] for r in rows):
            sel = [r for r in rows if r["lmax"] == lmax and r["sampling"] == name]
            ax.loglog([r["block_ms"] for r in sel], [r["op_error"] for r in sel],
                      "o-", label=name)
            for r in sel:
                ax.annotate(str(r["points"]), (r["block_ms"], r["op_error"]),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"one EST operation, L = {lmax}")
        ax.set_xlabel("block forward time (ms, float32)")
        ax.set_ylabel("relative equivariance error (float64)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
