"""Config dictionaries from YAML meet dataclasses here: a key nobody reads is an error that names it, never dropped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def reject_unknown(values: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raise ValueError naming every key of ``values`` outside ``allowed`` (and the allowed ones)."""
    allowed = sorted(allowed)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {unknown}; allowed: {allowed}")


def dataclass_from_dict(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """``cls(**values)`` after checking that every key is one of the dataclass's fields."""
    values = dict(values or {})
    reject_unknown(values, (f.name for f in fields(cls)), where)
    return cls(**values)
