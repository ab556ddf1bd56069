"""fairchem's ``LmdbDataset`` with the pre-flight check of :mod:`est_fairchem.data.preflight`.

Configs name it by its dotted path, which fairchem's registry imports like any other class
(``format`` of ``dataset.train``, inherited by the val, test and relax splits)::

    dataset:
      train:
        format: est_fairchem.data.CheckedLmdbDataset
        src: data/demo/s2ef/train

A missing path, a folder without ``*.lmdb``, a file that is not an LMDB, a truncated LMDB or
one with 0 records then fails with one line naming the file and the problem
(:class:`est_fairchem.errors.InputError`) instead of fairchem's assertion, lmdb's error, a
sampler's division by zero or a SIGBUS. Normalizer values written in the config are checked
against a sample of the training targets (:mod:`est_fairchem.data.normalizer_check`). Valid
data are read exactly as by ``LmdbDataset``.
"""

from __future__ import annotations

from pathlib import Path

from fairchem.core.datasets.lmdb_dataset import LmdbDataset

from est_fairchem.data.normalizer_check import check_written_normalizers
from est_fairchem.data.preflight import check_lmdb_dataset


class CheckedLmdbDataset(LmdbDataset):
    """``LmdbDataset`` that checks every ``src`` path first (:func:`check_lmdb_dataset`)."""

    def __init__(self, config: dict) -> None:
        src = config.get("src")
        paths = [src] if isinstance(src, (str, Path)) else list(src or ())
        for path in paths:
            check_lmdb_dataset(path)
        super().__init__(config)
        check_written_normalizers(self, config.get("transforms"),
                                  ", ".join(str(path) for path in paths))

    def __del__(self) -> None:
        if hasattr(self, "path"):  # LmdbDataset.__del__ needs a finished __init__
            super().__del__()
