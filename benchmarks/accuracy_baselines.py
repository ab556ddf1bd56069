"""The floor every model of the accuracy study must beat: per-element linear references alone.

Both studies fit per-element energies on the training split (fairchem's
``element_references: fit``); a model that learns nothing predicts exactly them. This is the
test MAE of that prediction, fitted by least squares on the same training rows the models see:
energy per atom on ``oxides.db`` (meV/atom), U0 atomization energy on QM9 (meV). HOMO has no
references; its floor is the training mean (:func:`qm9_mean_floor`, meV).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accuracy_configs import OXIDE_SPLITS, OXIDES_DB, Size


def _fit_and_score(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   per_atom: bool) -> float:
    """MAE x 1000 on ``test`` of a least-squares fit on ``train``; each is (counts [n, 100]
    of each element per structure, energy [n] in eV)."""
    weights, *_ = np.linalg.lstsq(train[0], train[1], rcond=None)
    error = test[0] @ weights - test[1]
    if per_atom:
        error = error / test[0].sum(axis=1)
    return float(1000.0 * np.mean(np.abs(error)))


def _counts(numbers: list[np.ndarray]) -> np.ndarray:
    return np.stack([np.bincount(z, minlength=100)[:100] for z in numbers]).astype(float)


def oxides_floor(split: str = "test") -> float:
    """Energy-per-atom MAE (meV/atom) on ``split`` of references fitted on the training
    polymorphs."""
    from ase.db import connect

    db = connect(str(OXIDES_DB))

    def rows(name: str) -> tuple[np.ndarray, np.ndarray]:
        found = list(db.select(OXIDE_SPLITS[name]))
        return _counts([row.numbers for row in found]), np.array([row.energy for row in found])

    return _fit_and_score(rows("train"), rows(split), per_atom=True)


def _qm9_split(qm9: Path, name: str, first_n: int | None,
               target: str) -> tuple[np.ndarray, np.ndarray]:
    """(element counts [n, 100], ``target`` [n] in eV) of the first ``first_n`` molecules."""
    from est_fairchem.data import CheckedLmdbDataset

    dataset = CheckedLmdbDataset({"src": str(qm9 / name)})
    rows = [dataset[i] for i in range(min(first_n or len(dataset), len(dataset)))]
    return (_counts([row.atomic_numbers.long().numpy() for row in rows]),
            np.array([float(getattr(row, target)) for row in rows]))


def qm9_u0_floor(qm9: Path, size: Size) -> float:
    """Test U0-atomization MAE (meV) of references fitted on the study's training molecules."""
    return _fit_and_score(_qm9_split(qm9, "train", size.qm9_train, "u0_atomization"),
                          _qm9_split(qm9, "test", size.qm9_test, "u0_atomization"),
                          per_atom=False)


def qm9_mean_floor(qm9: Path, size: Size, target: str) -> float:
    """Test MAE (meV) of predicting the mean of ``target`` (eV) over the training molecules."""
    _, train = _qm9_split(qm9, "train", size.qm9_train, target)
    _, test = _qm9_split(qm9, "test", size.qm9_test, target)
    return float(1000.0 * np.mean(np.abs(test - train.mean())))
