"""Output files of the benchmark scripts: never replace an existing file unless asked.

A benchmark can run for half an hour, so an output path that is already taken is refused when
the command line is read, before any work, and the JSON is written atomically at the end (a
run stopped while writing leaves the old file or none, never a truncated one).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Iterable


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: allow ``--out`` / ``--plot`` to replace existing files."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing --out / --plot files (refused otherwise)")


def refuse_existing(parser: argparse.ArgumentParser, paths: Iterable[Path | None],
                    overwrite: bool) -> None:
    """Exit through ``parser.error`` naming the first of ``paths`` that exists (unless
    ``overwrite``) or that is a folder (always)."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            parser.error(f"{path} is a folder: expected a file path")
        if path.exists() and not overwrite:
            parser.error(f"{path} already exists: pass --overwrite to replace it, "
                         "or choose another path")


def write_json(path: Path, report: dict[str, Any]) -> None:
    """``report`` as indented JSON at ``path`` (parent folders made), written atomically."""
    write_text(path, json.dumps(report, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    """``text`` at ``path`` (parent folders made), written atomically: a partial file of this
    process renamed over it, so processes writing the same path never mix their files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)
