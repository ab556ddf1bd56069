"""Errors that mean "the user gave something that is not what was expected".

The ``est-fairchem`` command prints them as one line naming the file, key or value and exits
with 2 (a usage error); the traceback is shown only with ``--debug`` or
``EST_FAIRCHEM_DEBUG=1``. They subclass ``ValueError`` so library callers that already catch
``ValueError`` keep working.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A file, key or value given by the user is not what was expected (one line, exit 2)."""


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path``; ``FileNotFoundError("{what} not found: {path}")`` when it is not
    a file (one wording for every command, also before torch and fairchem are imported)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path
