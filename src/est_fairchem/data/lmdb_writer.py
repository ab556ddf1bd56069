"""Write fairchem v1 LMDB datasets, atomically, without overwriting what a user made.

fairchem's ``LmdbDataset`` reads ASCII integer keys ``"0"``, ``"1"``, ... holding pickled
torch-geometric ``Data`` objects, plus an optional ``"length"`` entry.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

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


@contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` that replaces ``out`` only on success.

    Raises ``FileExistsError`` if ``out`` exists and is not empty, unless ``overwrite``; an
    interrupted or failed run leaves ``out`` exactly as it was.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} already exists and is not empty; pass --overwrite to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
