"""``facegen verify``: what a file says about where it came from, per file, whatever the other files are.

For each file: its C2PA manifest (valid / invalid / absent, and what the active manifest says: digital source type,
generator and version, seed, truncation, attributes, who signed it), whether the signer chains to the trust anchor
named in configuration (c2pa's own trust check, ``trust.trust_anchors``), and the invisible watermark with the model
version it names, which survives a copy whose metadata was stripped. A file that cannot be read as an image (not an
image, truncated, larger than the limits below) gets a per-file error; the other files are still reported.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import c2pa
import numpy as np
from PIL import Image

from facegen.provenance.c2pa_manifest import CREATED_ACTION
from facegen.provenance.watermark import read_watermark

#: Files larger than this are refused unread (a 2048² PNG, the largest face served, is ~12 MB).
MAX_FILE_BYTES = 64 * 2**20
#: Images of more pixels than this are refused before decoding (decompression bombs).
MAX_PIXELS = 40_000_000

ManifestState = Literal["valid", "invalid", "absent"]
TimestampState = Literal["trusted", "untrusted", "invalid", "absent"]
#: The c2pa.created parameters in the order a person reads them (c2pa keeps no order); any others follow.
PARAMETER_ORDER = ("seed", "truncation", "attributes", "model_run_id")


@dataclass(frozen=True)
class ManifestReport:
    """The active C2PA manifest of a file as c2pa validated it."""

    state: ManifestState
    trusted: bool = False
    signer: str | None = None  # common name and organisation of the signing certificate
    digital_source_type: str | None = None
    generator: str | None = None  # the software agent of the c2pa.created action: registered model name
    generator_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # seed, truncation, attributes, model_run_id
    claim_generator: str | None = None
    failures: list[str] = field(default_factory=list)  # c2pa validation codes and explanations
    signed_at: str | None = None  # the signing time the time-stamp vouches for (ISO 8601), when there is one
    timestamp: TimestampState = "absent"  # an RFC 3161 time-stamp: trusted / untrusted TSA, invalid, or none


@dataclass(frozen=True)
class WatermarkReport:
    found: bool
    version: int | None = None
    model_hash: str | None = None
    bit_accuracy: float | None = None


@dataclass(frozen=True)
class FileReport:
    path: str
    error: str | None = None
    media_type: str | None = None
    size: tuple[int, int] | None = None
    manifest: ManifestReport | None = None
    watermark: WatermarkReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Unreadable(ValueError):
    pass


def trust_context(trust_anchor_pem: str | None) -> c2pa.Context:
    """c2pa's reading context: trust checked, against ``trust_anchor_pem`` (without one every signer is untrusted)."""
    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    if trust_anchor_pem:
        settings["trust"] = {"trust_anchors": trust_anchor_pem}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def _decode(data: bytes) -> tuple[str, np.ndarray]:
    """The media type and RGB pixels of ``data``, or :class:`_Unreadable` saying why not."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            media_type = Image.MIME.get(image.format or "")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _Unreadable(f"image too large: {width}×{height} pixels (limit {MAX_PIXELS:,})")
            image.load()
            return media_type or "application/octet-stream", np.asarray(image.convert("RGB"))
    except _Unreadable:
        raise
    except Image.UnidentifiedImageError as error:
        raise _Unreadable("not an image (no format Pillow reads)") from error
    except Image.DecompressionBombError as error:  # Pillow's own limit, above ours, hit while opening
        raise _Unreadable(f"image too large: {error}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise _Unreadable(f"truncated or corrupt image data: {error}") from error


def _signer_name(signature: dict[str, Any]) -> str | None:
    name = signature.get("common_name")
    organisation = signature.get("issuer")  # c2pa reports the certificate's organisation here
    if not name:
        return organisation
    return f"{name} ({organisation})" if organisation else name


def _created_action(manifest: dict[str, Any]) -> dict[str, Any]:
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions") or []:
                if action.get("action") == CREATED_ACTION:
                    return action
    return {}


def _timestamp_state(results: dict[str, Any]) -> TimestampState:
    """c2pa's ``timeStamp.*`` codes as one word: a failed check wins, then an untrusted TSA, then a validated one."""

    def codes(kind: str) -> set[str]:
        return {
            str(item.get("code")) for item in results.get(kind) or [] if str(item.get("code")).startswith("timeStamp.")
        }

    if codes("failure"):
        return "invalid"
    if "timeStamp.untrusted" in codes("informational"):
        return "untrusted"
    return "trusted" if "timeStamp.validated" in codes("success") else "absent"


def read_manifest(data: bytes, media_type: str, context: c2pa.Context) -> ManifestReport:
    """The file's active manifest, validated by c2pa against the trust anchors in ``context``."""
    try:
        with c2pa.Reader(media_type, io.BytesIO(data), context=context) as reader:
            state = reader.get_validation_state()
            manifest = reader.get_active_manifest() or {}
            results = (reader.get_validation_results() or {}).get("activeManifest") or {}
    except c2pa.C2paError.ManifestNotFound:
        return ManifestReport(state="absent")
    except c2pa.C2paError.NotSupported:
        return ManifestReport(state="absent", failures=[f"c2pa cannot carry a manifest in {media_type}"])
    except c2pa.C2paError as error:  # a manifest is there but cannot be parsed
        return ManifestReport(state="invalid", failures=[str(error)])
    failures = [f"{item.get('code')}: {item.get('explanation')}" for item in results.get("failure") or []]
    action = _created_action(manifest)
    agent = action.get("softwareAgent") or {}
    claim = (manifest.get("claim_generator_info") or [{}])[0]
    return ManifestReport(
        state="invalid" if state == "Invalid" else "valid",
        trusted=state == "Trusted",
        signer=_signer_name(manifest.get("signature_info") or {}),
        digital_source_type=action.get("digitalSourceType"),
        generator=agent.get("name") if isinstance(agent, dict) else str(agent),
        generator_version=agent.get("version") if isinstance(agent, dict) else None,
        parameters=dict(action.get("parameters") or {}),
        claim_generator=" ".join(str(claim[key]) for key in ("name", "version") if claim.get(key)) or None,
        failures=failures,
        signed_at=(manifest.get("signature_info") or {}).get("time"),
        timestamp=_timestamp_state(results),
    )


def _read_watermark(pixels: np.ndarray) -> WatermarkReport:
    reading = read_watermark(pixels)
    return WatermarkReport(reading.found, reading.version, reading.model_hash, reading.bit_accuracy)


def verify_bytes(path: str, data: bytes, context: c2pa.Context) -> FileReport:
    """Report on one file's content (``path`` only names it)."""
    try:
        media_type, pixels = _decode(data)
    except _Unreadable as error:
        return FileReport(path=path, error=str(error))
    return FileReport(
        path=path,
        media_type=media_type,
        size=(pixels.shape[1], pixels.shape[0]),
        manifest=read_manifest(data, media_type, context),
        watermark=_read_watermark(pixels),
    )


def verify_files(paths: list[Path], trust_anchor: Path | None) -> list[FileReport]:
    """One report per path, in order; unreadable files get an ``error`` and do not stop the others."""
    context = trust_context(trust_anchor.read_text() if trust_anchor else None)
    reports = []
    for path in paths:
        name = str(path)
        try:
            n_bytes = path.stat().st_size
            if n_bytes > MAX_FILE_BYTES:
                reports.append(FileReport(name, error=f"file too large: {n_bytes:,} bytes (limit {MAX_FILE_BYTES:,})"))
                continue
            data = path.read_bytes()
        except OSError as error:
            reports.append(FileReport(name, error=f"cannot read: {error.strerror or error}"))
            continue
        reports.append(verify_bytes(name, data, context))
    return reports


def _signing_time(manifest: ManifestReport) -> str:
    if manifest.timestamp == "absent":
        return "no time-stamp (valid only while the signing certificate is)"
    described = {"trusted": "time-stamp by a trusted TSA", "untrusted": "time-stamp by an UNTRUSTED TSA"}
    return f"{manifest.signed_at} ({described.get(manifest.timestamp, 'time-stamp INVALID')})"


def format_report(report: FileReport) -> str:
    """Readable lines for one file."""
    if report.error is not None:
        return f"{report.path}: ERROR {report.error}"
    width, height = report.size or (0, 0)
    lines = [f"{report.path}: {report.media_type} {width}×{height}"]
    manifest = report.manifest
    if manifest is None or manifest.state == "absent":
        lines.append(
            "  C2PA manifest: absent" + "".join(f" ({note})" for note in (manifest.failures if manifest else []))
        )
    else:
        if manifest.state == "invalid":
            trust = "altered after signing or corrupt; claimed signer"
        else:
            trust = "trusted signer" if manifest.trusted else "UNTRUSTED signer (does not chain to the configured CA)"
        lines.append(f"  C2PA manifest: {manifest.state.upper()}, {trust}: {manifest.signer}")
        if manifest.digital_source_type:
            lines.append(f"    digital source type: {manifest.digital_source_type}")
        if manifest.generator:
            version = f"version {manifest.generator_version}" if manifest.generator_version else "not registered yet"
            lines.append(f"    generator: {manifest.generator} {version} (claim generator {manifest.claim_generator})")
        known = [key for key in PARAMETER_ORDER if key in manifest.parameters]
        for key in known + sorted(set(manifest.parameters) - set(known)):
            lines.append(f"    {key}: {manifest.parameters[key]}")
        lines.append(f"    signed at: {_signing_time(manifest)}")
        for failure in manifest.failures:
            lines.append(f"    failed: {failure}")
    watermark = report.watermark
    if watermark is not None and watermark.found:
        lines.append(
            f"  watermark: found, model version {watermark.version}, model hash {watermark.model_hash} "
            f"(bit agreement {watermark.bit_accuracy:.2f})"
        )
    else:
        lines.append("  watermark: not found")
    return "\n".join(lines)
