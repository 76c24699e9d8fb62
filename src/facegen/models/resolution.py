"""The one rule for the image side an architecture is built at: a power of two within that architecture's range.

Every architecture here doubles (or halves) the side once per block from 4×4, so only powers of two have a block
layout; each states the largest side it is built and documented for (``MAX_RESOLUTION`` in its module, registered
with it in facegen.models.registry). Models check their ``resolution`` with :func:`check_resolution` when built;
configs are checked through ``facegen.models.registry.check_resolution`` before any data work.
"""

from __future__ import annotations

MIN_RESOLUTION = 8  # 4×4 first block + at least one doubling
LARGEST_RESOLUTION = (
    1024  # the brief's target: no registered architecture is built above it, so no data is packed above it
)


def check_resolution(resolution: int, architecture: str, maximum: int, minimum: int = MIN_RESOLUTION) -> int:
    """log2 of ``resolution``; a ValueError naming the architecture, its range and what is wrong otherwise."""
    rule = f"{architecture} resolution must be a power of two from {minimum} to {maximum}, got {resolution!r}"
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise ValueError(f"{rule}: not an integer")
    if resolution < 1 or resolution & (resolution - 1):
        raise ValueError(f"{rule}: not a power of two")
    if resolution > maximum:
        raise ValueError(f"{rule}: above the largest {architecture} supports")
    if resolution < minimum:
        raise ValueError(f"{rule}: below the smallest {architecture} supports")
    return resolution.bit_length() - 1
