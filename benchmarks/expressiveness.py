"""k-fold symmetric star test (paper Table 4; docs/design.md §12.2, Joshi et al. 2023 ``rotsym``).

For each fold k: two graphs, a centre atom and k spokes at unit distance in the xy-plane
(graph 1 = graph 0 rotated about z by q = 2 pi / (k + u), u ~ Uniform{1..k}). One
message-passing layer, node features sum-pooled over the graph, then a linear classifier on
all components of the pooled features; trained on the two graphs (= validation = test set).

Models and readouts (the ``readout`` strings of the output state each one precisely):

- ``est/coefficients``: one pure-EST layer (``ESTLayer``: message block + update block, no
  steerable experts, one spherical expert each, no random grid rotation), linear classifier on
  the pooled steerable coefficients of degree <= L of the layer output, ``[(L+1)^2 * C]``;
- ``est/grid``: the same layer, linear classifier on the pooled *grid* features of its update
  block (the spherical experts' output at the S sphere points, just before the inverse
  transform), ``[S * C]``;
- ``tfn/coefficients``: an e3nn Tensor Field Network layer of max degree L (Joshi et al.'s
  dojo layer: one-hot embedding -> FullyConnectedTensorProduct with the edge harmonics,
  weights from a radial MLP on a Bessel basis, sum aggregation, gate, residual), linear
  classifier on the pooled degree <= L features ``[(L+1)^2 * C]``.

Training (docs/design.md §12.2): batch size 1 shuffled, cross-entropy, Adam, ReduceLROnPlateau
on the validation accuracy (factor 0.9, patience 25, min lr 1e-5), test accuracy at the best
validation accuracy (dojo's rule ``val >= best``; test set = validation set, so it is the
best accuracy reached), seeds 0..9. Also a seed-free separability diagnostic per model: the
relative difference of the two graphs' pooled readout features at initialisation (float64).
All seeds of a setting train together (``train_seeds``: one vmapped forward, each seed with
its own Adam, scheduler and shuffling; identical to ``train_once`` per seed), in float32;
settings run in ``--workers`` processes of one thread each.

    python benchmarks/expressiveness.py --out benchmarks/results/expressiveness_cpu.json \
        --plot benchmarks/results/expressiveness_cpu.png
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, replace
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import nn
from torch.nn import functional as F

from est_fairchem.models.common.init import init_equiformer_weights
from est_fairchem.models.common.radial import BesselRadialBasis
from est_fairchem.models.pure_est.backbone import ESTLayer
from est_fairchem.sphere.wigner import wigner_d
from est_fairchem.models.pure_est.config import MessageConfig
from est_fairchem.models.pure_est.embedding import edge_harmonics
from est_fairchem.models.pure_est.message import ESTMessageBlock
from est_fairchem.models.common.est_config import ESTConfig
from est_fairchem.nn.scatter import scatter_sum
from est_fairchem.sphere.points import sphere_points
from est_fairchem.sphere.transform import SphericalTransform
from est_fairchem.testing.result_files import add_overwrite_option, refuse_existing, write_json

MODELS = (("est", "coefficients"), ("est", "grid"), ("tfn", "coefficients"))
CUTOFF = 2.0  # Bessel-basis cutoff (all edges have length 1)
NUM_BASIS = 8  # Bessel functions, as in the dojo's TFN

READOUTS = {
    "est/coefficients": (
        "one ESTLayer (pure_est, Figure 3): pre-norm ESTMessageBlock (spherical cross-attention, "
        "0 steerable / 1 spherical expert) + pre-norm ESTUpdate (spherical self-attention, "
        "0 steerable / 1 spherical expert), both with residuals, random grid rotation off; "
        "input = learned embedding of the single atom type in the l=0 row. Readout: the layer "
        "output's steerable coefficients [N, (L+1)^2, C] summed over the graph's nodes, "
        "flattened to (L+1)^2*C numbers -> nn.Linear(., 2)."),
    "est/grid": (
        "the same ESTLayer; readout: the update block's grid features (output of its spherical "
        "experts at the S Fibonacci+repulsion points, i.e. the values the inverse transform "
        "maps to the update's degree<=L coefficients) [N, S, C] summed over the graph's nodes, "
        "flattened to S*C numbers -> nn.Linear(., 2). Read by a forward hook, not a copy of the "
        "layer."),
    "tfn/coefficients": (
        "one TFN layer (dojo TensorProductConvLayer): one-hot atom type -> nn.Embedding -> "
        "C x 0e; message = o3.FullyConnectedTensorProduct(C x 0e of the sender, edge SH "
        "1x0e+...+1xL ('component' normalisation), Gate irreps) with per-edge weights from "
        "Linear-ReLU-Linear on 8 Bessel functions of |r| (cutoff 2), summed at the receiver, "
        "e3nn Gate (SiLU scalars, sigmoid gates), residual with the zero-padded input. Readout: "
        "output irreps C x (0e+1o+...+L) summed over the nodes, (L+1)^2*C numbers -> "
        "nn.Linear(., 2)."),
}


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class StarGraphs:
    """A batch of star graphs.

    Attributes:
        pos: [N, 3] positions; batch: [N] graph index of each node;
        edge_src, edge_dst: [E] sender (neighbour) and receiver (centre) of each edge;
        labels: [B] class of each graph.
    """

    pos: torch.Tensor
    batch: torch.Tensor
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    labels: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return int(self.labels.shape[0])

    def to(self, dtype: torch.dtype) -> "StarGraphs":
        return StarGraphs(self.pos.to(dtype), self.batch, self.edge_src, self.edge_dst,
                          self.labels)


def star_positions(fold: int, angle: float = 0.0) -> torch.Tensor:
    """[k+1, 3] float64: the centre at the origin and k unit spokes in the xy-plane at angles
    ``angle + 2 pi t / k``."""
    theta = angle + 2.0 * math.pi * torch.arange(fold, dtype=torch.float64) / fold
    spokes = torch.stack([torch.cos(theta), torch.sin(theta), torch.zeros_like(theta)], dim=1)
    return torch.cat([torch.zeros(1, 3, dtype=torch.float64), spokes])


def rotation_z(angle: float) -> torch.Tensor:
    """[3, 3] float64 rotation about z by ``angle``."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def draw_rotation(fold: int, data_seed: int) -> tuple[int, float]:
    """(u, q = 2 pi / (k + u)) with u ~ Uniform{1..k} from a generator seeded by
    (data_seed, k)."""
    u = random.Random(f"{data_seed}-{fold}").randint(1, fold)
    return u, 2.0 * math.pi / (fold + u)


def star_pair(fold: int, angle: float) -> list[StarGraphs]:
    """The two graphs of fold k: [graph 0 (label 0), graph 0 rotated about z by ``angle``
    (label 1)]. Edges centre <-> spokes in both directions (2k edges)."""
    pos = star_positions(fold)
    spokes = torch.arange(1, fold + 1)
    centre = torch.zeros(fold, dtype=torch.long)
    src, dst = torch.cat([spokes, centre]), torch.cat([centre, spokes])
    batch = torch.zeros(fold + 1, dtype=torch.long)
    return [StarGraphs(p, batch, src, dst, torch.tensor([label]))
            for label, p in enumerate((pos, pos @ rotation_z(angle).T))]


def collate(graphs: list[StarGraphs]) -> StarGraphs:
    """Concatenate graphs into one batch (node indices offset, ``batch`` renumbered)."""
    offsets = np.cumsum([0] + [len(g.pos) for g in graphs])
    return StarGraphs(
        torch.cat([g.pos for g in graphs]),
        torch.cat([g.batch + i for i, g in enumerate(graphs)]),
        torch.cat([g.edge_src + int(o) for g, o in zip(graphs, offsets)]),
        torch.cat([g.edge_dst + int(o) for g, o in zip(graphs, offsets)]),
        torch.cat([g.labels for g in graphs]),
    )


def edge_vectors(graphs: StarGraphs) -> torch.Tensor:
    """[E, 3] ``pos[sender] - pos[receiver]`` (fairchem's ``r_ij`` for ``[j, i]`` edges)."""
    return graphs.pos[graphs.edge_src] - graphs.pos[graphs.edge_dst]


# ----------------------------------------------------------------------------- models


class ESTStar(nn.Module):
    """One pure-EST layer with a pooled readout (see ``READOUTS``).

    Args:
        lmax: L; channels: C; num_points: S (Fibonacci lattice + 500 repulsion steps).
        readout: ``coefficients`` ([(L+1)^2 C] features) or ``grid`` ([S C] features).
    """

    def __init__(self, lmax: int, channels: int, num_points: int, readout: str) -> None:
        super().__init__()
        if readout not in ("coefficients", "grid"):
            raise ValueError(f"readout={readout!r}: expected 'coefficients' or 'grid'")
        self.lmax, self.readout = lmax, readout
        self.embedding = nn.Embedding(1, channels)
        self.radial_basis = BesselRadialBasis(NUM_BASIS, CUTOFF)
        transform = SphericalTransform(lmax, sphere_points("fibonacci", num_points, 500))
        message = ESTMessageBlock(
            lmax, channels, NUM_BASIS, [channels], "1x0e", transform,
            MessageConfig(num_steerable_experts=0, num_spherical_experts=1),
            random_grid_rotation=False)
        update = ESTConfig(num_points=num_points, num_spherical_experts=1,
                           spherical_hidden_channels=4 * channels, random_grid_rotation=False,
                           grid_frame="global").update_block(lmax, channels, [])
        self.layer = ESTLayer(lmax, channels, message, update)
        self.apply(init_equiformer_weights)
        self._grid: torch.Tensor | None = None
        update.spherical.spherical_experts.register_forward_hook(self._keep_grid)
        size = num_points if readout == "grid" else (lmax + 1) ** 2
        self.classifier = nn.Linear(size * channels, 2)

    def _keep_grid(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._grid = output  # [N, S, C]

    def node_features(self, graphs: StarGraphs) -> tuple[torch.Tensor, torch.Tensor]:
        """([N, (L+1)^2, C] layer output, [N, S, C] update grid)."""
        vec = edge_vectors(graphs)
        atoms = torch.zeros(len(graphs.pos), dtype=torch.long)
        scalars = self.embedding(atoms).to(vec.dtype)[:, None, :]  # [N, 1, C]
        x = torch.cat([scalars, scalars.new_zeros(len(atoms), (self.lmax + 1) ** 2 - 1,
                                                  scalars.shape[-1])], dim=1)
        radial = self.radial_basis(vec.norm(dim=1))
        out = self.layer(x, graphs.edge_src, graphs.edge_dst, radial,
                         edge_harmonics(self.lmax, vec), graphs.batch)
        return out, self._grid

    def pooled(self, graphs: StarGraphs) -> torch.Tensor:
        """[B, F] pooled readout features."""
        coefficients, grid = self.node_features(graphs)
        nodes = grid if self.readout == "grid" else coefficients
        return scatter_sum(nodes.flatten(1), graphs.batch, graphs.num_graphs)

    def forward(self, graphs: StarGraphs) -> torch.Tensor:
        """[B, 2] logits."""
        return self.classifier(self.pooled(graphs))


class TFNStar(nn.Module):
    """One Tensor Field Network layer (Joshi et al.'s dojo ``TensorProductConvLayer``) with a
    pooled degree <= L readout.

    Args:
        lmax: L of the edge harmonics and of the features; channels: C per degree;
        mlp_dim: hidden width of the radial MLP.
    """

    def __init__(self, lmax: int, channels: int, mlp_dim: int = 64) -> None:
        super().__init__()
        self.lmax = lmax
        self.sh_irreps = o3.Irreps.spherical_harmonics(lmax)
        self.irreps_out = (self.sh_irreps * channels).sort().irreps.simplify()
        self.embedding = nn.Embedding(1, channels)
        self.radial_basis = BesselRadialBasis(NUM_BASIS, CUTOFF)
        scalars = o3.Irreps([(m, ir) for m, ir in self.irreps_out if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in self.irreps_out if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e")
        self.gate = e3nn_nn.Gate(scalars, [F.silu], gates, [torch.sigmoid], gated)
        self.tp = o3.FullyConnectedTensorProduct(
            o3.Irreps(f"{channels}x0e"), self.sh_irreps, self.gate.irreps_in, shared_weights=False)
        self.fc = nn.Sequential(nn.Linear(NUM_BASIS, mlp_dim), nn.ReLU(),
                                nn.Linear(mlp_dim, self.tp.weight_numel))
        self.classifier = nn.Linear(self.irreps_out.dim, 2)

    def node_features(self, graphs: StarGraphs) -> torch.Tensor:
        """[N, dim(irreps_out)] features after the layer (e3nn irreps layout)."""
        vec = edge_vectors(graphs)
        h = self.embedding(torch.zeros(len(graphs.pos), dtype=torch.long)).to(vec.dtype)
        sh = o3.spherical_harmonics(self.sh_irreps, vec, normalize=True,
                                    normalization="component")
        weights = self.fc(self.radial_basis(vec.norm(dim=1)))
        messages = self.tp(h[graphs.edge_src], sh, weights)
        out = self.gate(scatter_sum(messages, graphs.edge_dst, len(graphs.pos)))
        return out + F.pad(h, (0, out.shape[-1] - h.shape[-1]))

    def pooled(self, graphs: StarGraphs) -> torch.Tensor:
        """[B, F] pooled readout features."""
        return scatter_sum(self.node_features(graphs), graphs.batch, graphs.num_graphs)

    def forward(self, graphs: StarGraphs) -> torch.Tensor:
        """[B, 2] logits."""
        return self.classifier(self.pooled(graphs))


def build_model(model: str, readout: str, lmax: int, channels: int, num_points: int,
                dtype: torch.dtype) -> nn.Module:
    """A fresh ``ESTStar`` or ``TFNStar`` in ``dtype`` (seed the RNG before calling)."""
    if model == "est":
        return ESTStar(lmax, channels, num_points, readout).to(dtype)
    if model == "tfn" and readout == "coefficients":
        return TFNStar(lmax, channels).to(dtype)
    raise ValueError(f"unknown model/readout {model}/{readout}")


def wigner_blocks(lmax: int, rotation: torch.Tensor) -> list[torch.Tensor]:
    """Real Wigner-D blocks ``D_l(R)`` [2l+1, 2l+1], l = 0..L, of e3nn's harmonics, float64,
    exact to round-off (the package's ``wigner_d``; e3nn's ``D_from_matrix`` goes through
    float32 tables unless the default dtype is float64)."""
    d = wigner_d(lmax, rotation.to(torch.float64)[None])[0]
    return [d[l * l:(l + 1) ** 2, l * l:(l + 1) ** 2] for l in range(lmax + 1)]


def rotate_readout(model: nn.Module, features: torch.Tensor, rotation: torch.Tensor
                   ) -> torch.Tensor:
    """[F] pooled coefficient features (float64) rotated by ``rotation`` [3, 3]: D(R) applied
    in the model's layout (TFN: e3nn irreps, channel-major per irrep; EST: [(L+1)^2, C])."""
    blocks = wigner_blocks(model.lmax, rotation)
    if isinstance(model, TFNStar):
        d = torch.block_diag(*[torch.kron(torch.eye(mul, dtype=torch.float64), blocks[ir.l])
                               for mul, ir in model.irreps_out])
        return d @ features
    d = torch.block_diag(*blocks)
    return (d @ features.view(d.shape[0], -1)).flatten()


# ----------------------------------------------------------------------------- diagnostics


@torch.no_grad()
def separability(model: nn.Module, pair: list[StarGraphs], angle: float) -> dict[str, float]:
    """Relative difference of the two graphs' pooled readout features (eval mode).

    Returns ``relative_difference`` = |p1 - p0| / max(|p0|, |p1|) and, for coefficient
    readouts, ``equivariance_error`` = |p1 - D(R_z(q)) p0| / |p1| (0 for an exactly
    equivariant layer: then p1 - p0 is the genuine, symmetry-allowed difference).
    """
    model.eval()
    dtype = next(model.parameters()).dtype
    p0, p1 = model.pooled(collate([g.to(dtype) for g in pair]))
    scale = max(p0.norm(), p1.norm())
    out = {"relative_difference": float((p1 - p0).norm() / scale)}
    if getattr(model, "readout", "coefficients") == "coefficients":
        rotated = rotate_readout(model, p0, rotation_z(angle))
        out["equivariance_error"] = float((p1 - rotated).norm() / p1.norm())
    return out


# ----------------------------------------------------------------------------- training


@torch.no_grad()
def accuracy(model: nn.Module, graphs: StarGraphs) -> float:
    """Accuracy (%) of ``model`` on the batch ``graphs`` (eval mode, argmax of the logits)."""
    model.eval()
    predicted = model(graphs).argmax(dim=1)
    return float((predicted == graphs.labels).double().mean() * 100.0)


def train_once(model: nn.Module, pair: list[StarGraphs], epochs: int, lr: float, seed: int
               ) -> dict[str, float]:
    """Spec §13.2 training on the two graphs (train = val = test set).

    Returns ``test_accuracy`` (test accuracy at the best validation accuracy, dojo's rule
    ``val >= best``), ``final_accuracy``, ``final_loss`` (mean of the last epoch), ``best_epoch``.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.9, patience=25, min_lr=1e-5)
    order = torch.Generator().manual_seed(seed)
    evaluation = collate(pair)
    best_val, test_acc, best_epoch, loss_sum = -1.0, 0.0, 0, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum = 0.0
        for index in torch.randperm(len(pair), generator=order).tolist():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(pair[index]), pair[index].labels)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss)
        val_acc = accuracy(model, evaluation)
        if val_acc >= best_val:
            # test set = val set and eval is deterministic: test accuracy = val accuracy
            best_val, test_acc, best_epoch = val_acc, val_acc, epoch
        scheduler.step(val_acc)
    return {"test_accuracy": test_acc, "final_accuracy": val_acc,
            "final_loss": loss_sum / len(pair), "best_epoch": best_epoch}


def diagnostics(model: str, readout: str, lmax: int, fold: int, args: argparse.Namespace
                ) -> dict[str, dict[str, float]]:
    """``separability`` of a float64 model built with seed 0, at the training point count S and,
    for EST, at each of ``args.diagnostic_points`` (same layer weights: only the grid changes),
    keyed by S (TFN: key ``"-"``)."""
    _, angle = draw_rotation(fold, args.data_seed)
    counts = [args.points, *args.diagnostic_points] if model == "est" else [args.points]
    out = {}
    for count in dict.fromkeys(counts):
        torch.manual_seed(0)
        probe = build_model(model, readout, lmax, args.channels, count, torch.float64)
        out[str(count) if model == "est" else "-"] = separability(
            probe, star_pair(fold, angle), angle)
    return out


def train_seeds(nets: list[nn.Module], pair: list[StarGraphs], epochs: int, lr: float,
                seeds: list[int]) -> list[dict[str, float]]:
    """:func:`train_once` for one model per seed, all seeds in one vectorised forward.

    Each seed keeps its own parameters, Adam optimizer, ReduceLROnPlateau scheduler and
    shuffling generator (seeded as in ``train_once``); the forward of all seeds is one
    ``torch.func.vmap`` over ``functional_call`` of ``nets[0]`` (same results as separate
    runs up to float round-off, ~5x faster on CPU, where these tiny graphs are overhead bound).
    The two graphs share their topology, so a step stacks each seed's graph positions.

    Args:
        nets: one freshly built model per seed; pair: [graph 0, graph 1]; seeds: [n].
    Returns:
        one ``train_once``-style dict per seed.
    """
    template, count = nets[0], len(nets)
    names = [name for name, _ in template.named_parameters()]
    leaves = [list(net.parameters()) for net in nets]
    optimizers = [torch.optim.Adam(ps, lr=lr, fused=True) for ps in leaves]
    schedulers = [torch.optim.lr_scheduler.ReduceLROnPlateau(
        o, mode="max", factor=0.9, patience=25, min_lr=1e-5) for o in optimizers]
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    evaluation = collate(pair)

    def logits(pos: torch.Tensor, graphs: StarGraphs, batched_pos: bool) -> torch.Tensor:
        """[n, B, 2] logits of every seed on ``graphs`` with positions ``pos``."""
        stacked = {name: torch.stack([ps[i] for ps in leaves]) for i, name in enumerate(names)}

        def one(params: dict, positions: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(template, params, (replace(graphs, pos=positions),))

        return torch.vmap(one, in_dims=(0, 0 if batched_pos else None))(stacked, pos)

    best = [-1.0] * count
    stats = [{"test_accuracy": 0.0, "best_epoch": 0} for _ in range(count)]
    for epoch in range(1, epochs + 1):
        template.train()
        perms = [torch.randperm(len(pair), generator=g).tolist() for g in orders]
        loss_sum = torch.zeros(count, dtype=torch.float64)
        for step in range(len(pair)):
            chosen = [pair[perm[step]] for perm in perms]
            for optimizer in optimizers:
                optimizer.zero_grad()
            out = logits(torch.stack([g.pos for g in chosen]), chosen[0], True)[:, 0]
            losses = F.cross_entropy(out, torch.cat([g.labels for g in chosen]),
                                     reduction="none")
            losses.sum().backward()  # seeds share no parameter: per-seed gradients
            for optimizer in optimizers:
                optimizer.step()
            loss_sum += losses.detach().double()
        template.eval()
        with torch.no_grad():
            predicted = logits(evaluation.pos, evaluation, False).argmax(dim=-1)  # [n, B]
        val_acc = ((predicted == evaluation.labels).double().mean(dim=1) * 100.0).tolist()
        for i in range(count):
            if val_acc[i] >= best[i]:  # test set = val set: test accuracy = val accuracy
                best[i] = val_acc[i]
                stats[i] = {"test_accuracy": val_acc[i], "best_epoch": epoch}
            schedulers[i].step(val_acc[i])
    return [{**stats[i], "final_accuracy": val_acc[i],
             "final_loss": float(loss_sum[i]) / len(pair)} for i in range(count)]


def run_setting(model: str, readout: str, lmax: int, fold: int, lr: float,
                args: argparse.Namespace) -> dict:
    """Train ``args.seeds`` fresh models on fold ``fold``; accuracies and diagnostics."""
    tic = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    u, angle = draw_rotation(fold, args.data_seed)
    pair = [g.to(dtype) for g in star_pair(fold, angle)]
    nets = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        nets.append(build_model(model, readout, lmax, args.channels, args.points, dtype))
    runs = train_seeds(nets, pair, args.epochs, lr, args.seeds)
    accs = np.array([r["test_accuracy"] for r in runs])
    return {"model": model, "readout": readout, "lmax": lmax, "fold": fold, "lr": lr,
            "u": u, "rotation_angle": angle,
            "accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
            "accuracies": accs.tolist(),
            "final_accuracy_mean": float(np.mean([r["final_accuracy"] for r in runs])),
            "final_loss_mean": float(np.mean([r["final_loss"] for r in runs])),
            "best_epochs": [r["best_epoch"] for r in runs],
            "separability_init_float64": diagnostics(model, readout, lmax, fold, args),
            "seconds": time.perf_counter() - tic}


def _run_task(task: tuple) -> dict:
    """Worker entry: one thread per process (the pool provides the parallelism)."""
    torch.set_num_threads(1)
    return run_setting(*task)


# ----------------------------------------------------------------------------- output


def machine() -> dict:
    return {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__}


def plot(results: list[dict], path: Path, points: int) -> None:
    """Top row: accuracy (mean +- std over seeds) against fold, one panel per model/readout,
    one line per L (and lr); bottom row: the separability diagnostic at initialisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["model"], r["readout"]) for r in results))
    folds = sorted({r["fold"] for r in results})
    lrs = sorted({r["lr"] for r in results})
    fig, axes = plt.subplots(2, len(panels), figsize=(4.8 * len(panels), 7.5), squeeze=False,
                             sharex=True)
    for column, (model, readout) in enumerate(panels):
        top, bottom = axes[0, column], axes[1, column]
        for lmax in sorted({r["lmax"] for r in results}):
            for lr_index, lr in enumerate(lrs):
                sel = sorted((r for r in results if (r["model"], r["readout"], r["lmax"], r["lr"])
                              == (model, readout, lmax, lr)), key=lambda r: r["fold"])
                if not sel:
                    continue
                x = [folds.index(r["fold"]) + 0.07 * (lmax - 2) for r in sel]
                label = f"L={lmax}" + (f", lr {lr:g}" if len(lrs) > 1 else "")
                top.errorbar(x, [r["accuracy_mean"] for r in sel],
                             yerr=[r["accuracy_std"] for r in sel], capsize=3, marker="o",
                             ls=("-", "--", ":")[lr_index % 3], color=f"C{lmax}", label=label)
                if lr_index:
                    continue
                key = str(points) if model == "est" else "-"
                diag = [r["separability_init_float64"][key] for r in sel]
                bottom.semilogy(x, [max(d["relative_difference"], 1e-18) for d in diag], "o-",
                                color=f"C{lmax}", label=f"|p1-p0|/|p|, L={lmax}")
                if "equivariance_error" in diag[0]:
                    bottom.semilogy(x, [max(d["equivariance_error"], 1e-18) for d in diag],
                                    "x:", color=f"C{lmax}", label=f"equivariance error, L={lmax}")
        top.axhline(50, color="grey", lw=0.8)
        top.set_ylim(35, 112)
        top.set_title(f"{model.upper()}, {readout} readout")
        top.set_ylabel("test accuracy at best val (%)")
        top.legend(fontsize=8, loc="lower left")
        bottom.set_ylim(1e-18, 3)
        bottom.set_ylabel("at init, float64")
        bottom.set_xticks(range(len(folds)), [str(k) for k in folds])
        bottom.set_xlabel("fold k")
        bottom.legend(fontsize=7, loc="best", ncol=2)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    fig.suptitle("k-fold symmetric star, one layer, linear classifier on pooled features")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[2, 3, 5, 10])
    parser.add_argument("--lmax", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--models", nargs="+", default=[f"{m}/{r}" for m, r in MODELS],
                        choices=[f"{m}/{r}" for m, r in MODELS])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-4],
                        help="one full run per learning rate")
    parser.add_argument("--channels", type=int, default=16, help="C per degree")
    parser.add_argument("--points", type=int, default=64, help="S sphere points of EST")
    parser.add_argument("--data-seed", type=int, default=0, help="seeds the draw of u")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--diagnostic-points", type=int, nargs="*", default=[256, 512],
                        help="extra S for the EST separability diagnostic")
    parser.add_argument("--workers", type=int, default=2, help="processes (one thread each)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    add_overwrite_option(parser)
    args = parser.parse_args(argv)
    refuse_existing(parser, [args.out, args.plot], args.overwrite)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    tasks = [(*name.split("/"), lmax, fold, lr, args) for lr in args.lr for name in args.models
             for lmax in args.lmax for fold in args.folds]
    if any(name.startswith("est") for name in args.models):
        for count in {args.points, *args.diagnostic_points}:
            sphere_points("fibonacci", count, 500)  # cached; forked workers inherit it
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = []
        for row in pool.map(_run_task, tasks):
            results.append(row)
            sep = row["separability_init_float64"][str(args.points) if row["model"] == "est"
                                                   else "-"]
            print(f"lr {row['lr']:g} {row['model']}/{row['readout']:<12} L={row['lmax']} "
                  f"k={row['fold']:<3} acc {row['accuracy_mean']:5.1f} +- "
                  f"{row['accuracy_std']:4.1f}  final {row['final_accuracy_mean']:5.1f}  "
                  f"rel.diff {sep['relative_difference']:.1e}  "
                  f"eq.err {sep.get('equivariance_error', float('nan')):.1e}  "
                  f"({row['seconds']:.1f} s)", flush=True)
    report = {
        "command": "python benchmarks/expressiveness.py " + " ".join(sys.argv[1:] if argv is None
                                                                    else argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "training": ("batch size 1 shuffled, cross-entropy, Adam, ReduceLROnPlateau(mode=max on "
                     "val accuracy, factor 0.9, patience 25, min_lr 1e-5); train = val = test = "
                     "the 2 graphs; test accuracy at the best val accuracy (val >= best, as in "
                     "the dojo), mean +- std (population) over seeds"),
        "readout": READOUTS,
        "diagnostic": ("separability_init_float64[S]: one model per (model, readout, L, fold) "
                       "built with torch.manual_seed(0) in float64, eval mode, with S sphere "
                       "points (EST; same layer weights for every S; TFN: key '-'); "
                       "relative_difference = |p1 - p0| / max(|p0|, |p1|) of the pooled readout "
                       "features of the two graphs; equivariance_error = |p1 - D(R_z(q)) p0| / "
                       "|p1| (coefficient readouts)"),
        "total_seconds": time.perf_counter() - start,
        "results": results,
    }
    print(f"total {report['total_seconds']:.0f} s")
    if args.out:
        write_json(args.out, report)
    if args.plot:
        plot(results, args.plot, args.points)


if __name__ == "__main__":
    main()
