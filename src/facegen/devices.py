"""Which torch device a piece of work runs on: the one place that decides what "auto" means."""

from __future__ import annotations

import torch


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` or None → the first CUDA device when there is one, else the CPU; ``cpu`` / ``cuda[:N]`` as given.

    Anything else (``mps``, a typo) is refused with the accepted values, instead of failing later inside torch.
    """
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as error:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {spec!r}") from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {spec!r}")
    return device
