"""Library versions recorded in every result."""

from __future__ import annotations

import platform
from importlib import metadata


def versions() -> dict[str, str]:
    """Versions of classwise, Python and the libraries results depend on."""
    out = {"python": platform.python_version()}
    for pkg in ("classwise", "torch", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out
