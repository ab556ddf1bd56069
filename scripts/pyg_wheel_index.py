"""Print PyG's prebuilt-wheel index for the installed torch (``make install PYG_WHEELS=auto``).

PyG publishes one page per torch minor version and CUDA build, named after the x.y.0
release (its wheels serve every x.y.z): ``https://data.pyg.org/whl/torch-2.4.0+cu121.html``,
or ``+cpu`` for a CPU-only torch.
"""

from __future__ import annotations

import sys


def pyg_wheel_index(torch_version: str, cuda_version: str | None) -> str:
    """The index URL for torch ``torch_version`` (e.g. ``2.4.1+cu121``) built with CUDA
    ``cuda_version`` (e.g. ``12.1``; None for CPU-only)."""
    release = torch_version.split("+")[0].split(".")
    if len(release) < 2 or not all(part.isdigit() for part in release[:2]):
        raise ValueError(f"torch version {torch_version!r}: expected 'major.minor[.patch]'")
    build = "cpu" if not cuda_version else "cu" + cuda_version.replace(".", "")
    return f"https://data.pyg.org/whl/torch-{release[0]}.{release[1]}.0+{build}.html"


def main() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("PYG_WHEELS=auto: torch is not installed in this environment; install it first")
    print(pyg_wheel_index(torch.__version__, torch.version.cuda))


if __name__ == "__main__":
    main()
