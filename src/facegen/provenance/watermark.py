"""Invisible watermark that names the model version of a generated face.

Why written here rather than taken from `invisible-watermark` 0.2: its RivaGAN network reads back after JPEG and
crops but costs ~190 ms per 256² embed on this CPU and loses a 0.5× resize; its DWT-DCT(-SVD) methods cost 5-17 ms
and lose a 10 % crop (block grid shifts). Measured figures: docs/benchmarks.md, "Watermark".

Method: a periodic spread-spectrum luminance pattern, after Kutter, "Watermarking resisting to translation, rotation
and scaling" (SPIE 1998). A 64×64 tile, the sum of a sync pattern and one ±1-weighted pattern per code bit (random,
band-limited to periods of ~6-21 px, orthonormalised), is tiled over the face and scaled by local contrast so it hides
in texture. Reading: whiten the luminance, find the tile period from the autocorrelation (a resize changes it), fold
the image onto one tile (a crop becomes a cyclic shift), find the shift by correlating with the sync pattern, then
correlate each bit pattern. JPEG removes the finest detail only; the band sits below it.

Payload (48 code bits): version (16 bits, big-endian) | model hash (16 bits: the first 4 hex digits of the registered
version's MLflow run id) | CRC-16/CCITT of those 4 bytes. ``found`` needs a sync peak above a threshold set from the
null distribution of real photos AND a valid CRC (after trying the flips of the least reliable bits).
"""

import binascii
import functools
import itertools
from dataclasses import dataclass

import cv2
import numpy as np

MIN_WATERMARK_SIDE = 256
"""Faces smaller than this on a side are not marked (they carry the C2PA manifest only)."""

MIN_READ_SIDE = 96
"""Images smaller than this on a side hold too few tile periods to read: they read as not found."""

_TILE = 64
_BAND = (3.0, 10.0)  # radial frequency band of the patterns, cycles per tile
_KEY_SEED = 0x14F4CE
_PAYLOAD_BITS = 32
_CODE_BITS = 48
_SYNC_WEIGHT = 0.4  # share of the tile's energy in the sync pattern
_STRENGTH = 3.5  # RMS of the luminance change, grey levels (PSNR ≈ 20·log10(255/3.5) ≈ 37.2 dB before clipping)
_MASK_WINDOW = 7
_MASK_RANGE = (0.3, 2.5)
_WHITEN_SIGMA = 3.0
_SYNC_Z_THRESHOLD = 5.5
_CHASE_BITS = 8
_PERIOD_CANDIDATES = 3
_MIN_PERIOD = 12


@dataclass(frozen=True)
class WatermarkReading:
    """What `read_watermark` found; version and model_hash are None when no mark was found."""

    found: bool
    version: int | None
    model_hash: str | None
    bit_accuracy: float | None


@functools.cache
def _patterns() -> tuple[np.ndarray, np.ndarray]:
    """The sync pattern (TILE×TILE) and the code-bit patterns (CODE_BITS×TILE×TILE), orthonormal, from a fixed key."""
    rng = np.random.default_rng(_KEY_SEED)
    radius = _radius()
    band = (radius >= _BAND[0]) & (radius <= _BAND[1])
    n = _CODE_BITS + 1
    spectra = (rng.standard_normal((n, *band.shape)) + 1j * rng.standard_normal((n, *band.shape))) * band
    patterns = np.fft.irfft2(spectra, s=(_TILE, _TILE)).reshape(n, -1)
    q, _ = np.linalg.qr(patterns.T)
    q = (q.T * _TILE).reshape(n, _TILE, _TILE).astype(np.float32)  # unit RMS per pattern
    return q[0], q[1:]


def _radius() -> np.ndarray:
    """Radial frequency (cycles per tile) of each rfft2 bin of a tile."""
    return np.hypot(np.fft.fftfreq(_TILE)[:, None] * _TILE, np.fft.rfftfreq(_TILE)[None, :] * _TILE)


@functools.cache
def _rings() -> np.ndarray:
    """Each rfft2 bin's radial frequency rounded to whole cycles per tile: the rings the noise power is taken over."""
    return np.rint(_radius()).astype(np.int64)


@functools.cache
def _pattern_spectra() -> tuple[np.ndarray, np.ndarray]:
    """rfft2 of the sync pattern (row 0) and the code-bit patterns, with each bin weighted by how often it counts
    in the full spectrum (1 for the first and last column, 2 for the others) so inner products follow Parseval."""
    sync, bit_patterns = _patterns()
    spectra = np.fft.rfft2(np.concatenate([sync[None], bit_patterns]))
    multiplicity = np.full(spectra.shape[1:], 2.0)
    multiplicity[:, [0, -1]] = 1.0
    return spectra, multiplicity


def _code_bits(version: int, model_hash: str) -> np.ndarray:
    if not 0 <= version < 2**16:
        raise ValueError(f"version must be in 0..65535 to fit the watermark's 16 bits, got {version}")
    short = model_hash[:4].lower()
    if len(short) < 4 or any(c not in "0123456789abcdef" for c in short):
        raise ValueError(f"model_hash must be a hex string of ≥ 4 digits (the MLflow run id), got {model_hash!r}")
    data = version.to_bytes(2, "big") + bytes.fromhex(short)
    crc = binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(data + crc, dtype=np.uint8))


def _parse_code(bits: np.ndarray) -> tuple[int, str] | None:
    raw = np.packbits(bits.astype(np.uint8)).tobytes()
    if binascii.crc_hqx(raw[:4], 0xFFFF) != int.from_bytes(raw[4:], "big"):
        return None
    return int.from_bytes(raw[:2], "big"), raw[2:4].hex()


def _luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _local_contrast(lum: np.ndarray) -> np.ndarray:
    """Local standard deviation of the luminance plus a floor, so flat areas get a weak but nonzero mark."""
    k = (_MASK_WINDOW, _MASK_WINDOW)
    mean = cv2.blur(lum, k)
    var = np.maximum(cv2.blur(lum * lum, k) - mean * mean, 0.0)
    return np.sqrt(var) + 2.0


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB array, got {getattr(image, 'dtype', type(image))} "
            f"of shape {getattr(image, 'shape', None)}"
        )


def embed_watermark(image: np.ndarray, version: int, model_hash: str) -> np.ndarray:
    """Return a copy of the RGB face with the version's mark in its luminance; faces under 256 px a side are refused."""
    _check_rgb(image)
    h, w = image.shape[:2]
    if min(h, w) < MIN_WATERMARK_SIDE:
        raise ValueError(
            f"faces smaller than {MIN_WATERMARK_SIDE}×{MIN_WATERMARK_SIDE} are not watermarked, got {w}×{h}"
        )
    signs = _code_bits(version, model_hash).astype(np.float32) * 2.0 - 1.0
    sync, bit_patterns = _patterns()
    tile = np.sqrt(_SYNC_WEIGHT) * sync + np.sqrt((1.0 - _SYNC_WEIGHT) / _CODE_BITS) * np.tensordot(
        signs, bit_patterns, axes=1
    )
    tiled = np.tile(tile, (-(-h // _TILE), -(-w // _TILE)))[:h, :w]
    mask = _local_contrast(_luminance(image))
    mask = np.clip(mask / np.sqrt(np.mean(mask * mask)), *_MASK_RANGE)
    delta = (_STRENGTH * mask * tiled)[..., None]
    return np.clip(image.astype(np.float32) + delta + 0.5, 0, 255).astype(np.uint8)


def _whiten(lum: np.ndarray) -> np.ndarray:
    """Remove the image's own low frequencies and divide by local contrast (undoing the embedder's mask)."""
    residual = lum - cv2.GaussianBlur(lum, (0, 0), _WHITEN_SIGMA)
    return residual / _local_contrast(lum)


def _period_candidates(white: np.ndarray) -> list[int]:
    """Whole-pixel tile periods to try: the embedded one and the strongest peaks of the autocorrelation on the
    period lattice ((p,0), (0,p), (p,±p)) — a resize (aspect kept) scales the period, a crop keeps it."""
    h, w = white.shape
    autocorr = np.fft.irfft2(np.abs(np.fft.rfft2(white, s=(2 * h, 2 * w))) ** 2, s=(2 * h, 2 * w))
    lags = np.arange(_MIN_PERIOD - 1, min(h, w) // 2 + 1)
    score = autocorr[lags, 0] + autocorr[0, lags] + autocorr[lags, lags] + autocorr[lags, -lags]
    peak = np.flatnonzero((score[1:-1] > score[:-2]) & (score[1:-1] >= score[2:])) + 1
    strongest = lags[peak[np.argsort(score[peak])[::-1][:_PERIOD_CANDIDATES]]]
    return list(dict.fromkeys([_TILE, *strongest.tolist()]))


def _fold(white: np.ndarray, period: float) -> np.ndarray:
    """Rescale the whitened image so the tile period is TILE, then average it onto one tile (position mod TILE)."""
    if period != _TILE:
        h, w = white.shape
        white = cv2.resize(
            white, (round(w * _TILE / period), round(h * _TILE / period)), interpolation=cv2.INTER_LINEAR
        )
    h, w = white.shape
    ph, pw = -(-h // _TILE) * _TILE, -(-w // _TILE) * _TILE
    padded = np.zeros((2, ph, pw), np.float32)
    padded[0, :h, :w] = white
    padded[1, :h, :w] = 1.0
    total, count = padded.reshape(2, ph // _TILE, _TILE, pw // _TILE, _TILE).sum(axis=(1, 3))
    return total / count


@dataclass(frozen=True)
class _Sync:
    z: float
    shift: tuple[int, int]
    spectrum: np.ndarray
    inverse_power: np.ndarray


def _sync(white: np.ndarray, period: float) -> _Sync:
    """Fold at one assumed period and find the cyclic shift of the sync pattern; z-score of its correlation peak."""
    spectrum = np.fft.rfft2(_fold(white, period))
    rings = _rings()
    ring_power = np.bincount(rings.ravel(), (np.abs(spectrum) ** 2).ravel()) / np.bincount(rings.ravel())
    inverse_power = 1.0 / (ring_power[rings] + 1e-12)  # whitens the image's own (coloured) spectrum
    surface = np.fft.irfft2(spectrum * inverse_power * np.conj(_pattern_spectra()[0][0]), s=(_TILE, _TILE))
    dy, dx = np.unravel_index(np.argmax(surface), surface.shape)
    z = float((surface[dy, dx] - surface.mean()) / (surface.std() + 1e-12))
    return _Sync(z, (int(dy), int(dx)), spectrum, inverse_power)


def _refined_sync(white: np.ndarray, period: int) -> _Sync:
    """Sync at a candidate period, refined in quarter then sixteenth pixels (the fold blurs if the period is off);
    the embedded period needs no refinement: crops keep it exactly."""
    best, best_period = _sync(white, period), float(period)
    if period == _TILE:
        return best
    for step in (0.25, 0.0625):
        for p in best_period + step * np.array([-2.0, -1.0, 1.0, 2.0]):
            candidate = _sync(white, float(p))
            if candidate.z > best.z:
                best, best_period = candidate, float(p)
    return best


def _code_weights(sync: _Sync) -> np.ndarray:
    """Generalised least squares for all pattern weights at once (whitening breaks the patterns' orthogonality)."""
    aligned = np.fft.rfft2(np.roll(np.fft.irfft2(sync.spectrum, s=(_TILE, _TILE)), [-v for v in sync.shift], (0, 1)))
    pattern_spectra, multiplicity = _pattern_spectra()
    flat = pattern_spectra.reshape(len(pattern_spectra), -1)
    weighted = flat * (sync.inverse_power * multiplicity).ravel()
    gram = np.real(weighted @ np.conj(flat).T)
    rhs = np.real(np.conj(weighted) @ aligned.ravel())
    return np.linalg.solve(gram, rhs)[1:]


def read_code_bits(image: np.ndarray) -> tuple[float, np.ndarray]:
    """The best sync z-score and the soft code-bit weights read there (> 0 means 1); for measuring bit accuracy."""
    _check_rgb(image)
    white = _whiten(_luminance(image))
    best = max((_refined_sync(white, p) for p in _period_candidates(white)), key=lambda sync: sync.z)
    return best.z, _code_weights(best)


def read_watermark(image: np.ndarray) -> WatermarkReading:
    """Read the mark from an RGB image of any size ≥ MIN_READ_SIDE (smaller ones read as not found)."""
    _check_rgb(image)
    not_found = WatermarkReading(found=False, version=None, model_hash=None, bit_accuracy=None)
    if min(image.shape[:2]) < MIN_READ_SIDE:
        return not_found
    z, soft = read_code_bits(image)
    if z < _SYNC_Z_THRESHOLD:
        return not_found
    hard = soft > 0
    weakest = np.argsort(np.abs(soft))[:_CHASE_BITS]
    flips = sorted(
        itertools.product((False, True), repeat=_CHASE_BITS), key=lambda f: float(np.abs(soft[weakest])[list(f)].sum())
    )
    for flip in flips:
        candidate = hard.copy()
        candidate[weakest[list(flip)]] ^= True
        parsed = _parse_code(candidate)
        if parsed is not None:
            return WatermarkReading(
                found=True, version=parsed[0], model_hash=parsed[1], bit_accuracy=float(np.mean(candidate == hard))
            )
    return not_found
