"""Pre-flight checks of fairchem datasets: one line naming the file and the problem, raised
before fairchem meets it with a traceback of its own (or a crash: reading a truncated LMDB's
missing pages kills the process with SIGBUS).

:func:`check_lmdb_dataset` checks what fairchem's ``LmdbDataset`` reads (a ``*.lmdb`` file, or
a folder of them; ASCII integer keys ``"0"``, ``"1"``, ... of pickled records and an optional
``"length"`` entry). A batch whose graph has no edge is refused by the backbones
(:func:`est_fairchem.models.common.input_checks.check_graph_has_edges`).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from est_fairchem.errors import InputError


def lmdb_files(path: Path | str) -> list[Path]:
    """The LMDB files fairchem reads for ``src: path``: the file itself, or a folder's
    ``*.lmdb`` files (sorted). Raises :class:`InputError` if there are none."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if not path.is_dir():
        raise InputError(f"{path}: neither a file nor a folder")
    files = sorted(path.glob("*.lmdb"))
    if not files:
        raise InputError(f"{path}: no *.lmdb file in this folder")
    return files


def count_lmdb_records(path: Path) -> int:
    """Records of one LMDB file (its ``"length"`` entry, else its number of keys), after
    checking that it is a whole LMDB file whose first and last records exist and unpickle.

    Raises :class:`InputError` naming ``path``: not an LMDB file, truncated (fewer bytes than
    its pages need), or a missing or unreadable record.
    """
    import lmdb

    if path.is_dir():
        raise InputError(f"{path}: a folder, not an LMDB file (fairchem opens *.lmdb as files)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: an empty file (0 bytes), not an LMDB file")
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False,
                        max_readers=1)
    except lmdb.Error as err:
        reason = _one_line(err).removeprefix(f"{path}: ")  # lmdb names the file too
        if "already open" in reason:  # py-lmdb opens a file once per process
            raise InputError(f"{path}: already opened by another split of this config; "
                             "fairchem's LmdbDataset can open a file once per process, so "
                             "give each split (train, val, test) its own LMDB") from None
        raise InputError(f"{path}: not an LMDB file (lmdb: {reason})") from None
    try:
        _check_not_truncated(path, env)
        with env.begin() as txn:
            has_length = txn.get(b"length") is not None
            records = _record(path, txn, "length") if has_length else env.stat()["entries"]
            if not isinstance(records, int) or records < 0:
                raise InputError(f"{path}: its 'length' entry is {records!r}, not a count")
            for index in {0, records - 1} if records > 0 else ():
                if txn.get(str(index).encode("ascii")) is None:
                    raise InputError(f"{path}: no record under key '{index}' (fairchem reads "
                                     f"the keys '0' ... '{records - 1}' of its {records} records)")
                _record(path, txn, str(index))
    finally:
        env.close()
    return int(records)


def check_lmdb_dataset(path: Path | str) -> int:
    """Check a fairchem LMDB dataset (``src``: an ``.lmdb`` file or a folder of them) and
    return its number of records; raise :class:`InputError` with one line naming the file and
    the problem (see :func:`lmdb_files`, :func:`count_lmdb_records`, or 0 records in all)."""
    files = lmdb_files(path)
    total = sum(count_lmdb_records(file) for file in files)
    if total == 0:
        if len(files) == 1:
            raise InputError(f"{files[0]}: the LMDB holds 0 records")
        raise InputError(f"{path}: its {len(files)} LMDB files hold 0 records")
    return total


def first_record(path: Path | str) -> Any:
    """The first record (key ``"0"``) of the first LMDB file of ``src: path`` (checked)."""
    import lmdb

    file = lmdb_files(path)[0]
    env = lmdb.open(str(file), subdir=False, readonly=True, lock=False, readahead=False,
                    max_readers=1)
    try:
        with env.begin() as txn:
            return _record(file, txn, "0")
    finally:
        env.close()


def check_key_mapping(path: Path | str, key_mapping: dict[str, Any] | None) -> None:
    """Raise :class:`InputError` when ``key_mapping`` renames a key the records of ``path``
    lack although they hold labels (``y`` or ``y_relaxed``, fairchem's test): fairchem skips
    such a key in silence (it expects test data without labels there) and stops later with a
    bare ``KeyError`` of the target's name."""
    if not key_mapping:
        return
    from fairchem.core.common.utils import pyg2_data_transform
    from torch_geometric.data import Data

    record = first_record(path)
    if isinstance(record, Data):
        keys = set(pyg2_data_transform(record).keys())
    elif isinstance(record, dict):
        keys = set(record)
    else:
        return  # not a record fairchem's LMDB datasets read: their own error follows
    missing = [key for key in key_mapping if key not in keys]
    if missing and keys & {"y", "y_relaxed"}:
        key = missing[0]
        raise InputError(
            f"{path}: key_mapping renames {key!r} to {key_mapping[key]!r}, but the records "
            f"hold no {key!r}; they hold {sorted(keys)} (key_mapping: {{key in the records: "
            "name the config uses}})")


def check_lmdb_config(config: dict[str, Any]) -> None:
    """Check every ``src`` path of a dataset config (:func:`check_lmdb_dataset`) and its
    ``key_mapping`` (:func:`check_key_mapping`)."""
    src = config.get("src")
    for path in [src] if isinstance(src, (str, Path)) else list(src or ()):
        check_lmdb_dataset(path)
        check_key_mapping(path, config.get("key_mapping"))


def _check_not_truncated(path: Path, env: Any) -> None:
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = path.stat().st_size
    if size < needed:
        raise InputError(f"{path}: truncated LMDB file ({size} bytes; its pages need {needed}: "
                         "an interrupted copy or download?)")


def _record(path: Path, txn: Any, key: str) -> Any:
    """The unpickled value under ``key`` (which exists)."""
    try:
        return pickle.loads(txn.get(key.encode("ascii")))
    except Exception as err:  # noqa: BLE001 (any unpickling failure means the same)
        raise InputError(f"{path}: the entry '{key}' does not unpickle "
                         f"({type(err).__name__}: {_one_line(err)})") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
