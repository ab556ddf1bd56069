"""Read the original QM9 release (Ramakrishnan et al., Sci. Data 1, 140022, 2014).

A release record ``dsgdb9nsd_NNNNNN.xyz`` has n + 5 lines for n atoms, fields separated by
tabs (any whitespace is accepted here), numbers sometimes in Mathematica's exponent style
(``1.5*^-6`` = 1.5e-6)::

    n
    gdb <index> A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv
    <element> x y z mulliken_charge          (n lines; Å, e)
    <harmonic frequencies, cm^-1>
    <GDB-17 SMILES> <B3LYP SMILES>
    <InChI (Corina)> <InChI (B3LYP)>

Units in the file: A, B, C in GHz; mu in D; alpha in a0^3; homo, lumo, gap, zpve, U0, U, H,
G in Hartree; r2 in a0^2; Cv in cal/(mol K). Records come from a folder of ``.xyz`` files or
from the release's ``dsgdb9nsd.xyz.tar.bz2`` (read as a stream, never unpacked to disk).
A malformed record raises :class:`QM9FormatError` naming the file (and archive member), the
line and what was expected.
"""

from __future__ import annotations

import fnmatch
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np

from est_fairchem.errors import InputError, require_file

RECORD_PATTERN = "dsgdb9nsd_*.xyz"
PROPERTY_NAMES = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
                  "U0", "U", "H", "G", "Cv")
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_PROPERTY_LINE = "'gdb <index> A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv'"


class QM9FormatError(InputError):
    """A QM9 record or exclusion list that does not follow the release's layout."""


@dataclass(frozen=True)
class QM9Record:
    """One molecule as the release gives it (file units, nothing converted).

    ``numbers`` [n] atomic numbers; ``positions`` [n, 3] Å; ``charges`` [n] Mulliken charges
    (e); ``properties`` maps each name of :data:`PROPERTY_NAMES` to its value in file units;
    ``frequencies`` [3n-6 or 3n-5] cm^-1; ``source`` names the file (``archive:member``).
    """

    index: int
    numbers: np.ndarray
    positions: np.ndarray
    charges: np.ndarray
    properties: dict[str, float]
    frequencies: np.ndarray
    smiles: tuple[str, ...]
    inchi: tuple[str, ...]
    source: str


def parse_number(token: str) -> float:
    """A float from a release token: ``'1.5*^-6'`` -> 1.5e-6, ``'0.'`` -> 0.0.

    Raises ``ValueError`` for anything else (including nan and inf).
    """
    value = float(token.replace("*^", "e"))
    if not np.isfinite(value):
        raise ValueError(f"not a finite number: {token!r}")
    return value


def _fail(source: str, lineno: int, expected: str, line: str | None) -> QM9FormatError:
    found = "the file ends there" if line is None else f"found {line!r}"
    return QM9FormatError(f"{source}, line {lineno}: expected {expected}; {found}")


def parse_qm9_xyz(text: str, source: str) -> QM9Record:
    """Parse one release record (the text of a ``dsgdb9nsd_*.xyz`` file).

    ``source`` is used in error messages only. Raises :class:`QM9FormatError` naming
    ``source``, the 1-based line number and what that line should hold.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()

    def line(lineno: int) -> str | None:
        return lines[lineno - 1] if lineno <= len(lines) else None

    first = line(1)
    try:
        n = int(first) if first is not None else 0
    except ValueError:
        n = 0
    if n < 1:
        raise _fail(source, 1, "the number of atoms (a positive integer)", first)

    props_line = line(2)
    tokens = props_line.split() if props_line is not None else []
    if len(tokens) != 17 or tokens[0] != "gdb":
        raise _fail(source, 2, f"the property line {_PROPERTY_LINE} (17 fields)", props_line)
    try:
        index = int(tokens[1])
    except ValueError:
        raise _fail(source, 2, "an integer molecule index after 'gdb'", props_line) from None
    properties: dict[str, float] = {}
    for name, token in zip(PROPERTY_NAMES, tokens[2:]):
        try:
            properties[name] = parse_number(token)
        except ValueError:
            raise _fail(source, 2, f"a number for property {name}, not {token!r}",
                        props_line) from None

    numbers = np.empty(n, dtype=np.int64)
    coords = np.empty((n, 4), dtype=np.float64)
    for atom in range(n):
        lineno = 3 + atom
        text_line = line(lineno)
        fields = text_line.split() if text_line is not None else []
        expected = (f"atom {atom + 1} of {n} as 'element x y z charge' with element one of "
                    f"{', '.join(ELEMENTS)} (does the atom count on line 1 match?)")
        if len(fields) != 5 or fields[0] not in ELEMENTS:
            raise _fail(source, lineno, expected, text_line)
        numbers[atom] = ELEMENTS[fields[0]]
        try:
            coords[atom] = [parse_number(token) for token in fields[1:]]
        except ValueError:
            raise _fail(source, lineno, f"numbers for x, y, z and charge of atom {atom + 1}",
                        text_line) from None

    lineno = n + 3
    freq_line = line(lineno)
    try:
        if freq_line is None:
            raise ValueError
        frequencies = np.array([parse_number(t) for t in freq_line.split()], dtype=np.float64)
    except ValueError:
        raise _fail(source, lineno, "the harmonic frequencies (numbers; does the atom count on "
                    "line 1 match?)", freq_line) from None

    smiles_line = line(n + 4)
    if smiles_line is None or not smiles_line.split() or smiles_line.startswith("InChI="):
        raise _fail(source, n + 4, "the SMILES line (GDB-17 and B3LYP SMILES)", smiles_line)
    inchi_line = line(n + 5)
    if inchi_line is None or not inchi_line.startswith("InChI="):
        raise _fail(source, n + 5, "the InChI line (starting 'InChI=')", inchi_line)
    if len(lines) > n + 5:
        raise _fail(source, n + 6, f"the end of the record ({n} atoms make {n + 5} lines)",
                    lines[n + 5])

    return QM9Record(
        index=index, numbers=numbers, positions=coords[:, :3].copy(),
        charges=coords[:, 3].copy(), properties=properties, frequencies=frequencies,
        smiles=tuple(smiles_line.split()), inchi=tuple(inchi_line.split()), source=source,
    )


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise QM9FormatError(f"{source}: not a text file ({err})") from None


def count_records(raw: Path) -> int | None:
    """Number of records in a release folder; ``None`` for an archive (read only once)."""
    raw = Path(raw)
    return len(list(raw.glob(RECORD_PATTERN))) if raw.is_dir() else None


def check_release_source(raw: Path) -> None:
    """Refuse, before any reading, a ``raw`` that cannot be a release: missing, a folder without
    ``dsgdb9nsd_*.xyz`` files, a damaged archive or a file that is no tar archive
    (``FileNotFoundError`` / :class:`QM9FormatError` naming it)."""
    raw = Path(raw)
    if raw.is_dir():
        if next(raw.glob(RECORD_PATTERN), None) is None:
            archives = sorted(p.name for p in raw.glob("*.tar*"))
            hint = f" (pass the archive itself: {raw / archives[0]})" if archives else ""
            raise FileNotFoundError(f"no {RECORD_PATTERN} files in {raw}{hint}")
        return
    if not raw.exists():
        raise FileNotFoundError(f"QM9 release not found: {raw}")
    if not tarfile.is_tarfile(raw):
        damage = archive_damage(raw)
        if damage is not None:
            raise QM9FormatError(f"{raw}: {damage}")
        raise QM9FormatError(
            f"{raw}: neither a folder of {RECORD_PATTERN} files nor a tar archive of them "
            "(the release's dsgdb9nsd.xyz.tar.bz2)")


def iter_qm9_records(raw: Path) -> Iterator[QM9Record]:
    """Yield every ``dsgdb9nsd_*.xyz`` record of a release folder (sorted by file name) or of a
    tar archive (``.tar.bz2``, ``.tar.gz``, ``.tar``; in archive order, streamed).

    Raises ``FileNotFoundError`` if ``raw`` does not exist or holds no record,
    :class:`QM9FormatError` for a malformed record or an unreadable archive.
    """
    raw = Path(raw)
    check_release_source(raw)
    if raw.is_dir():
        for path in sorted(raw.glob(RECORD_PATTERN)):
            yield parse_qm9_xyz(_decode(path.read_bytes(), str(path)), str(path))
        return
    found = 0
    try:
        with tarfile.open(raw, mode="r|*") as archive:
            for member in archive:
                name = PurePosixPath(member.name).name
                if not member.isfile() or not fnmatch.fnmatch(name, RECORD_PATTERN):
                    continue
                source = f"{raw}:{member.name}"
                handle = archive.extractfile(member)
                if handle is None:
                    raise QM9FormatError(f"{source}: cannot read this archive member")
                found += 1
                yield parse_qm9_xyz(_decode(handle.read(), source), source)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise QM9FormatError(f"{raw}: the archive is damaged or truncated after {found} "
                             f"records ({err}); download it again") from None
    if not found:
        raise FileNotFoundError(f"no {RECORD_PATTERN} members in {raw}")


_COMPRESSIONS = {b"BZh": "bz2", b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz"}


def archive_damage(path: Path) -> str | None:
    """Why a compressed file that ``tarfile`` cannot open is unreadable, or None when it is not
    compressed (bz2, gzip, xz by their magic bytes) or its compression reads correctly."""
    import bz2
    import gzip
    import lzma

    with open(path, "rb") as handle:
        head = handle.read(6)
    kind = next((name for magic, name in _COMPRESSIONS.items() if head.startswith(magic)), None)
    if kind is None:
        return None
    opener = {"bz2": bz2.open, "gzip": gzip.open, "xz": lzma.open}[kind]
    try:
        with opener(path, "rb") as stream:
            stream.read(1 << 16)
    except (OSError, EOFError, lzma.LZMAError) as err:
        return f"a damaged {kind} archive ({err}); download it again"
    return f"a {kind}-compressed file that does not hold a tar archive"


@dataclass(frozen=True)
class ExclusionList:
    """Indices read from the release's ``uncharacterized.txt`` and what was skipped."""

    indices: frozenset[int]
    data_lines: int
    skipped_lines: int
    path: str


def read_exclusion_list(path: Path) -> ExclusionList:
    """Read the molecule indices of ``uncharacterized.txt`` (3,054 in the release).

    The release file starts with blank lines, a paragraph of text, ``====`` rules and a
    ``#   Index  GDB17 SMILES ...`` header, and ends with a ``====`` rule; every data line is
    ``<index> <GDB17 SMILES> <B3LYP SMILES> <Corina SMILES> <D_IJ>``. A line counts as data
    when its first field is a positive integer and it has at least two fields; every other
    line is skipped. Raises ``FileNotFoundError``, or :class:`QM9FormatError` when a line that
    starts with a number is not a data line or no data line is found.
    """
    path = require_file(path, "exclusion list")
    indices: set[int] = set()
    data_lines = skipped = 0
    for lineno, text in enumerate(_decode(path.read_bytes(), str(path)).splitlines(), 1):
        fields = text.split()
        if not fields or not fields[0].lstrip("+-").isdigit():
            skipped += 1
            continue
        index = int(fields[0])
        if index < 1 or len(fields) < 2:
            raise QM9FormatError(
                f"{path}, line {lineno}: expected '<index> <SMILES> ...' with a positive "
                f"molecule index; found {text!r}")
        indices.add(index)
        data_lines += 1
    if not indices:
        raise QM9FormatError(
            f"{path}: no line of the form '<index> <SMILES> ...' found; expected the release's "
            "uncharacterized.txt")
    return ExclusionList(frozenset(indices), data_lines, skipped, str(path))
