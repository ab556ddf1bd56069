"""Training-step throughput and memory: EST models against the plain models they extend
(EST-EquiformerV2 vs EquiformerV2 for S2EF; EST-Equiformer vs Equiformer for IS2RE).

Both models are built from their fairchem configs as fairchem builds them and trained on the
same batches of OC20-sized slab + adsorbate systems (made with ASE's EMT, as make-demo-data
does), in one process, alternating rounds so machine noise hits both alike. A step is forward,
energy (+ force, for S2EF models) loss, backward and an AdamW step.

Reported per model: samples/s (median over rounds), the ratio EST / EquiformerV2, and memory:
on CUDA the peak allocated memory of a step; on any device the bytes of the tensors autograd
saves for backward in one step (the activation memory, device independent).

    python benchmarks/throughput.py                       # small models, CPU (default)
    python benchmarks/throughput.py --size paper --device cuda --batch-size 8
    python benchmarks/throughput.py --size is2re-paper --batch-size 2
    python benchmarks/throughput.py --size default --batch-size 2   # EST-31M (est: defaults)
    python benchmarks/throughput.py --size paper --est-option recompute_update=true
    python benchmarks/throughput.py --size paper --device cuda --amp   # as fairchem's amp: True
    python benchmarks/throughput.py --size default --device cuda --control  # + noise control
    python benchmarks/throughput.py --size small --peers    # + fairchem's eSCN, EquiformerV3

Results name the two models ``est`` and ``plain``; ``--control`` times a second copy of the plain
model in the same alternation (``control``), so ``ratio_control`` (control / plain, ideally 1)
shows how far a ratio can stray by noise alone on that machine. ``round_ratios`` are the
est / plain ratios of the single rounds.
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

from common import CONFIGS, REPO, build, command_line, loss_of, make_batches, sync
from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json
from est_fairchem.tools.model_from_config import count_parameters

# The peers a user would weigh EST against, at the size of each S2EF pair (--peers): fairchem's
# eSCN (the paper's Table 1 peer) and EquiformerV3 (`make peers` installs its wheel).
PEERS = {
    "small": {"escn": "configs/oc20/s2ef/peers/escn_small.yml",
              "eqv3": "configs/oc20/s2ef/peers/eqv3_small.yml"},
    "default": {"escn": "configs/oc20/s2ef/peers/escn_31M_size.yml",
                "eqv3": "configs/oc20/s2ef/peers/eqv3_31M_size.yml"},
}


def peer_unavailable(config_path: str) -> str | None:
    """Why a peer's config cannot be built here (its package missing), or None."""
    import importlib.util

    from est_fairchem.tools.model_from_config import load_config

    name = load_config(REPO / config_path)["model"]["name"]
    package = name.split(".")[0] if "." in name else None
    if package and importlib.util.find_spec(package) is None:
        return f"{package} is not installed (make peers)"
    return None


def parse_est_options(pairs: list[str]) -> dict:
    """``["key=value", ...]`` -> {key: YAML-parsed value}."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--est-option {pair!r}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return options


def saved_activation_bytes(model: torch.nn.Module, batch, amp: bool = False) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one forward."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_of(model, batch, amp)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def timed_epoch(model, optimizer, batches, device, amp: bool = False, scaler=None) -> float:
    """Seconds for one training step per batch; ``amp``: autocast, with ``scaler`` (a
    GradScaler, float16 on CUDA) or without (bfloat16 on CPU)."""
    sync(device)
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss_of(model, batch, amp).backward()
            optimizer.step()
        else:
            scaler.scale(loss_of(model, batch, amp=True)).backward()
            scaler.step(optimizer)
            scaler.update()
    sync(device)
    return time.perf_counter() - start


# ATen operators that only make views or allocate: they launch no kernel on a GPU.
METADATA_OPS = {f"aten::{name}" for name in (
    "as_strided", "view", "_reshape_alias", "_unsafe_view", "empty", "empty_strided", "resolve_conj",
    "resolve_neg", "detach", "alias", "t", "transpose", "expand", "permute", "unsqueeze", "squeeze",
    "slice", "select", "reshape", "lift_fresh", "set_", "unbind", "split", "chunk", "narrow",
    "is_nonzero", "_local_scalar_dense", "result_type", "empty_like", "numpy_T", "unflatten",
    "to", "resize_", "detach_")}


def kernel_profile(model, optimizer, batch, device, amp: bool, scaler, top: int = 15) -> dict:
    """One training step under ``torch.profiler``: device kernels launched, their total time,
    the innermost ATen operators that compute (on any device; each launches about one kernel
    on a GPU), in all and outside the optimizer step (whose count on a CPU grows with the
    number of parameter tensors; CUDA's multi-tensor AdamW launches few kernels for all),
    the ATen operators the host dispatches in forward + backward (called from Python or the
    autograd engine, not from inside another operator; views included: each costs host time,
    which sets the pace of a GPU step whose kernels are small), the host's waits for the
    device (CUDA ``*Synchronize`` calls, e.g. a tensor read back), and the ``top`` operators
    by self time on the device (CPU time on CPU)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        timed_epoch(model, optimizer, [batch], device, amp, scaler)
    events = prof.events()
    # Device-side mirrors of record_function ranges (e.g. "Optimizer.step#AdamW.step") span
    # idle gaps between kernels; they carry the name of a host event, kernels never do.
    host_names = {e.name for e in events if e.device_type == DeviceType.CPU}
    kernels = [e for e in events
               if e.device_type == DeviceType.CUDA and e.name not in host_names] if cuda else []
    leaf_ops = [e for e in events if e.name.startswith("aten::")
                and e.name not in METADATA_OPS
                and not any(c.name.startswith("aten::") and c.name not in METADATA_OPS
                            for c in e.cpu_children)]

    def in_optimizer(event) -> bool:
        return _has_ancestor(event, "Optimizer.step")

    model_ops = [e for e in leaf_ops if not in_optimizer(e)]
    dispatched = [e for e in events if e.name.startswith("aten::") and not in_optimizer(e)
                  and not _has_ancestor(e, "aten::")]

    def self_us(event) -> float:
        return event.self_device_time_total if cuda else event.self_cpu_time_total

    ops = sorted(prof.key_averages(), key=self_us, reverse=True)[:top]
    return {
        "device_kernels": len(kernels),
        "kernel_ops": len(leaf_ops),
        "kernel_ops_forward_backward": len(model_ops),
        "dispatched_ops_forward_backward": len(dispatched),
        "host_syncs": sum("Synchronize" in e.name for e in events),
        "device_kernel_ms": sum(e.time_range.elapsed_us() for e in kernels) / 1e3,
        "top_ops": [{"name": e.key, "self_ms": self_us(e) / 1e3, "calls": e.count} for e in ops],
    }


def _has_ancestor(event, prefix: str) -> bool:
    """Whether an enclosing host event of the profiler's ``event`` is named ``prefix...``."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(prefix):
            return True
        parent = parent.cpu_parent
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=4, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3, help="0: activation memory only")
    parser.add_argument("--slab", default="4,4,4", help="fcc(111) slab cells (default 4,4,4: 66 atoms)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--est-option", action="append", default=[], metavar="KEY=VALUE",
                        help="override an est: option of the EST model (repeatable)")
    parser.add_argument("--kernel-profile", action="store_true",
                        help="also profile one step of each model (kernels, top operators)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision (float16 autocast + GradScaler on CUDA), both models")
    parser.add_argument("--control", action="store_true",
                        help="also time a second copy of the plain model (noise control)")
    parser.add_argument("--peers", action="store_true",
                        help="also time fairchem's eSCN and EquiformerV3 at the same size "
                        "(sizes small and default; EquiformerV3 needs `make peers`)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    add_overwrite_option(parser)
    args = parser.parse_args()
    refuse_existing(parser, [args.out], args.overwrite)
    est_options = parse_est_options(args.est_option)

    device = torch.device(args.device)
    slab = tuple(int(v) for v in args.slab.split(","))
    batches = [b.to(device) for b in make_batches(args.batches, args.batch_size, slab, args.seed)]
    est_config, plain_config = CONFIGS[args.size]
    configs = {"est": est_config, "plain": plain_config}
    if args.control:
        configs["control"] = plain_config
    unavailable = {}
    if args.peers:
        if args.size not in PEERS:
            parser.error(f"--peers: peer configs exist for sizes {sorted(PEERS)}")
        for name, config in PEERS[args.size].items():
            reason = peer_unavailable(config)
            if reason is None:
                configs[name] = config
            else:
                unavailable[name] = reason
    names = tuple(configs)
    models = {n: build(c, device, args.seed, est_options if n == "est" else None)
              for n, c in configs.items()}
    optimizers = {n: torch.optim.AdamW(m.parameters(), lr=1e-4) for n, m in models.items()}
    use_scaler = args.amp and device.type == "cuda"
    scalers = {n: torch.amp.GradScaler("cuda") if use_scaler else None for n in names}

    results = {n: {"config": c, "parameters": count_parameters(models[n])["total"]}
               for n, c in configs.items()}
    for name, model in models.items():
        if name != "control":
            results[name]["saved_activation_mb"] = (
                saved_activation_bytes(model, batches[0], args.amp) / 2**20)
        if args.rounds:
            timed_epoch(model, optimizers[name], batches[:1], device, args.amp, scalers[name])  # warm-up
    times: dict[str, list[float]] = {n: [] for n in names}
    peak: dict[str, float] = {}
    for _ in range(args.rounds):
        for name in names:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times[name].append(
                timed_epoch(models[name], optimizers[name], batches, device, args.amp, scalers[name]))
            if device.type == "cuda":
                peak[name] = max(peak.get(name, 0.0), torch.cuda.max_memory_allocated(device) / 2**20)
    if args.kernel_profile:
        for name in ("est", "plain"):
            results[name]["kernel_profile"] = kernel_profile(
                models[name], optimizers[name], batches[0], device, args.amp, scalers[name])
    samples = args.batches * args.batch_size
    for name in names:  # --rounds 0: activation memory only
        results[name]["samples_per_s"] = (
            samples / statistics.median(times[name]) if times[name] else None)
        results[name]["peak_cuda_mb"] = peak.get(name)
    natoms = float(np.mean([b.natoms.float().mean().item() for b in batches]))
    report = {
        "command": command_line(args),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__, "device": str(device),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "atoms_per_system": natoms,
        "models": results,
        "ratio_samples_per_s": (results["est"]["samples_per_s"] / results["plain"]["samples_per_s"]
                                if args.rounds else None),
        "round_ratios": [p / e for e, p in zip(times["est"], times["plain"])],
        "ratio_saved_activation": results["est"]["saved_activation_mb"] / results["plain"]["saved_activation_mb"],
    }
    if args.control and args.rounds:
        report["ratio_control"] = (results["control"]["samples_per_s"]
                                   / results["plain"]["samples_per_s"])
    if args.peers and args.rounds:
        report["ratio_to_plain_samples_per_s"] = {
            name: results[name]["samples_per_s"] / results["plain"]["samples_per_s"]
            for name in names if name != "plain"}
        report["peers_unavailable"] = unavailable
    if device.type == "cuda" and peak:
        report["ratio_peak_cuda"] = peak["est"] / peak["plain"]
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)


if __name__ == "__main__":
    main()
