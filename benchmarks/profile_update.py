"""Where a training step of EST-EquiformerV2 goes, part by part, next to EquiformerV2.

Builds both models from their fairchem configs, runs one forward on made OC20-sized batches
(as ``throughput.py``) and captures the inputs of the first block. Then each part of a block
is run alone on those inputs, forward + backward, and measured side by side:

- wall time (median of ``--repeats``, float32), FLOPs of forward + backward
  (``torch.utils.flop_counter``; matrix products only, device independent), and the bytes
  autograd saves for backward (activation memory);
- parts: EquiformerV2's message block (SO(2) graph attention, shared by both models), its
  feed-forward block, and the EST update's gate, steerable experts (one call per expert, the
  batched mixture), spherical branch (global grid, local frame) and the whole update as the
  config sets it, with and without ``recompute_update``;
- whole training steps of both models: FLOPs and their ratio, the bound on the speed ratio
  at equal efficiency.

    python benchmarks/profile_update.py                      # paper sizes, CPU
    python benchmarks/profile_update.py --size small --out benchmarks/results/profile_small_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from common import CONFIGS, build, loss_of, make_batches, sync
from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json

def capture_block_inputs(model: torch.nn.Module, batch) -> dict:
    """Positional inputs of the first backbone block for ``batch`` (embedding cloned)."""
    captured = {}

    def hook(_module, args, kwargs):
        captured["args"] = (args[0].clone(), *args[1:4], kwargs.get("batch", args[4:5] or None))

    handle = model.backbone.blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(batch)
    handle.remove()
    return captured


def _train_step(part: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    leaf = x.detach().requires_grad_(True)
    part(leaf).square().mean().backward()


def measure_parts(parts: dict[str, Callable], x: torch.Tensor, repeats: int) -> dict[str, dict]:
    """Forward + backward of each part on a leaf copy of ``x``: median ms over ``repeats``
    rounds (the parts take turns within a round, so load changes hit all alike), GFLOP and
    the MB autograd saves for backward."""
    from torch.utils.flop_counter import FlopCounterMode

    times: dict[str, list[float]] = {name: [] for name in parts}
    for name, part in parts.items():
        _train_step(part, x)  # warm-up
    for _ in range(repeats):
        for name, part in parts.items():
            sync(x.device)
            start = time.perf_counter()
            _train_step(part, x)
            sync(x.device)
            times[name].append(time.perf_counter() - start)
    results = {}
    for name, part in parts.items():
        counter = FlopCounterMode(display=False)
        with counter:
            _train_step(part, x)
        results[name] = {"ms": 1e3 * statistics.median(times[name]),
                         "gflop": counter.get_total_flops() / 1e9,
                         "saved_mb": _saved_mb(part, x)}
    return results


def _saved_mb(part: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    saved: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        saved[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    leaf = x.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = part(leaf)
    out.square().mean().backward()
    return sum(saved.values()) / 2**20


def step_flops(model: torch.nn.Module, batch, loss_of) -> float:
    """GFLOP of one training step's forward + backward."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss_of(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 1e9


def block_parts(est_model: torch.nn.Module, plain_model: torch.nn.Module, inputs: dict) -> dict:
    """The parts of block 0 as functions of the node features [N, K, C]."""
    embedding, atomic_numbers, edge_distance, edge_index, batch = inputs["args"]
    est_block, plain_block = est_model.backbone.blocks[0], plain_model.backbone.blocks[0]
    update = est_block.update
    n_st = update.num_steerable

    def message(x):
        emb = embedding.clone()
        emb.embedding = est_block.norm_1(x)
        return est_block.ga(emb, atomic_numbers, edge_distance, edge_index).embedding

    def feed_forward(x):
        emb = embedding.clone()
        emb.embedding = plain_block.norm_2(x)
        return plain_block.ffn(emb).embedding

    def gates(x):
        return update.gate(x[:, 0, :])

    fixed_gates = update.gate(embedding.embedding[:, 0, :]).detach()

    def experts(mixture):
        def run(x):
            update.steerable_mixture = mixture
            return update.mix_steerable(x, fixed_gates[:, :n_st])
        return run

    def whole_update(recompute: bool):
        def run(x):
            update.steerable_mixture, update.recompute = mix_eqv2_experts, recompute
            out = update(x, batch)
            update.recompute = False
            return out
        return run

    from est_fairchem.models.equiformer_v2.experts import mix_eqv2_experts

    def spherical(branch):
        return lambda x: branch(x, fixed_gates[:, n_st:], batch)

    parts = {
        "message block (SO(2) attention, both models)": message,
        "EquiformerV2 feed-forward block": feed_forward,
        "EST gate": gates,
    }
    if n_st > 0:
        parts["EST steerable experts, one call each"] = experts(None)
        parts["EST steerable experts, batched"] = experts(mix_eqv2_experts)
    return parts | {
        "EST spherical branch, global grid": spherical(_with_frame(update, "global")),
        "EST spherical branch, local frame": spherical(_with_frame(update, "local")),
        "EST whole update (config's settings)": whole_update(False),
        "EST whole update, recompute_update": whole_update(True),
    }


def _with_frame(update, grid_frame: str):
    """``update``'s spherical branch itself, or a shallow copy (same weights) sampling with
    ``grid_frame``."""
    import copy

    from est_fairchem.nn.local_frame import LocalFrame
    from est_fairchem.sphere.wigner import WignerFromRotation

    branch = update.spherical
    if branch.grid_frame == grid_frame:
        return branch
    other = copy.copy(branch)
    other._modules = dict(branch._modules)
    other.grid_frame = grid_frame
    if grid_frame == "local":
        device = next(branch.parameters()).device
        other.frame = LocalFrame(branch.channels).to(device)
        other.wigner = WignerFromRotation(branch.lmax).to(device)
    return other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["small", "paper", "default"], default="paper",
                        help="config pair of throughput.py (default: EST-31M, the est: defaults)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    add_overwrite_option(parser)
    args = parser.parse_args()
    refuse_existing(parser, [args.out], args.overwrite)

    device = torch.device(args.device)
    batch = make_batches(1, args.batch_size, (4, 4, 4), args.seed)[0].to(device)
    est_config, plain_config = CONFIGS[args.size]
    est_model = build(est_config, device, args.seed)
    plain_model = build(plain_config, device, args.seed)
    inputs = capture_block_inputs(est_model, batch)
    x = inputs["args"][0].embedding
    parts = measure_parts(block_parts(est_model, plain_model, inputs), x, args.repeats)
    steps = {"est": step_flops(est_model, batch, loss_of),
             "plain": step_flops(plain_model, batch, loss_of)}
    report = {
        "command": "python benchmarks/profile_update.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__, "device": str(device)},
        "configs": {"est": est_config, "plain": plain_config},
        "nodes": int(x.shape[0]), "edges": int(inputs["args"][3].shape[1]),
        "block_parts": parts,
        "step_gflop": steps,
        "step_flop_ratio_est_over_plain": steps["est"] / steps["plain"],
    }
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)


if __name__ == "__main__":
    main()
