"""Equivariance measurements shared by the tests, benchmarks and tools."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from est_fairchem.sphere.rotation import random_rotation_matrices
from est_fairchem.sphere.wigner import wigner_d


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build and run in ``dtype``: the models make their fixed buffers (transform matrices,
    grids; EquiformerV2's tensors) in the default dtype's precision."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """mean|actual - expected| / mean|expected| (0 when both vanish)."""
    scale = expected.abs().mean()
    diff = (actual - expected).abs().mean()
    if scale == 0:
        return float(diff)
    return float(diff / scale)


def rotate_steerable(x: torch.Tensor, rotation: torch.Tensor, lmax: int) -> torch.Tensor:
    """Apply D(R) to steerable features [N, (L+1)^2, C] (e3nn convention); R is [3, 3]."""
    wigner = wigner_d(lmax, rotation[None].to(torch.float64))[0].to(x.dtype)
    return torch.einsum("kj,njc->nkc", wigner, x)


def steerable_rotation_error(function, x: torch.Tensor, rotation: torch.Tensor, lmax: int,
                             seed: int | None = None) -> float:
    """``relative_error(function(D x), D function(x))`` for steerable features
    ``[N, (L+1)^2, C] -> [N, (L+1)^2, C]``; with ``seed``, torch's RNG is seeded before each
    call, so both draw the same random grid rotation (training mode). The feature-level
    rotation check of the tests and ``benchmarks/equivariance.py``."""
    if seed is not None:
        torch.manual_seed(seed)
    turned = function(rotate_steerable(x, rotation, lmax))
    if seed is not None:
        torch.manual_seed(seed)
    return relative_error(turned, rotate_steerable(function(x), rotation, lmax))


def random_rotation(generator: torch.Generator | None = None) -> torch.Tensor:
    """A Haar-random rotation [3, 3] (float64): from ``generator``, or from torch's global RNG
    (e3nn's ``rand_matrix``) when None."""
    from e3nn import o3

    if generator is None:
        return o3.rand_matrix(dtype=torch.float64)
    return random_rotation_matrices(1, torch.float64, "cpu", generator)[0]


def random_rotations(count: int, seed: int) -> torch.Tensor:
    """[count, 3, 3] Haar-random float64 rotations drawn from ``seed`` (e3nn's ``rand_matrix``),
    leaving torch's global RNG as it was."""
    from e3nn import o3

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    rotations = o3.rand_matrix(count, dtype=torch.float64)
    torch.random.set_rng_state(state)
    return rotations


def rotation_changes(predict, atoms, vectors: tuple[str, ...] = (), rotations: int = 3,
                     generator: torch.Generator | None = None, tensors: tuple[str, ...] = ()
                     ) -> dict[str, list[tuple[float, float]]]:
    """Per output of ``predict(atoms) -> {name: tensor}``, the (relative, largest absolute)
    change under each of ``rotations`` random rotations of the structure and its cell:
    invariants compared as they are, outputs named in ``vectors`` ([N, 3]) or ``tensors``
    ([B, 3, 3], e.g. stress) with the reference rotated. The one rotation check of the tests,
    ``est-fairchem check-equivariance`` and the shared backbone suite."""
    from est_fairchem.testing.structures import rotated

    reference = predict(atoms)
    changes: dict[str, list[tuple[float, float]]] = {name: [] for name in reference}
    for _ in range(rotations):
        rotation = random_rotation(generator)
        turned = predict(rotated(atoms, rotation.numpy()))
        for name, change in output_changes(reference, turned, rotation, vectors,
                                           tensors).items():
            changes[name].append(change)
    return changes


def output_changes(reference: dict[str, torch.Tensor], turned: dict[str, torch.Tensor],
                   rotation: torch.Tensor, vectors: tuple[str, ...] = (),
                   tensors: tuple[str, ...] = ()) -> dict[str, tuple[float, float]]:
    """(relative, largest absolute) change of each output of the structure turned by
    ``rotation`` R [3, 3] against the ``reference`` outputs: invariants compared as they are,
    outputs named in ``vectors`` ([N, 3]) with the reference rotated (v R^T), those in
    ``tensors`` ([B, 3, 3]) as rank-2 tensors (R s R^T)."""
    changes = {}
    for name, expected in reference.items():
        if name in vectors:
            expected = expected @ rotation.to(expected.dtype).T
        elif name in tensors:
            turn = rotation.to(expected.dtype)
            expected = turn @ expected @ turn.T
        changes[name] = (relative_error(turned[name], expected),
                         float((turned[name] - expected).abs().max()))
    return changes


def rotation_errors(predict, atoms, vectors: tuple[str, ...] = (), rotations: int = 3,
                    seed: int = 5, tensors: tuple[str, ...] = ()) -> dict[str, float]:
    """The largest relative change of each output under ``rotations`` seeded random rotations
    (:func:`rotation_changes`)."""
    generator = torch.Generator().manual_seed(seed)
    changes = rotation_changes(predict, atoms, vectors, rotations, generator, tensors)
    return {name: max(relative for relative, _ in values) for name, values in changes.items()}
