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
