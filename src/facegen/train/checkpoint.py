"""Training state on disk: everything needed to continue a run exactly where it stopped, and its copy off the node.

A checkpoint holds G, D, the EMA generator, both optimisers, the gradient scaler, every rank's RNG states, the
counters (generator steps, images seen), the rollback count and the metric history, so curves continue instead of
restarting after a resume. Writes are atomic (temp file + rename): a kill mid-write leaves the previous checkpoint.

A lost pod loses its disk, so each new checkpoint is also copied to durable storage (``CheckpointMirror``): the
artifact store under a key stable across retries of one pipeline run (the train_gan step), or an S3 prefix
(``ddp_main --remote``, the PyTorchJob).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import torch

from facegen.models.bundle import atomic_torch_save

FORMAT_VERSION = 2  # 2: RNG states of every rank (1 held rank 0's only, so a DDP resume was not exact)
CHECKPOINT_FILE = "last.pt"
#: Seconds between looks at the local checkpoint file for a new version to copy.
MIRROR_INTERVAL_S = 1.0

log = logging.getLogger(__name__)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_torch_save({"format_version": FORMAT_VERSION, **state}, path)


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; it holds only tensors and plain containers."""
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state.get('format_version')!r}, expected {FORMAT_VERSION}")
    return state


def check_resumable(state: dict[str, Any], architecture: str, model_config: dict[str, Any], path: Path | str) -> None:
    """Refuse to continue a checkpoint of another model: its weights would not load, or would load into the wrong
    net. Training knobs may differ (more epochs continue a finished run)."""
    trained = (state["config"]["architecture"], state["model_config"])
    if trained != (architecture, model_config):
        raise ValueError(
            f"{path} holds architecture {trained[0]!r} with model {trained[1]}; this run trains {architecture!r} "
            f"with model {model_config}: resume only the same model (or start without the checkpoint)"
        )


def checkpoint_key(root: str, pipeline_run_id: str, step_name: str) -> str:
    """Where a pipeline step's checkpoint lives under a store root: the same for every retry of one run."""
    return f"{root.rstrip('/')}/checkpoints/{pipeline_run_id}/{step_name}/{CHECKPOINT_FILE}"


#: Copies the checkpoint at a store URI to a local path; False when there is none (``s3_download``, or the artifact
#: store's files in the train_gan step).
Fetch = Callable[[str, Path], bool]


def fetch_resume_checkpoint(
    local: Path,
    own_key: str,
    resume_from: str | None,
    fetch: Fetch,
    architecture: str,
    model_config: dict[str, Any],
) -> str | None:
    """Put the checkpoint a run continues at ``local`` and return where it came from (None: the run starts at step 0).

    The run's own key comes first: a retry is further along than the checkpoint it was started from. Otherwise
    ``resume_from`` (another run's checkpoint: a re-run that continues it, counters intact) must exist and hold this
    run's model (``check_resumable``), else the error says so before any training starts; ``model_config`` is the
    trainer's (the ``model`` knobs plus the data's resolution).
    """
    if fetch(own_key, local):
        return own_key
    if resume_from is None:
        return None
    if not fetch(resume_from, local):
        raise FileNotFoundError(
            f"resume_from: no checkpoint at {resume_from!r} (a run writes one at each epoch's end and every "
            "checkpoint_every_steps; a run that never reached one has nothing to continue)"
        )
    try:
        check_resumable(load_checkpoint(local, torch.device("cpu")), architecture, model_config, resume_from)
    except ValueError as error:
        local.unlink()  # a refused checkpoint is not left where the trainer would resume from it
        raise ValueError(f"resume_from {resume_from!r} cannot be continued: {error}") from error
    return resume_from


class CheckpointMirror:
    """Copies each new version of a local checkpoint file with ``push`` (a background thread), and once more at exit.

    Versions are told apart by (mtime, size): ``save_checkpoint`` replaces the file whole, so a version seen is a
    complete one. A push that fails while training is logged and tried again at the next look; at exit it raises,
    so a run never ends believing its state is safe when it is not.
    """

    def __init__(self, path: Path, push: Callable[[Path], None], interval_s: float = MIRROR_INTERVAL_S) -> None:
        self.path, self.push, self.interval_s = path, push, interval_s
        self._pushed: tuple[int, int] | None = self._version()  # a restored checkpoint is already there
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="checkpoint-mirror", daemon=True)

    def _version(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def sync(self) -> None:
        """Push the local checkpoint if it changed since the last push."""
        version = self._version()
        if version is not None and version != self._pushed:
            self.push(self.path)
            self._pushed = version

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
            except Exception as error:  # noqa: BLE001 - the next look retries; the exit's sync raises
                log.warning("could not copy checkpoint %s off this node (will retry): %s", self.path, error)

    def __enter__(self) -> "CheckpointMirror":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sync()  # the final checkpoint; raises if the store cannot take it


def _s3_location(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"expected an s3://bucket/prefix URI, got {uri!r}")
    return parsed.netloc, parsed.path.strip("/")


def s3_upload(path: Path, uri: str) -> None:
    """Upload one file to the S3 object ``uri`` (facegen's S3 client: endpoint override, adaptive retries)."""
    from facegen.data.sources import default_s3_client

    bucket, key = _s3_location(uri)
    default_s3_client().upload_file(str(path), bucket, key)


def s3_download(uri: str, path: Path) -> bool:
    """Download the S3 object ``uri`` to ``path`` (atomically); False when there is no such object."""
    from botocore.exceptions import ClientError

    from facegen.data.sources import default_s3_client

    bucket, key = _s3_location(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    try:
        default_s3_client().download_file(bucket, key, str(partial))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return False
        raise OSError(f"could not read S3 object {uri!r}: {error}") from error
    partial.replace(path)
    return True
