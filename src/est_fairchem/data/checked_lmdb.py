"""fairchem's ``LmdbDataset`` (and ``OC22LmdbDataset``) with the pre-flight check of :mod:`est_fairchem.data.preflight`.

Configs name it by its dotted path, which fairchem's registry imports like any other class
(``format`` of ``dataset.train``, inherited by the val, test and relax splits)::

    dataset:
      train:
        format: est_fairchem.data.CheckedLmdbDataset
        src: data/demo/s2ef/train

A missing path, a folder without ``*.lmdb``, a file that is not an LMDB, a truncated LMDB,
one with 0 records or a ``key_mapping`` naming a key the labelled records lack then fails with
one line naming the file and the problem (:class:`est_fairchem.errors.InputError`) instead of
fairchem's assertion, lmdb's error, a sampler's division by zero or a SIGBUS. Normalizer
values written in the config are checked against a sample of the training targets
(:mod:`est_fairchem.data.normalizer_check`). Valid data are read exactly as by
``LmdbDataset``.
"""

from __future__ import annotations

from pathlib import Path

from fairchem.core.datasets.lmdb_dataset import LmdbDataset
from fairchem.core.datasets.oc22_lmdb_dataset import OC22LmdbDataset

from est_fairchem.data.normalizer_check import check_written_normalizers
from est_fairchem.data.preflight import check_lmdb_config


def _sources(config: dict) -> str:
    src = config.get("src")
    return ", ".join(str(path) for path in ([src] if isinstance(src, (str, Path)) else src or ()))


class CheckedLmdbDataset(LmdbDataset):
    """``LmdbDataset`` that checks every ``src`` path and the ``key_mapping`` first
    (:func:`check_lmdb_config`)."""

    def __init__(self, config: dict) -> None:
        check_lmdb_config(config)
        super().__init__(config)
        check_written_normalizers(self, config.get("transforms"), _sources(config))

    def __del__(self) -> None:
        if hasattr(self, "path"):  # LmdbDataset.__del__ needs a finished __init__
            super().__del__()


class CheckedOC22LmdbDataset(OC22LmdbDataset):
    """fairchem's ``oc22_lmdb`` format (OC22's total energies as ``y``, forces as ``force``)
    with the same checks as :class:`CheckedLmdbDataset`: a ``key_mapping`` naming a key the
    records lack is one line naming it and the keys they hold, not a bare ``KeyError``."""

    def __init__(self, config: dict) -> None:
        check_lmdb_config(config)
        super().__init__(config)
