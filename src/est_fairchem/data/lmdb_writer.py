"""Write fairchem v1 LMDB datasets (into the folders of :mod:`est_fairchem.data.output_folder`).

fairchem's ``LmdbDataset`` reads ASCII integer keys ``"0"``, ``"1"``, ... holding pickled
torch-geometric ``Data`` objects, plus an optional ``"length"`` entry.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterable

from est_fairchem.data.output_folder import atomic_output_dir  # noqa: F401 (re-exported)

_MAP_SIZE = 1 << 36  # 64 GiB of address space; the file grows only as written


def write_lmdb(path: Path, samples: Iterable[object]) -> int:
    """Write ``samples`` to a new single-file LMDB at ``path``; return how many were written."""
    import lmdb

    env = lmdb.open(str(path), map_size=_MAP_SIZE, subdir=False, meminit=False, map_async=True)
    count = 0
    try:
        with env.begin(write=True) as txn:
            for count, sample in enumerate(samples, start=1):
                txn.put(str(count - 1).encode("ascii"), pickle.dumps(sample, protocol=-1))
            txn.put(b"length", pickle.dumps(count, protocol=-1))
        env.sync()
    finally:
        env.close()
    lock = Path(f"{path}-lock")
    if lock.exists():
        lock.unlink()
    return count
