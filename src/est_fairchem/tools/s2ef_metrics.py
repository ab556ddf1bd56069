"""S2EF metrics of a fairchem predictions file against the labels of an LMDB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from est_fairchem.data.lmdb_reader import iter_lmdb


def s2ef_mae(predictions: Path, dataset: Path) -> dict[str, float]:
    """Energy MAE (eV) and force MAE (eV/Å, free atoms, per component) of ``predictions``.

    ``predictions`` is fairchem's ``s2ef_predictions.npz`` (ids "sid_fid", energies, forces of
    free atoms concatenated in the order of ``chunk_idx``).
    """
    pred = np.load(predictions)
    ids = [str(i) for i in pred["ids"]]
    energy = pred["energy"].reshape(-1).astype(np.float64)
    forces = np.split(pred["forces"].astype(np.float64), pred["chunk_idx"])
    index = {sample_id: k for k, sample_id in enumerate(ids)}
    energy_err, force_err = [], []
    for sample in iter_lmdb(dataset):
        key = f"{sample.sid}_{sample.fid}"
        if key not in index:
            raise KeyError(f"{predictions} has no prediction for {key} of {dataset}")
        k = index[key]
        energy_err.append(abs(energy[k] - float(sample.energy)))
        free = np.asarray(sample.fixed) == 0
        target = np.asarray(sample.forces, dtype=np.float64)[free]
        force_err.append(np.abs(forces[k] - target).ravel())
    return {
        "energy_mae": float(np.mean(energy_err)),
        "forces_mae": float(np.mean(np.concatenate(force_err))),
        "samples": len(energy_err),
    }
