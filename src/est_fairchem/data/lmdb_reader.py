"""Read the samples of a fairchem v1 LMDB (single file or a folder of ``*.lmdb``)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterator


def lmdb_files(path: Path) -> list[Path]:
    """The LMDB files at ``path`` (a file, or a folder of ``*.lmdb``)."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.lmdb"))
    if not files:
        raise FileNotFoundError(f"no LMDB files found at {path}")
    return files


def iter_lmdb(path: Path) -> Iterator[object]:
    """Yield the pickled samples in key order ("0", "1", ...), skipping "length"."""
    import lmdb

    for file in lmdb_files(path):
        env = lmdb.open(str(file), subdir=False, readonly=True, lock=False, readahead=False)
        try:
            with env.begin() as txn:
                length = txn.get(b"length")
                count = pickle.loads(length) if length is not None else env.stat()["entries"]
                for i in range(count):
                    yield pickle.loads(txn.get(str(i).encode("ascii")))
        finally:
            env.close()
