"""The C2PA manifest a generated face carries, and signing it into the encoded image with the C2PA Python bindings.

The manifest is one ``c2pa.created`` action: digital source type ``trainedAlgorithmicMedia``, the registered generator
(name and version) as its software agent, and as parameters what regenerates the face exactly (seed, truncation,
requested attributes) plus the version's MLflow run id. The claim generator is facegen with its package version.
No thumbnail: c2pa embeds a JPEG thumbnail by default, ~34 KB on a 4 KB 256² face; without it, and with the leaf
certificate only (:class:`~facegen.provenance.credentials.SigningCredentials`), a manifest adds ~2.9 KB to a face.

A grid of faces the pipeline saves as a file (:class:`GridProvenance`) gets the same action naming the generator's run
and the seeds shown; a grid that also shows real photographs says ``compositeWithTrainedAlgorithmicMedia``.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import c2pa

from facegen import __version__ as facegen_version
from facegen.provenance.credentials import SigningCredentials

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
#: IPTC's type for generated faces shown together with real photographs (memorisation's closest pairs).
COMPOSITE_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
#: Seed lists longer than this that are a range go into a grid's manifest as first seed and count.
MAX_LISTED_SEEDS = 16
CREATED_ACTION = "c2pa.created"
ACTIONS_LABEL = "c2pa.actions.v2"
CLAIM_GENERATOR = "facegen"
#: Watermark version of a face whose generator is not registered yet (human evaluation runs before registration):
#: registry versions start at 1, and the watermark's model hash still names the run.
UNREGISTERED_VERSION = 0


@dataclass(frozen=True)
class FaceProvenance:
    """What made one face: the generator version and the inputs that regenerate it exactly."""

    model_name: str
    model_version: str | None  # registry version; None for a candidate not registered yet (human evaluation)
    model_run_id: str | None  # MLflow run that logged the generator: its first hex digits go into the watermark
    seed: int
    truncation: float
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def watermark_version(self) -> int:
        return UNREGISTERED_VERSION if self.model_version is None else int(self.model_version)

    def manifest_definition(self) -> dict[str, Any]:
        """The manifest JSON c2pa's Builder takes for this face."""
        parameters: dict[str, Any] = {
            "seed": int(self.seed),
            "truncation": float(self.truncation),
            "attributes": dict(sorted(self.attributes.items())),
        }
        return _definition(
            f"{self.model_name} seed {self.seed}",
            DIGITAL_SOURCE_TYPE,
            self.model_name,
            self.model_version,
            self.model_run_id,
            parameters,
        )


@dataclass(frozen=True)
class GridProvenance:
    """What made a grid of generated faces saved as a run artifact (sample grids, memorisation's closest pairs).

    Grids are drawn in the run that trains or evaluates a candidate, before it is registered, so the run names the
    generator and the manifest carries no version (``facegen verify`` says "not registered yet"). ``shown`` is what
    regenerates the faces (see :func:`shown_seeds`); ``with_real``: real photographs sit among them.
    """

    model_name: str
    model_run_id: str
    shown: Mapping[str, Any]
    with_real: bool = False

    def manifest_definition(self) -> dict[str, Any]:
        """The manifest JSON c2pa's Builder takes for this grid."""
        kind = "generated faces and real photographs" if self.with_real else "generated faces"
        return _definition(
            f"{self.model_name} grid of {kind}",
            COMPOSITE_SOURCE_TYPE if self.with_real else DIGITAL_SOURCE_TYPE,
            self.model_name,
            None,
            self.model_run_id,
            dict(self.shown),
        )


def shown_seeds(seeds: Sequence[int]) -> dict[str, Any]:
    """The seeds of a grid's faces for its manifest: listed, or first seed and count for a long range (lean).

    The list is one comma-separated string: c2pa stores a JSON array of integers as a CBOR byte string, which keeps
    only each seed's lowest byte.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("a grid shows at least one face")
    if len(seeds) > MAX_LISTED_SEEDS and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return {"first_seed": seeds[0], "seed_count": len(seeds)}
    return {"seeds": ", ".join(map(str, seeds))}


def faces_provenance(
    model_name: str,
    model_version: str | None,
    model_run_id: str | None,
    seeds: Sequence[int],
    *,
    truncation: float = 1.0,
    requested: Mapping[str, Sequence[str | None]] | None = None,
) -> list[FaceProvenance]:
    """One :class:`FaceProvenance` per seed; ``requested`` is attribute → value per face (None: any), as
    :class:`facegen.metrics.samples.EvaluationSample` keeps it."""
    requested = requested or {}
    return [
        FaceProvenance(
            model_name,
            model_version,
            model_run_id,
            int(seed),
            truncation,
            {name: str(values[i]) for name, values in requested.items() if values[i] is not None},
        )
        for i, seed in enumerate(seeds)
    ]


def _definition(
    title: str,
    source_type: str,
    model_name: str,
    model_version: str | None,
    model_run_id: str | None,
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """One ``c2pa.created`` action by the generator (its version when registered), run id among the parameters."""
    agent = {"name": model_name}
    if model_version is not None:
        agent["version"] = str(model_version)  # MLflow's SQL store returns versions as int; C2PA wants a string
    if model_run_id is not None:
        parameters = {**parameters, "model_run_id": model_run_id}
    action = {
        "action": CREATED_ACTION,
        "digitalSourceType": source_type,
        "softwareAgent": agent,
        "parameters": parameters,
    }
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": facegen_version}],
        "title": title,
        "assertions": [{"label": ACTIONS_LABEL, "data": {"actions": [action]}}],
    }


class MarkingUnavailable(RuntimeError):
    """Faces cannot be marked (missing or expired signing credentials, no time-stamp), so none may be handed out."""


class ManifestSigner:
    """Signs face manifests with one set of credentials.

    Each thread keeps its own c2pa signer (the bindings do not say theirs is thread-safe; building one parses the PEMs,
    ~0.2 ms of the ~1.2 ms a signature costs).
    """

    def __init__(self, credentials: SigningCredentials, timestamp_url: str | None = None) -> None:
        self.credentials = credentials
        self.timestamp_url = timestamp_url  # an RFC 3161 TSA asked for each signature's time-stamp (None: none)
        self._context = c2pa.Context(settings=c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
        self._local = threading.local()

    def _signer(self) -> c2pa.Signer:
        signer = getattr(self._local, "signer", None)
        if signer is None:
            info = c2pa.C2paSignerInfo(
                alg=b"es256",
                sign_cert=self.credentials.chain_pem,
                private_key=self.credentials.key_pem,
                ta_url=self.timestamp_url.encode() if self.timestamp_url else None,
            )
            signer = self._local.signer = c2pa.Signer.from_info(info)
        return signer

    def sign(self, data: bytes, media_type: str, provenance: FaceProvenance | GridProvenance) -> bytes:
        """``data`` (an encoded image of ``media_type``) with the face's or grid's signed manifest embedded.

        With a time-stamp authority configured, a TSA that does not answer fails the signature
        (:class:`MarkingUnavailable`): c2pa would not sign without the time-stamp, and neither do we.
        """
        signed = io.BytesIO()
        with c2pa.Builder(provenance.manifest_definition(), context=self._context) as builder:
            try:
                builder.sign(self._signer(), media_type, io.BytesIO(data), signed)
            except c2pa.C2paError.Signature as error:
                if not self.timestamp_url:
                    raise
                raise MarkingUnavailable(f"time-stamp authority {self.timestamp_url} failed: {error}") from error
        return signed.getvalue()
