"""Output folders that appear whole or not at all, and never at the cost of a user's files.

:func:`atomic_output_dir` is how every dataset writer of the package (``prepare-qm9``,
``make-demo-data``) makes its folder:

- **checked before any work** (:func:`check_output_folder`): the path is resolved first
  (``--out .``, ``..``, symlinks), and refused when it is an existing file, the file-system
  root, equal to or a folder above one of the command's inputs (``protect``: the QM9 release,
  its exclusion list), or a non-empty folder without ``overwrite``. ``overwrite`` replaces only
  a folder this package wrote (it holds the writer's ``marker`` file, e.g. ``metadata.json``),
  never one holding other files, nor the folder the command runs in or one above it;
- **written beside it** in a hidden ``.<name>.partial-<pid>-<random>`` folder whose owner holds
  an exclusive ``flock`` on ``.owner.lock`` inside it, then moved in place by one rename
  (an existing empty folder keeps its inode: the entries are moved into it, the marker last);
- **cleaned up** on any error, on Ctrl-C and on SIGTERM (the ``est-fairchem`` command turns
  SIGTERM into :class:`Interrupted`); signals are held back during the final renames. A run
  killed outright (SIGKILL, power loss) leaves its partial folder; the next run for the same
  output removes every partial folder whose lock no live process holds, and finishes or undoes
  a replacement that was cut between its two renames;
- **readable as the umask says**: the partial folder is made with mode ``0o777 & ~umask``
  (``tempfile.mkdtemp`` alone makes it ``0o700``, which colleagues on a cluster cannot read).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from est_fairchem.errors import InputError

LOCK_NAME = ".owner.lock"
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Interrupted(BaseException):
    """SIGTERM (or another signal) received: unwinds like ``KeyboardInterrupt`` so that every
    ``finally`` and cleanup runs. ``signum`` is the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum: int, _frame: object) -> None:
    """A signal handler that raises :class:`Interrupted`."""
    raise Interrupted(signum)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_folder(out: Path, protect: Iterable[Path | None] = (),
                        overwrite: bool = False, marker: str | None = None) -> Path:
    """Resolve ``out`` and refuse it (``InputError``) where writing it could lose a user's
    files or cannot succeed; see the module doc. Returns the resolved path."""
    given = Path(out)
    resolved = given.expanduser().resolve()
    if resolved.parent == resolved:
        raise InputError(f"--out {given}: the file-system root cannot be an output folder")
    if resolved.exists() and not resolved.is_dir():
        raise InputError(f"--out {given}: is an existing file; expected a folder to create")
    for source in protect:
        if source is None:
            continue
        source_resolved = Path(source).expanduser().resolve()
        if _is_within(source_resolved, resolved):
            where = "is" if source_resolved == resolved else "contains"
            raise InputError(
                f"--out {given} {where} the input {source}; writing it would delete the input: "
                "choose an output folder outside it")
    if resolved.is_dir() and any(p.name != LOCK_NAME for p in resolved.iterdir()):
        if not overwrite:
            raise InputError(f"{given} already exists and is not empty; pass --overwrite to "
                             "replace it")
        if marker is not None and not (resolved / marker).is_file():
            raise InputError(
                f"{given} holds files this command did not write (no {marker}); --overwrite "
                "replaces only a folder it made: remove it yourself or choose another --out")
        if _is_within(Path.cwd().resolve(), resolved):
            raise InputError(f"--out {given}: is the folder this command runs in (or one "
                             "above it); replacing it would delete where you are working")
    return resolved


def check_output_file(out: Path, protect: Iterable[Path | None] = (),
                      overwrite: bool = False) -> Path:
    """Resolve ``out`` (a file to write) and refuse it (``InputError``) when it is a folder,
    when a folder above it is a file, when it is one of the inputs ``protect``, or when it
    exists without ``overwrite``. Returns the resolved path."""
    given = Path(out)
    resolved = given.expanduser().resolve()
    if resolved.is_dir():
        raise InputError(f"--out {given}: is a folder; expected the path of a file to write")
    blocking = next((p for p in resolved.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"--out {given}: {blocking} is a file, not a folder")
    for source in protect:
        if source is not None and Path(source).expanduser().resolve() == resolved:
            raise InputError(f"--out {given} is the input {source}; choose another file")
    if resolved.exists() and not overwrite:
        raise InputError(f"{given} already exists; pass --overwrite to replace it")
    return resolved


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _lock_is_free(lock_file: Path) -> bool:
    """True when no process holds the ``flock`` of ``lock_file`` (its owner has ended)."""
    try:
        handle = open(lock_file, "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str) -> int | None:
    """The pid in ``.<out>.partial-<pid>-<random>`` / ``.<out>.old-<pid>``, or None."""
    head = name.rsplit(".", 1)[-1].split("-")
    return int(head[1]) if len(head) > 1 and head[1].isdigit() else None


def _siblings(out: Path, kind: str) -> list[Path]:
    """The ``.<out>.<kind>-*`` entries beside ``out``."""
    prefix = f".{out.name}.{kind}-"
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(prefix))


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove the partial folders of ``out`` that no live process owns; finish or undo a
    replacement cut between its renames (``.<out>.old-<pid>`` of an ended process: removed
    when ``out`` exists, renamed back to ``out`` when it does not). Returns what was removed."""
    removed = []
    for partial in _siblings(out, "partial"):
        lock = partial / LOCK_NAME
        owner = _owner_pid(partial.name)
        stale = _lock_is_free(lock) if lock.exists() else (owner is None or not _pid_alive(owner))
        if stale and partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    for old in _siblings(out, "old"):
        owner = _owner_pid(old.name)
        if owner is not None and _pid_alive(owner):
            continue
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
        else:
            os.replace(old, out)
    return removed


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back so renames are not cut halfway: their Python handlers are
    swapped for one that notes the signal, and on exit the first one noted is raised again for
    the handlers the block found. Python runs signal handlers in the main thread whichever
    thread the kernel gave the signal to, so this holds in a process with other threads (torch's,
    a test runner's), where a thread's signal mask does not. Outside the main thread, where no
    handler can be set, nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: noted.append(signum))
                for signum in _HELD_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if noted:
            signal.raise_signal(noted[0])


def _move_into(tmp: Path, out: Path, marker: str | None) -> None:
    """Move the entries of ``tmp`` into the existing empty folder ``out``, ``marker`` last."""
    entries = sorted(tmp.iterdir(), key=lambda p: p.name == marker)
    for entry in entries:
        if entry.name != LOCK_NAME:
            os.replace(entry, out / entry.name)
    shutil.rmtree(tmp, ignore_errors=True)


def _commit(tmp: Path, out: Path, marker: str | None) -> None:
    if out.is_dir() and not any(p.name != LOCK_NAME for p in out.iterdir()):
        stale_lock = out / LOCK_NAME
        if stale_lock.exists():
            stale_lock.unlink()
        _move_into(tmp, out, marker)
        return
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    lock = out / LOCK_NAME
    if lock.exists():
        lock.unlink()


@contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False, protect: Iterable[Path | None] = (),
                      marker: str | None = None) -> Iterator[Path]:
    """Yield a partial folder beside ``out`` that becomes ``out`` only on success.

    Checks ``out`` first (:func:`check_output_folder`: ``InputError`` for an existing file, an
    input inside it, a non-empty folder without ``overwrite``...), removes stale partial
    folders of ``out``, and on any exception (``KeyboardInterrupt`` and :class:`Interrupted`
    included) removes the partial folder and leaves ``out`` exactly as it was. A signal that
    arrives during the final renames is delivered after them: ``out`` is then complete, and the
    exception carries it as ``written_in_full``.
    """
    out = check_output_folder(out, protect=protect, overwrite=overwrite, marker=marker)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out)
    tmp: Path | None = None
    lock = None
    committed = False
    try:
        with _signals_held():
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-",
                                        dir=out.parent))
            os.chmod(tmp, 0o777 & ~_current_umask())
            lock = open(tmp / LOCK_NAME, "wb")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield tmp
        with _signals_held():
            _commit(tmp, out, marker)
            committed = True
    except BaseException as error:
        if tmp is not None and not committed:
            shutil.rmtree(tmp, ignore_errors=True)
        elif committed:  # a signal held back during the renames arrives now: out is complete
            error.written_in_full = out
        raise
    finally:
        if lock is not None:
            lock.close()
