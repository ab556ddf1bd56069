"""Equivariance error of whole EST-EquiformerV2 models against their training-step cost.

For each EST variant (point set, point count, expert mix, grid frame: overrides of the ``est:``
block) and for plain EquiformerV2 of the same size, built from the same fairchem config dict
with the same seed:

1. random weights: float64, eval mode, relative energy and force errors under random rotations
   (max and mean over rotations x structures) on made slab + adsorbate structures, with full
   neighbour lists (every neighbour within the cutoff, as ``check-equivariance`` builds them);
2. cost: float32 training steps (forward, energy + force loss, backward, AdamW) on made EMT
   batches, timed step by step alternating with a plain EquiformerV2 that trains beside it,
   reported as median(step time EST) / median(step time plain) (the first pair is warm-up);
   plain EquiformerV2 is timed against a copy of itself the same way (the timing control);
3. after training: ``--train-steps`` AdamW steps (the first ``--timing-steps`` are the timed
   ones) on made EMT batches, the final training loss and an eval loss on held-out batches,
   then the float64 rotation errors again.

    python benchmarks/equivariance_cost.py --list                   # the variants
    python benchmarks/equivariance_cost.py                          # l4 size, all (~30 min CPU)
    python benchmarks/equivariance_cost.py --variants default,sp2-leb86 --train-steps 20
    python benchmarks/equivariance_cost.py --variants default --structure-set symmetric \
        --structures 3
        (an ideal slab with an on-top adsorbate and perfect crystals, where per-node frames
        are undefined; forces compared by absolute error)
    python benchmarks/equivariance_cost.py --size paper --train-steps 300   # EqV2-31M sizes
        (float64 checks with 12 A full neighbour lists: ~14 GB per system; on a small machine
        add --override max_radius=6.0)

Variant names are ``MIX-POINTSnCOUNT[-local]`` (see ``MIXES``, ``POINT_SETS``) plus
``default``, the ``est:`` defaults of this checkout (``est: {}``). Errors are relative:
|E(Rx) - E(x)| / |E(x)| and mean|F(Rx) - F(x) R^T| / mean|F(x) R^T| per structure (the
criterion and the plot use their max over rotations x structures); the JSON also holds
absolute errors (eV; eV/A, largest component).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common import REPO, loss_of, make_batches, prediction, seeded_model
from est_fairchem.testing.equivariance import default_dtype, random_rotations
from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json
from est_fairchem.tools.model_from_config import count_parameters

PLAIN_BACKBONE = "fairchem.core.models.equiformer_v2.equiformer_v2.EquiformerV2Backbone"
EST_BACKBONE = "est_fairchem.models.EquiformerV2ESTBackbone"

# Size presets: a fairchem model YAML and backbone keys overridden in the loaded dict.
SIZES: dict[str, tuple[str, dict[str, Any]]] = {
    # EquiformerV2-31M's lmax 4 / mmax 2 / grid 18 with its width ratios (attention hidden C/2,
    # feed-forward hidden C) at C = 32 and 2 layers; cutoff 6 A as the demo (full neighbour
    # lists at 12 A would be ~8x the edges of the training graphs).
    "l4": ("configs/oc20/s2ef/demo/eqv2_small.yml", {
        "lmax_list": [4], "mmax_list": [2], "grid_resolution": 18, "num_layers": 2,
        "sphere_channels": 32, "attn_hidden_channels": 16, "num_heads": 4,
        "attn_alpha_channels": 16, "attn_value_channels": 4, "ffn_hidden_channels": 32,
        "edge_channels": 32, "num_distance_basis": 128,
    }),
    # EquiformerV2-31M as configured (8 layers, C = 128, cutoff 12 A). Its float64 check with
    # full 12 A neighbour lists takes ~14 GB and ~100 s per 14-atom system on a CPU (3.7k edges).
    "paper": ("configs/oc20/s2ef/base/model_eqv2_31M.yml", {}),
}
# Systems per float64 forward of the rotation check (0: a structure with all its rotations).
CHECK_SYSTEMS = {"l4": 0, "paper": 1}

# Expert mixes: (steerable experts, spherical experts, steerable hidden as a fraction of the
# backbone's ffn_hidden_channels H, spherical hidden as a multiple of C). All explicit, so the
# variants do not move when the ``est:`` defaults do.
MIXES: dict[str, tuple[int, int, float, int]] = {
    "paper": (5, 5, 1.0, 4),  # the paper: 5 EquiformerV2 feed-forward copies + 5 x 4C
    "sp2": (0, 2, 0.5, 2),  # spherical branch only, two 2C experts
    "sp1": (0, 1, 0.5, 2),
    "st1sp1": (1, 1, 0.5, 2),  # one feed-forward expert at H/2 + one 2C spherical expert
}
# Point sets: label -> (sampling, repulsion_steps).
POINT_SETS: dict[str, tuple[str, int]] = {
    "fib": ("fibonacci", 0), "fibrep": ("fibonacci", 500),
    "leb": ("lebedev", 0), "ll": ("latlong", 0),
}
# lmax 4 point counts: the sampling bound's smallest valid count, ~90-150, ~300.
POINT_COUNTS: dict[str, tuple[int, ...]] = {
    "fib": (64, 90), "fibrep": (64, 90, 300), "leb": (86, 146, 302), "ll": (81, 144, 324),
}


def est_options(
    mix: str, points: str, count: int, frame: str, channels: int, ffn_hidden: int,
) -> dict[str, Any]:
    """The explicit ``est:`` block of one variant for a backbone of ``channels`` C and
    feed-forward width ``ffn_hidden`` H."""
    steerable, spherical, steerable_fraction, spherical_factor = MIXES[mix]
    sampling, repulsion = POINT_SETS[points]
    options: dict[str, Any] = {
        "num_steerable_experts": steerable, "num_spherical_experts": spherical,
        "spherical_hidden_channels": spherical_factor * channels,
        "num_points": count, "sampling": sampling, "repulsion_steps": repulsion,
        "grid_frame": frame,
    }
    if steerable:
        options["steerable_hidden_channels"] = max(1, int(steerable_fraction * ffn_hidden))
    return options


def default_variants(channels: int, ffn_hidden: int) -> dict[str, dict[str, Any]]:
    """Named ``est:`` blocks: ``default`` (the config defaults, ``est: {}``), a point-set
    sweep with the spherical-only 0/2 mix, the paper's mix and the other cheap mixes, each
    with the fixed global grid, then ``grid_frame: local`` versions at the smallest counts."""
    specs = [("sp2", p, n, "global") for p, counts in POINT_COUNTS.items() for n in counts]
    specs += [("paper", "fibrep", 90, "global"), ("sp1", "fibrep", 64, "global"),
              ("st1sp1", "fibrep", 64, "global"),
              ("sp2", "fib", 64, "local"), ("sp2", "leb", 86, "local"), ("sp2", "ll", 81, "local"),
              ("sp1", "fibrep", 64, "local"), ("st1sp1", "fibrep", 64, "local"),
              ("paper", "fibrep", 90, "local")]
    variants: dict[str, dict[str, Any]] = {"default": {}}
    for mix, points, count, frame in specs:
        name = f"{mix}-{points}{count}" + ("-local" if frame == "local" else "")
        variants[name] = est_options(mix, points, count, frame, channels, ffn_hidden)
    return variants


# --------------------------------------------------------------------------- configs, models


def plain_config(size: str, overrides: dict[str, Any] | None = None) -> dict:
    """The fairchem config dict of plain EquiformerV2 at ``size`` (plus backbone ``overrides``)."""
    from est_fairchem.tools.model_from_config import load_config

    path, size_overrides = SIZES[size]
    config = copy.deepcopy(load_config(REPO / path))
    backbone = config["model"]["backbone"]
    backbone.update(copy.deepcopy(size_overrides), **(overrides or {}))
    backbone["model"] = PLAIN_BACKBONE
    backbone.pop("est", None)
    return config


def est_config(plain: dict, est: dict[str, Any]) -> dict:
    """The same config with the EST backbone and the ``est:`` block."""
    config = copy.deepcopy(plain)
    config["model"]["backbone"].update(model=EST_BACKBONE, est=copy.deepcopy(est))
    return config


def unavailable_options(est: dict[str, Any]) -> list[str]:
    """``est:`` keys this checkout's ``ESTConfig`` does not know (e.g. a newer option)."""
    from est_fairchem.models.common.est_config import ESTConfig

    return sorted(set(est) - {f.name for f in fields(ESTConfig)})


def for_this_checkout(est: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(``est`` runnable here, its unknown options). ``grid_frame: global`` is dropped where the
    option does not exist yet (a fixed global grid was then the only behaviour)."""
    missing = unavailable_options(est)
    if "grid_frame" in missing and est.get("grid_frame") == "global":
        est = {k: v for k, v in est.items() if k != "grid_frame"}
        missing.remove("grid_frame")
    return est, missing


def resolved_options(est: dict[str, Any], lmax: int) -> dict[str, Any]:
    """All ``est:`` options, defaults filled in, as the model sees them."""
    from est_fairchem.models.common.est_config import ESTConfig

    return ESTConfig.from_mapping(est, lmax=lmax).to_dict()


def parameters_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters (buffers are rebuilt, not copied)."""
    return {k: v.detach().clone() for k, v in model.named_parameters()}


# ------------------------------------------------------------------------------ equivariance


def made_structures(count: int, seed: int) -> list:
    """``count`` made fcc(111) 2x2x3 slabs with an adsorbate (OC20 tags), rattled by 0.05 A."""
    from est_fairchem.testing.structures import made_slab

    systems = [("Cu", "CO"), ("Pt", "OH"), ("Ni", "N"), ("Ag", "O")]
    rng = np.random.default_rng(seed)
    return [made_slab(metal=metal, adsorbate=adsorbate, rng=rng)
            for metal, adsorbate in systems[:count]]


def symmetric_structures(count: int, seed: int) -> list:
    """Up to 3 structures with symmetric sites, where a per-node frame is undefined: an ideal
    Cu(111) 3x3x3 slab with CO on top of an atom (C3v axis), perfect fcc Cu (cubic cell
    2x2x2, 32 atoms) and rocksalt NaCl (8 atoms); not rattled (``seed`` is unused). The
    crystals' forces vanish by symmetry, so their relative force errors are meaningless: the
    report uses the absolute force error (largest component, eV/A) for this set."""
    from ase.build import add_adsorbate, bulk, fcc111, molecule

    slab = fcc111("Cu", (3, 3, 3), vacuum=8.0)
    add_adsorbate(slab, molecule("CO"), 1.9, "ontop", mol_index=0)
    slab.pbc = True
    crystals = [bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)),
                bulk("NaCl", "rocksalt", a=5.64, cubic=True)]
    return [slab, *crystals][:count]


STRUCTURE_SETS = {"rattled": made_structures, "symmetric": symmetric_structures}


def force_key(structure_set: str) -> str:
    """The force error the criterion uses: relative, or absolute (eV/A) on symmetric sets."""
    return "force_abs_max" if structure_set == "symmetric" else "force_max"


def float64_model(config: dict) -> nn.Module:
    """``config``'s model built in float64 (tables, grids, frames in full precision), eval
    mode, graphs given (no on-the-fly graph). Call inside ``default_dtype(torch.float64)``."""
    config = copy.deepcopy(config)
    config["model"]["otf_graph"] = False
    config["model"]["backbone"]["otf_graph"] = False
    return seeded_model(config, seed=0).double().eval()


class RotationCheck:
    """Float64 rotation errors of one architecture for given parameters.

    Args:
        config: the fairchem config dict of the model.
        structures: ASE atoms to rotate; rotations: [R, 3, 3] float64.
        seed: seeds EquiformerV2's random edge-frame rolls before each check.
        chunk: systems per forward (0: each structure with all its rotations at once).
    """

    def __init__(self, config: dict, structures: list, rotations: torch.Tensor, seed: int,
                 chunk: int = 0):
        self.radius = float(config["model"]["backbone"]["max_radius"])
        self.structures, self.rotations, self.seed = structures, rotations, seed
        self.chunk = chunk
        with default_dtype(torch.float64):
            self.model = float64_model(config)
        self.names = set(dict(self.model.named_parameters()))

    def _predict(self, systems: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies [B] and forces [atoms, 3] of ``systems``, ``chunk`` systems per forward."""
        from est_fairchem.testing.structures import graph_batch

        size = self.chunk or len(systems)
        energies, forces = [], []
        for start in range(0, len(systems), size):
            out = self.model(graph_batch(systems[start:start + size], self.radius))
            energies.append(prediction(out, "energy").detach().reshape(-1))
            forces.append(prediction(out, "forces").detach())
        return torch.cat(energies), torch.cat(forces)

    @torch.no_grad()
    def errors(self, parameters: dict[str, torch.Tensor]) -> dict[str, float]:
        """Relative (and absolute: eV, eV/A) energy and force errors, max and mean over
        structures x rotations, of the model with ``parameters`` (float32 or float64)."""
        from est_fairchem.testing.equivariance import output_changes
        from est_fairchem.testing.structures import rotated

        if set(parameters) != self.names:
            raise ValueError(f"parameters do not match: {sorted(set(parameters) ^ self.names)[:5]}")
        self.model.load_state_dict({k: v.double() for k, v in parameters.items()}, strict=False)
        errors: dict[str, list[float]] = {"energy": [], "force": [], "energy_abs": [],
                                          "force_abs": []}
        with default_dtype(torch.float64):
            torch.manual_seed(self.seed)
            for atoms in self.structures:
                systems = [atoms] + [rotated(atoms, r.numpy()) for r in self.rotations]
                energy, forces = self._predict(systems)
                forces = forces.view(len(systems), len(atoms), 3)
                reference = {"energy": energy[0], "force": forces[0]}
                for i, rotation in enumerate(self.rotations, start=1):
                    turned = {"energy": energy[i], "force": forces[i]}
                    changes = output_changes(reference, turned, rotation, vectors=("force",))
                    for name, (relative, absolute) in changes.items():
                        errors[name].append(relative)
                        errors[f"{name}_abs"].append(absolute)
        summary = {}
        for key, values in errors.items():
            summary[f"{key}_max"] = max(values)
            summary[f"{key}_mean"] = float(np.mean(values))
        return summary


# ---------------------------------------------------------------------------- training, cost


@dataclass
class Trainer:
    """A model and its AdamW optimizer."""

    model: nn.Module
    optimizer: torch.optim.Optimizer

    @classmethod
    def of(cls, model: nn.Module, lr: float) -> "Trainer":
        return cls(model, torch.optim.AdamW(model.parameters(), lr=lr))

    def step(self, batch) -> tuple[float, float]:
        """One float32 training step on ``batch`` -> (seconds, loss)."""
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_of(self.model, batch)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start, float(loss.detach())


def train(
    trainer: Trainer, batches: list, steps: int, partner: Trainer | None, timing_steps: int,
) -> dict[str, Any]:
    """Train ``steps`` steps cycling over ``batches``; the first ``timing_steps`` alternate with
    a step of ``partner`` on the same batch (order flipped each step).

    Returns losses [steps], own_s and partner_s (step seconds of the timed steps, the first
    pair dropped as warm-up).
    """
    losses, own, other = [], [], []
    for step in range(steps):
        batch = batches[step % len(batches)]
        timed = partner is not None and step < timing_steps
        if timed and step % 2:
            other.append(partner.step(batch)[0])
        seconds, loss = trainer.step(batch)
        losses.append(loss)
        if timed:
            own.append(seconds)
            if not step % 2:
                other.append(partner.step(batch)[0])
    return {"losses": losses, "own_s": own[1:], "partner_s": other[1:]}


@torch.no_grad()
def eval_loss(model: nn.Module, batches: list) -> float:
    """Mean float32 loss (energy MAE + mean force error norm) in eval mode on ``batches``."""
    model.eval()
    loss = float(np.mean([float(loss_of(model, b)) for b in batches]))
    model.train()
    return loss


def cost_ratio(own_s: list[float], partner_s: list[float]) -> dict[str, float | None]:
    """median(own) / median(partner), and the quartiles of the per-pair ratios (noise)."""
    if not own_s or not partner_s:
        return {"cost_ratio": None, "pair_ratio_q25": None, "pair_ratio_q75": None,
                "step_s": None, "plain_step_s": None}
    pairs = np.array(own_s) / np.array(partner_s)
    return {"cost_ratio": statistics.median(own_s) / statistics.median(partner_s),
            "pair_ratio_q25": float(np.quantile(pairs, 0.25)),
            "pair_ratio_q75": float(np.quantile(pairs, 0.75)),
            "step_s": statistics.median(own_s), "plain_step_s": statistics.median(partner_s)}


@dataclass
class Setup:
    """Everything every model is measured on (identical across models)."""

    train_batches: list
    eval_batches: list
    structures: list
    rotations: torch.Tensor
    seed: int
    lr: float
    train_steps: int
    timing_steps: int
    check_systems: int = 0


def make_setup(args: argparse.Namespace) -> Setup:
    """Batches, structures and rotations from the command-line settings."""
    slab = tuple(int(v) for v in args.slab.split(","))
    return Setup(
        train_batches=make_batches(args.train_batches, args.batch_size, slab, args.seed),
        eval_batches=make_batches(args.eval_batches, args.batch_size, slab, args.seed + 1),
        structures=STRUCTURE_SETS[args.structure_set](args.structures, args.seed + 3),
        rotations=random_rotations(args.rotations, args.seed),
        seed=args.seed, lr=args.lr, train_steps=args.train_steps,
        timing_steps=args.timing_steps,
        check_systems=CHECK_SYSTEMS[args.size] if args.check_systems is None else args.check_systems,
    )


def measure(config: dict, setup: Setup, partner: Trainer) -> dict[str, Any]:
    """Parameters, random-weight errors, cost against ``partner`` (plain), training, errors
    after training, for the model of ``config``."""
    start = time.perf_counter()
    model = seeded_model(config, setup.seed)
    check = RotationCheck(config, setup.structures, setup.rotations, setup.seed,
                          setup.check_systems)
    result: dict[str, Any] = {"parameters": count_parameters(model)["total"]}
    result["random"] = check.errors(parameters_of(model))
    trainer = Trainer.of(model, setup.lr)
    run = train(trainer, setup.train_batches, setup.train_steps, partner, setup.timing_steps)
    result.update(cost_ratio(run["own_s"], run["partner_s"]))
    losses = run["losses"]
    result["loss_first"] = float(np.mean(losses[: min(5, len(losses))]))
    result["loss_final"] = float(np.mean(losses[-min(10, len(losses)):]))
    result["eval_loss"] = eval_loss(model, setup.eval_batches)
    result["trained"] = check.errors(parameters_of(model))
    result["seconds"] = time.perf_counter() - start
    return result


# ------------------------------------------------------------------------------------ report


def label_of(resolved: dict[str, Any]) -> str:
    """Point-set label (plot marker) of a variant's resolved ``est:`` options."""
    if resolved["sampling"] == "fibonacci" and resolved["repulsion_steps"]:
        return "fibonacci+repulsion"
    return resolved["sampling"]


def group_of(name: str) -> str:
    """Expert mix + grid frame of a variant name (plot colours)."""
    mix = name.split("-")[0]
    return f"{mix} local" if name.endswith("-local") else mix


def meets(result: dict[str, Any], plain: dict[str, Any], force: str = "force_max") -> bool:
    """Max energy and force errors (``force``: the force key) at or below EqV2's, random and
    trained, and cost <= 1.0x."""
    if result.get("cost_ratio") is None or result["cost_ratio"] > 1.0:
        return False
    return all(result[state][key] <= plain[state][key]
               for state in ("random", "trained") for key in ("energy_max", force))


def table(report: dict[str, Any]) -> str:
    """Markdown table of all models (max errors over rotations x structures)."""
    plain = report["plain"]
    force = force_key(report["settings"]["structure_set"])
    unit = " (eV/A)" if force == "force_abs_max" else ""
    rows = [f"| variant | params | cost (x EqV2) | E err random | F err random{unit} "
            f"| E err trained | F err trained{unit} | eval loss | both criteria |",
            "|" + "---|" * 9]

    def row(name: str, r: dict[str, Any], ratio: str, ok: str) -> str:
        return (f"| {name} | {r['parameters'] / 1e6:.3f}M | {ratio} | "
                f"{r['random']['energy_max']:.1e} | {r['random'][force]:.1e} | "
                f"{r['trained']['energy_max']:.1e} | {r['trained'][force]:.1e} | "
                f"{r['eval_loss']:.3f} | {ok} |")

    control = plain.get("cost_ratio")
    rows.append(row("EquiformerV2", plain, f"1 (control {control:.2f})" if control else "1", "-"))
    for name, r in report["variants"].items():
        if "skipped" in r:
            continue
        ok = "yes" if meets(r, plain, force) else "no"
        rows.append(row(name, r, f"{r['cost_ratio']:.2f}", ok))
    return "\n".join(rows)


def plot(report: dict[str, Any], path: Path) -> None:
    """Energy and force error (max, log y) against cost ratio; open = random weights, filled
    = trained; markers per point set, colours per expert mix / frame; EqV2 a black star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    markers = {"fibonacci": "o", "fibonacci+repulsion": "s", "lebedev": "D", "latlong": "^"}
    variants = {n: r for n, r in report["variants"].items() if "skipped" not in r}
    groups = list(dict.fromkeys(group_of(n) for n in variants))
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # no grey
    colours = {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    plain = report["plain"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    force = force_key(report["settings"]["structure_set"])
    for ax, key, title in zip(axes, ("energy_max", force), ("energy", "forces")):
        for name, r in variants.items():
            x, colour = r["cost_ratio"], colours[group_of(name)]
            marker = markers[label_of(r["est_resolved"])]
            ys = (r["random"][key], r["trained"][key])
            ax.plot([x, x], ys, "-", color=colour, alpha=0.3, lw=0.8)
            ax.scatter([x], [ys[0]], marker=marker, facecolors="none", edgecolors=[colour], s=40)
            ax.scatter([x], [ys[1]], marker=marker, color=colour, s=40)
            ax.annotate(str(r["est_resolved"]["num_points"]), (x, ys[1]), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
        for state, face, style in (("random", "none", ":"), ("trained", "black", "--")):
            ax.scatter([1.0], [plain[state][key]], marker="*", s=180, facecolors=face,
                       edgecolors="black", zorder=5)
            ax.axhline(plain[state][key], color="black", ls=style, lw=0.7, alpha=0.6)
        ax.axvline(1.0, color="grey", lw=1.0)
        ax.set_yscale("log")
        ax.set_xlabel("training-step cost, EST / EquiformerV2 (median step time, float32)")
        measure = "absolute (eV/A)" if key == "force_abs_max" else "relative"
        ax.set_ylabel(f"{measure} {title} rotation error (max, float64, eval)")
        ax.set_title(f"{title}: {report['settings']['size']} size")
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], marker=m, ls="", color="grey", label=s) for s, m in markers.items()]
    handles += [Line2D([], [], marker="o", ls="", color=colours[g], label=g) for g in groups]
    handles += [Line2D([], [], marker="*", ls="", color="black", markersize=12,
                       label="EquiformerV2 (x = 1)"),
                Line2D([], [], ls=":", color="black", label="EqV2 level, random weights"),
                Line2D([], [], ls="--", color="black", label="EqV2 level, trained"),
                Line2D([], [], marker="o", ls="", mfc="none", color="grey", label="random weights"),
                Line2D([], [], marker="o", ls="", color="grey",
                       label=f"after {report['settings']['train_steps']} steps")]
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=min(len(handles), 7),
               frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> dict[str, Any]:
    import fairchem.core

    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "processor": platform.processor(),
            "torch": torch.__version__, "fairchem": getattr(fairchem.core, "__version__", None),
            "load_average_start": os.getloadavg()}


def select_variants(spec: str | None, backbone: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The named variants of ``--variants`` (comma-separated; all when None) for ``backbone``."""
    variants = default_variants(backbone["sphere_channels"], backbone["ffn_hidden_channels"])
    if not spec:
        return variants
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {list(variants)}")
    return {n: variants[n] for n in names}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> {key: YAML-parsed value}."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--override {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="l4")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variant names (default: all); --list shows them")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    parser.add_argument("--rotations", type=int, default=4)
    parser.add_argument("--structures", type=int, default=2,
                        help="structures of the set (rattled: at most 4, symmetric: at most 3)")
    parser.add_argument("--structure-set", choices=sorted(STRUCTURE_SETS), default="rattled",
                        help="rattled: made slabs + adsorbate, rattled by 0.05 A; symmetric: "
                             "ideal slab with an on-top adsorbate and perfect crystals (forces "
                             "compared by absolute error)")
    parser.add_argument("--train-steps", type=int, default=80)
    parser.add_argument("--timing-steps", type=int, default=16,
                        help="first training steps timed against plain EqV2 (first pair dropped)")
    parser.add_argument("--check-systems", type=int, default=None,
                        help="systems per float64 forward (default: l4 all rotations of a "
                             "structure at once, paper 1)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--train-batches", type=int, default=16)
    parser.add_argument("--eval-batches", type=int, default=4)
    parser.add_argument("--slab", default="2,2,3", help="fcc(111) cells (2,2,3: 12 + adsorbate)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="backbone key of the size preset to override (YAML value), "
                             "e.g. --override sphere_channels=64; repeatable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--plot", type=Path, default=None, help="PNG plot")
    add_overwrite_option(parser)
    args = parser.parse_args(argv)
    refuse_existing(parser, [args.out, args.plot], args.overwrite)
    most = {"rattled": 4, "symmetric": 3}[args.structure_set]
    if not 1 <= args.structures <= most:
        parser.error(f"--structures {args.structures}: expected 1 to {most} for "
                     f"--structure-set {args.structure_set}")
    if args.timing_steps > args.train_steps:
        parser.error(f"--timing-steps {args.timing_steps}: expected at most --train-steps "
                     f"({args.train_steps}); the timed steps are the first training steps")
    return args


def run_variant(est: dict[str, Any], plain: dict, setup: Setup, partner: Trainer) -> dict:
    """Measure one variant (or record why it was skipped)."""
    runnable, missing = for_this_checkout(est)
    if missing:
        return {"est": est, "skipped": f"this checkout's est: has no option {missing}"}
    lmax = plain["model"]["backbone"]["lmax_list"][0]
    try:
        return {"est": runnable, "est_resolved": resolved_options(runnable, lmax),
                **measure(est_config(plain, runnable), setup, partner)}
    except Exception as error:  # one broken variant must not lose the others' results
        return {"est": runnable, "skipped": f"failed: {error!r}"}


def summary_line(name: str, r: dict[str, Any], force: str = "force_max") -> str:
    if "skipped" in r:
        return f"{name}: skipped ({r['skipped']})"
    return (f"{name}: cost {r['cost_ratio']:.2f}x  E {r['random']['energy_max']:.1e} -> "
            f"{r['trained']['energy_max']:.1e}  F {r['random'][force]:.1e} -> "
            f"{r['trained'][force]:.1e}  ({r['seconds']:.0f} s)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    plain = plain_config(args.size, parse_overrides(args.override))
    variants = select_variants(args.variants, plain["model"]["backbone"])
    if args.list:
        for name, est in variants.items():
            print(f"{name:24s} {est}")
        return {}
    start = time.perf_counter()
    setup = make_setup(args)
    report: dict[str, Any] = {
        "command": " ".join(["python benchmarks/equivariance_cost.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("out", "plot", "list")},
                     "base_config": SIZES[args.size][0], "backbone": plain["model"]["backbone"],
                     "atoms_per_structure": [len(a) for a in setup.structures],
                     "atoms_per_batch": [int(b.natoms.sum()) for b in setup.train_batches[:4]]},
        "variants": {},
    }
    # Plain EqV2 trains against an identical copy of itself (the timing control); that copy
    # then keeps stepping beside every variant as the plain side of each cost ratio.
    partner = Trainer.of(seeded_model(plain, args.seed), args.lr)
    report["plain"] = measure(plain, setup, partner)
    force = force_key(args.structure_set)
    print(summary_line("EquiformerV2 (control)", report["plain"], force), flush=True)
    for name, est in variants.items():
        report["variants"][name] = run_variant(est, plain, setup, partner)
        print(summary_line(name, report["variants"][name], force), flush=True)
    report["meets_both"] = [n for n, r in report["variants"].items()
                            if "skipped" not in r and meets(r, report["plain"], force)]
    report["machine"]["load_average_end"] = os.getloadavg()
    report["seconds"] = time.perf_counter() - start
    print(table(report))
    print(f"at or below EqV2's errors and <= 1.0x cost: {report['meets_both'] or 'none'}; "
          f"total {report['seconds'] / 60:.1f} min")
    if args.out:
        write_json(args.out, report)
    if args.plot:
        plot(report, args.plot)
    return report


if __name__ == "__main__":
    main()
