"""One feature pass: InceptionV3 pool3 features of uint8 images, and a cached record of the real side.

Every fidelity metric (FID, KID, precision/recall, memorisation) is a function of the 2048-d pool3 features, so
images go through the network once and the real set's features are kept (:class:`RealFeatures`, one ``.npz``)
to be compared against each new generator without re-running the network on the training faces. The record
carries what it was computed from (content hash, resolution, extractor, weights hash) so a stale cache fails
loudly instead of silently scoring against other faces.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.utils import create_feature_extractor
from tqdm.auto import tqdm

from facegen.devices import resolve_device

#: torch-fidelity's registry name of the TF-compatible InceptionV3, and the layer FID/KID/PRC use.
INCEPTION = "inception-v3-compat"
POOL3 = "2048"
#: Identity of the features this module produces: extractor and layer.
INCEPTION_POOL3 = f"{INCEPTION}/{POOL3}"


def check_images(images: np.ndarray, name: str, *, min_count: int = 1) -> None:
    """Reject what the extractor would misread silently (floats in [0, 1], HWC layout) or cannot use."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        found = getattr(images, "dtype", type(images))
        raise ValueError(f"{name} must be a uint8 numpy array in [0, 255], got {found}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape N×3×H×W, got {images.shape}")
    if images.shape[0] < min_count:
        raise ValueError(f"{name} needs at least {min_count} images, got {images.shape[0]}")


def load_extractor(
    name: str, layer: str, *, device: str | torch.device | None = None, **extractor_kwargs: object
) -> FeatureExtractorBase:
    """A torch-fidelity registered feature extractor producing ``layer``, in eval mode on ``device``."""
    extractor = create_feature_extractor(name, [layer], cuda=False, verbose=False, **extractor_kwargs)
    return extractor.to(resolve_device(device))


@torch.no_grad()
def run_extractor(
    extractor: FeatureExtractorBase, images: np.ndarray, *, batch_size: int = 64, progress: bool = False
) -> torch.Tensor:
    """The extractor's single requested layer for every image (N×D float32 on the CPU), in batches."""
    check_images(images, "images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = next(extractor.parameters()).device
    chunks = []
    with tqdm(total=len(images), unit="img", desc=extractor.get_name(), disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
            (features,) = extractor(batch)
            chunks.append(features.float().cpu())
            bar.update(len(batch))
    return torch.cat(chunks)


def inception_features(
    images: np.ndarray,
    *,
    weights_path: Path,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Pool3 features (N×2048 float32, as torch-fidelity computes them) of uint8 N×3×H×W images."""
    check_images(images, "images")
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(
            f"Inception weights not found at {weights_path}; create them with "
            f"`python -m facegen.metrics.inception_weights [DEST]`"
        )
    extractor = load_extractor(INCEPTION, POOL3, device=device, feature_extractor_weights_path=str(weights_path))
    return run_extractor(extractor, images, batch_size=batch_size, progress=progress).numpy()


def dataset_hash(images: np.ndarray) -> str:
    """SHA-256 of a uint8 image array's shape and bytes: the identity of a real set (order matters)."""
    check_images(images, "images")
    digest = hashlib.sha256(repr(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def unique_images(images: np.ndarray) -> np.ndarray:
    """Each distinct image once, in order of first occurrence.

    Training sets are oversampled for balance; real statistics must weigh each face once, not by its sampling rate.
    """
    check_images(images, "images")
    rows = np.ascontiguousarray(images).reshape(len(images), -1)
    keys = rows.view(np.dtype((np.void, rows.shape[1])))[:, 0]
    _, first = np.unique(keys, return_index=True)
    return images[np.sort(first)]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks (the weights' identity in a :class:`RealFeatures` record)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class RealFeaturesMismatch(ValueError):
    """A cached real-feature record describes other data, resolution, extractor or weights than expected."""


_IDENTITY = ("dataset_hash", "resolution", "extractor", "weights_sha256")


#: File names inside the real-reference folder the ``real_features`` step writes (and evaluate/train/gate read).
REAL_FEATURES_FILE = "real_features.npz"
REAL_IMAGES_FILE = "real_images.npy"  # the faces behind the features, same order (memorisation shows closest pairs)


@dataclass(frozen=True)
class RealFeatures:
    """Pool3 features of the unique real images and what they were computed from."""

    features: np.ndarray
    dataset_hash: str
    resolution: int
    extractor: str
    weights_sha256: str

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[0] < 1 or not np.issubdtype(self.features.dtype, np.floating):
            raise ValueError(
                f"features must be a non-empty N×D float array, got {self.features.dtype} {self.features.shape}"
            )

    @property
    def count(self) -> int:
        """Number of (unique) real images behind the features."""
        return int(self.features.shape[0])

    @property
    def identity(self) -> dict[str, str | int]:
        """What the record was computed from, plus its size (e.g. to log as run parameters)."""
        return {**{key: getattr(self, key) for key in _IDENTITY}, "count": self.count}

    @classmethod
    def from_images(
        cls,
        images: np.ndarray,
        *,
        weights_path: Path,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> RealFeatures:
        """Features of each distinct square image once; the hash is that of the de-duplicated set."""
        check_images(images, "real images")
        if images.shape[2] != images.shape[3]:
            raise ValueError(f"real images must be square, got {images.shape[2]}×{images.shape[3]}")
        unique = unique_images(images)
        features = inception_features(
            unique, weights_path=weights_path, batch_size=batch_size, device=device, progress=progress
        )
        return cls(features, dataset_hash(unique), int(images.shape[2]), INCEPTION_POOL3, file_sha256(weights_path))

    def save(self, path: Path) -> Path:
        """Write one ``.npz`` (no pickles) via a temporary file, so a crash never leaves a half-written cache."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, features=self.features, **{key: np.asarray(getattr(self, key)) for key in _IDENTITY})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        dataset_hash: str | None = None,
        resolution: int | None = None,
        extractor: str | None = None,
        weights_sha256: str | None = None,
    ) -> RealFeatures:
        """Read a record; every expectation given must match or :class:`RealFeaturesMismatch` names the differences."""
        with np.load(Path(path), allow_pickle=False) as stored:
            missing = sorted({"features", *_IDENTITY} - set(stored.files))
            if missing:
                raise ValueError(f"{path} is not a RealFeatures record: missing {missing}")
            record = cls(
                features=stored["features"],
                dataset_hash=str(stored["dataset_hash"]),
                resolution=int(stored["resolution"]),
                extractor=str(stored["extractor"]),
                weights_sha256=str(stored["weights_sha256"]),
            )
        expected = {
            "dataset_hash": dataset_hash,
            "resolution": resolution,
            "extractor": extractor,
            "weights_sha256": weights_sha256,
        }
        wrong = [
            f"{key}: expected {value!r}, found {getattr(record, key)!r}"
            for key, value in expected.items()
            if value is not None and getattr(record, key) != value
        ]
        if wrong:
            raise RealFeaturesMismatch(f"cached real features {path} do not match: " + "; ".join(wrong))
        return record
