"""Demographic attribute vocabulary shared by data tagging, balancing and fairness metrics (see docs/architecture.md)."""

from __future__ import annotations

GENDERS: tuple[str, ...] = ("female", "male")
AGE_BINS: tuple[str, ...] = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
ETHNICITIES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")

#: Allowed values per attribute column of the manifest.
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "age_bin": AGE_BINS,
    "ethnicity": ETHNICITIES,
}

_AGE_BIN_LOWER_BOUNDS = (0, 3, 10, 20, 30, 40, 50, 60, 70)


def age_to_bin(age: int) -> str:
    """Map an age in years to its ``age_bin`` label."""
    if age < 0:
        raise ValueError(f"age must be non-negative, got {age}")
    index = max(i for i, lower in enumerate(_AGE_BIN_LOWER_BOUNDS) if age >= lower)
    return AGE_BINS[index]
