"""Signing credentials and per-face provenance for tests of code that marks faces (service, exports)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from facegen.provenance.c2pa_manifest import faces_provenance
from facegen.provenance.credentials import ProvenanceConfig, write_local_credentials

#: The MLflow run id test faces name (its first four hex digits go into the watermark).
TEST_RUN_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


@functools.cache
def signing_credentials() -> Path:
    """One throwaway CA and signing certificate for the whole test session (what `facegen provenance init` makes)."""
    return write_local_credentials(
        Path(tempfile.mkdtemp(prefix="facegen-test-provenance-")), common_name="facegen test"
    )


def marking_config() -> ProvenanceConfig:
    """Marking on, with the session's :func:`signing_credentials`."""
    return ProvenanceConfig(credentials_dir=signing_credentials())


def pairwise_marking(generated: np.ndarray, champion: np.ndarray | None = None) -> dict[str, Any]:
    """``export_pairwise_set``'s provenance arguments: an unregistered candidate (seeds 0…) and champion version 1."""
    return {
        "generated_provenance": faces_provenance("facegen-candidate", None, TEST_RUN_ID, range(len(generated))),
        "champion_provenance": None
        if champion is None
        else faces_provenance("facegen-generator", "1", TEST_RUN_ID, range(1000, 1000 + len(champion))),
        "marking": marking_config(),
    }
