"""Closing the loop: faces people rated well become an image source for the next training run.

:func:`export_feedback` reads the feedback store, keeps every face (model version, seed, truncation) whose MEAN rating
is at or above ``min_rating`` (a face rated 5 by one person and 1 by another does not qualify), re-generates it from
the registry (the face is fully determined by version, seed, truncation and attributes, see
:mod:`facegen.serve.inference`) and writes into ``out_dir``:
- one lossless PNG per face at the generator's own resolution, named ``feedback_v{version}_s{seed}.png``, marked as
  every face that leaves facegen is (:mod:`facegen.provenance.marking`: C2PA manifest, watermark from 256²; no
  usable signing credentials → :class:`~facegen.provenance.marking.MarkingUnavailable` before anything is written);
  a truncated face gets ``_t{psi}`` (4 decimals) and a conditional one ``_a{8 hex digits of its attributes' hash}``
  before ``.png``, so two variants of a seed never collide;
- ``feedback.csv``: ``file, origin, model_name, model_version, seed, truncation, attributes, mean_rating, n_ratings,
  last_rated_at`` — ``origin`` is ``feedback`` on every row so the ingest step can count these images apart from
  real photos; ``attributes`` is JSON (``{}`` for unconditional faces).
A folder like this is ``ingest``'s ``feedback_source`` (:func:`facegen.data.manifest.build_feedback_manifest`): the
``attributes`` become the faces' labels, and ``quality_filter`` judges them with size and blur thresholds calibrated
at the generator's resolution. Faces are never resized: an enlarged face only adds interpolated pixels, and the blur
check would then measure the interpolation (at 256 px every face fails it, at 64 px every face passes; see
docs/data.md "Feedback faces"). Using the folder in training is off unless a config names it.
Versions that no longer load (deleted from the registry, broken) are skipped and reported, never guessed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from facegen.data.manifest import FEEDBACK_CSV, FEEDBACK_ORIGIN
from facegen.data.sources import is_image_name
from facegen.provenance.c2pa_manifest import FaceProvenance
from facegen.provenance.credentials import ProvenanceConfig
from facegen.provenance.marking import FaceMarker, MarkingUnavailable
from facegen.registry.names import GENERATOR_MODEL_NAME
from facegen.serve.feedback import FeedbackStore, RatedFace
from facegen.serve.inference import label_row_for, render_faces
from facegen.serve.loading import load_registered_generator

logger = logging.getLogger("facegen.serve.feedback_export")

CSV_COLUMNS = (
    "file",
    "origin",
    "model_name",
    "model_version",
    "seed",
    "truncation",
    "attributes",
    "mean_rating",
    "n_ratings",
    "last_rated_at",
)


def face_file_name(version: str, seed: int, truncation: float, attributes: dict[str, str] | None = None) -> str:
    suffix = "" if float(truncation) == 1.0 else f"_t{float(truncation):.4f}"
    if attributes:
        canonical = json.dumps(attributes, sort_keys=True, separators=(",", ":"))
        suffix += f"_a{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"
    return f"feedback_v{version}_s{seed}{suffix}.png"


@dataclass
class ExportResult:
    out_dir: Path
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # version -> why its faces were not exported
    # Images already in out_dir that this export did not write: feedback.csv does not list them, so ingest
    # quarantines them as feedback_unlisted (e.g. faces from an earlier export whose rating has since dropped).
    unlisted: list[Path] = field(default_factory=list)

    @property
    def csv_path(self) -> Path:
        return self.out_dir / FEEDBACK_CSV


def export_feedback(
    feedback_db: str | Path,
    out_dir: str | Path,
    *,
    min_rating: float,
    tracking_uri: str,
    provenance: ProvenanceConfig,
    model_name: str = GENERATOR_MODEL_NAME,
    device: str = "cpu",
) -> ExportResult:
    """Re-generate the faces rated ``min_rating`` or better (mean per face) into ``out_dir``, marked under
    ``provenance`` (the service's block); see the module doc."""
    feedback_db = Path(feedback_db)
    if not feedback_db.is_file():
        raise FileNotFoundError(f"feedback store {feedback_db} does not exist (has the service stored any rating?)")
    marker = FaceMarker(provenance)
    problem = marker.problem()
    if problem is not None:
        raise MarkingUnavailable(problem)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with FeedbackStore(feedback_db) as store:
        faces = store.rated_faces(min_mean_rating=min_rating, model_name=model_name)
    by_version: dict[str, list[RatedFace]] = {}
    for face in faces:
        by_version.setdefault(face.model_version, []).append(face)

    result = ExportResult(out_dir)
    rows: list[dict[str, object]] = []
    for version, version_faces in sorted(by_version.items(), key=lambda item: int(item[0])):
        try:
            model = load_registered_generator(tracking_uri, model_name, version, device=device, warmup=False)
        except Exception as error:  # noqa: BLE001 - one unavailable version must not block the others
            result.skipped[version] = f"{type(error).__name__}: {error}"
            logger.warning("skipping %d face(s) of %s version %s: %s", len(version_faces), model_name, version, error)
            continue
        variants: dict[tuple[float, str], list[RatedFace]] = {}
        for face in version_faces:
            variants.setdefault((face.truncation, json.dumps(face.attributes, sort_keys=True)), []).append(face)
        for (psi, _), group in variants.items():
            try:
                labels = label_row_for(model.generator, group[0].attributes)
            except ValueError as error:
                result.skipped[f"{version} {group[0].attributes}"] = str(error)
                continue
            images = render_faces(
                model.generator, [face.seed for face in group], truncation=psi, labels=labels, device=model.device
            )
            for face, image in zip(group, images, strict=True):
                name = face_file_name(version, face.seed, face.truncation, face.attributes)
                path = out_dir / name
                temp = path.with_name(f".{name}.tmp")
                made = FaceProvenance(model_name, version, model.run_id, face.seed, face.truncation, face.attributes)
                temp.write_bytes(marker.encode(image, made, size=model.resolution, fmt="png", png_compress_level=6))
                os.replace(temp, path)
                result.written.append(path)
                rows.append(
                    {
                        "file": name,
                        "origin": FEEDBACK_ORIGIN,
                        "model_name": model_name,
                        "model_version": version,
                        "seed": face.seed,
                        "truncation": face.truncation,
                        "attributes": json.dumps(face.attributes, sort_keys=True),
                        "mean_rating": round(face.mean_rating, 4),
                        "n_ratings": face.n_ratings,
                        "last_rated_at": face.last_rated_at,
                    }
                )
    temp_csv = out_dir / f".{FEEDBACK_CSV}.tmp"
    with temp_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temp_csv, result.csv_path)
    written = set(result.written)
    result.unlisted = sorted(p for p in out_dir.iterdir() if is_image_name(p.name) and p not in written)
    return result
