"""PyG's prebuilt torch-scatter / torch-sparse wheels for the installed torch, with compiling
as the fallback (``make install``).

PyG publishes one page per torch minor version and CUDA build, named after the x.y.0
release (its wheels serve every x.y.z): ``https://data.pyg.org/whl/torch-2.4.0+cu121.html``,
or ``+cpu`` for a CPU-only torch.

``python scripts/pyg_wheel_index.py`` prints that index; ``--install WHEELS`` installs the two
packages into this Python: ``auto`` (the default of ``make install``) takes the wheels of that
index, ``URL`` those of another index, and when pip finds none (no internet, no wheel for this
torch) both compile them from source instead; ``source`` compiles without trying. One line
says which was done and why.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Callable, Sequence

PACKAGES = ("torch-scatter", "torch-sparse")
Runner = Callable[..., subprocess.CompletedProcess]


def pyg_wheel_index(torch_version: str, cuda_version: str | None) -> str:
    """The index URL for torch ``torch_version`` (e.g. ``2.4.1+cu121``) built with CUDA
    ``cuda_version`` (e.g. ``12.1``; None for CPU-only)."""
    release = torch_version.split("+")[0].split(".")
    if len(release) < 2 or not all(part.isdigit() for part in release[:2]):
        raise ValueError(f"torch version {torch_version!r}: expected 'major.minor[.patch]'")
    build = "cpu" if not cuda_version else "cu" + cuda_version.replace(".", "")
    return f"https://data.pyg.org/whl/torch-{release[0]}.{release[1]}.0+{build}.html"


def wheel_command(python: str, index: str) -> list[str]:
    """pip installing the packages from ``index``'s wheels only (never a source build)."""
    return [python, "-m", "pip", "install", "--only-binary", ",".join(PACKAGES), *PACKAGES,
            "-f", index]


def source_command(python: str) -> list[str]:
    """pip compiling the packages against the installed torch."""
    return [python, "-m", "pip", "install", "--no-build-isolation", *PACKAGES]


def pip_reason(stderr: str) -> str:
    """pip's own reason for a failed install, in one line (its last ``ERROR:`` line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or ["pip failed without a message"])[-1]
    return reason if len(reason) <= 200 else reason[:197] + "..."


def install(python: str, wheels: str, index_of_torch: Callable[[], str],
            run: Runner = subprocess.run) -> str:
    """Install the packages as ``wheels`` says (``auto``, ``source`` or an index URL) and
    return the line saying which was done and why. ``index_of_torch`` gives the index of the
    installed torch; ``run`` runs a command (``subprocess.run``)."""
    if wheels == "source":
        run(source_command(python), check=True)
        return "PyG: compiled torch-scatter and torch-sparse from source (PYG_WHEELS=source)"
    index = index_of_torch() if wheels in ("", "auto") else wheels
    tried = run(wheel_command(python, index), capture_output=True, text=True)
    if tried.returncode == 0 and "Successfully installed" not in (tried.stdout or ""):
        return "PyG: torch-scatter and torch-sparse were already installed (nothing to do)"
    if tried.returncode == 0:
        return f"PyG: installed the prebuilt torch-scatter and torch-sparse wheels of {index}"
    print(f"PyG: no prebuilt wheels from {index} ({pip_reason(tried.stderr)}); compiling "
          "torch-scatter and torch-sparse from source instead (10 to 30 minutes on 2 cores)",
          flush=True)
    run(source_command(python), check=True)
    return (f"PyG: compiled torch-scatter and torch-sparse from source (no prebuilt wheels "
            f"from {index}: {pip_reason(tried.stderr)})")


def _index_of_installed_torch() -> str:
    try:
        import torch
    except ImportError:
        sys.exit("PyG wheels: torch is not installed in this environment; install it first")
    return pyg_wheel_index(torch.__version__, torch.version.cuda)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(_index_of_installed_torch())
        return
    if args[0] != "--install" or len(args) != 2:
        sys.exit("usage: pyg_wheel_index.py [--install auto|source|URL]")
    try:
        line = install(sys.executable, args[1].strip(), _index_of_installed_torch)
    except subprocess.CalledProcessError as error:
        sys.exit(f"PyG: compiling torch-scatter and torch-sparse failed (exit "
                 f"{error.returncode}); see pip's output above")
    print(line)


if __name__ == "__main__":
    main()
