"""Paired comparisons over seeds: the difference, its 95 % interval, p, and Holm's correction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """``model - baseline`` over the seeds both ran (absolute and relative to the baseline)."""

    seeds: list[int]
    mean: float  # mean of the per-seed differences (units of the error)
    low: float  # 95 % confidence interval of that mean (Student t)
    high: float
    relative_mean: float  # mean of model / baseline - 1 per seed
    relative_low: float
    relative_high: float
    p: float  # two-sided paired t-test
    p_holm: float = math.nan


def _t_interval(values: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, 95 % interval and two-sided p (against 0) of ``values`` (Student t)."""
    from scipy import stats

    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sem = float(values.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * sem
    p = 1.0 if sem == 0 and mean == 0 else (
        0.0 if sem == 0 else float(2 * stats.t.sf(abs(mean) / sem, n - 1)))
    return mean, mean - half, mean + half, p


def paired_difference(model: dict[int, float], baseline: dict[int, float]) -> PairedDifference:
    """Compare two models' errors by seed (``seed -> error``); only common seeds count."""
    seeds = sorted(set(model) & set(baseline))
    ours = np.array([model[s] for s in seeds])
    theirs = np.array([baseline[s] for s in seeds])
    mean, low, high, p = _t_interval(ours - theirs)
    relative, relative_low, relative_high, _ = _t_interval(ours / theirs - 1)
    return PairedDifference(seeds, mean, low, high, relative, relative_low, relative_high, p)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order), NaN entries left out of the family."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def seeds_needed(differences: np.ndarray, effect: float, power: float = 0.8) -> int | None:
    """Paired seeds for a two-sided 5 % t-test to detect a mean difference ``effect`` with
    ``power``, at the spread of the observed per-seed ``differences`` (normal approximation)."""
    from scipy import stats

    if len(differences) < 2 or effect == 0:
        return None
    sd = float(np.std(differences, ddof=1))
    z = stats.norm.ppf(0.975) + stats.norm.ppf(power)
    return max(2, math.ceil((z * sd / effect) ** 2))


def bootstrap_relative_difference(model: dict[int, np.ndarray], reference: dict[int, np.ndarray],
                                  draws: int = 4000, seed: int = 0) -> dict[str, float] | None:
    """95 % percentile interval of ``MAE(model) / MAE(reference) - 1`` when both the seeds and
    the test structures are drawn again: each draw takes the common seeds with replacement and
    one draw of the structures (shared by both models and every seed, which all predict the
    same test set), so the interval also carries the test set's own sampling, which the
    interval over seeds takes as fixed.

    Args:
        model, reference: seed -> absolute errors, shape ``[n_structures]``, same order.
    Returns:
        ``{"relative_mean", "relative_low", "relative_high", "draws"}`` (the mean on the data
        as measured), or ``None`` with fewer than two common seeds.
    """
    seeds = sorted(set(model) & set(reference))
    if len(seeds) < 2:
        return None
    ours = np.stack([model[s] for s in seeds])  # [seeds, structures]
    theirs = np.stack([reference[s] for s in seeds])
    if ours.shape != theirs.shape:
        raise ValueError(f"absolute errors of shapes {ours.shape} and {theirs.shape}: "
                         "expected the same test structures for both models")
    rng = np.random.default_rng(seed)
    n_seeds, n_structures = ours.shape
    ratios = np.empty(draws)
    for i in range(draws):
        rows = rng.integers(n_seeds, size=n_seeds)[:, None]
        columns = rng.integers(n_structures, size=n_structures)[None, :]
        ratios[i] = ours[rows, columns].mean() / theirs[rows, columns].mean() - 1
    low, high = np.percentile(ratios, [2.5, 97.5])
    return {"relative_mean": float(ours.mean() / theirs.mean() - 1),
            "relative_low": float(low), "relative_high": float(high), "draws": draws}
