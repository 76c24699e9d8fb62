"""Demographic labels of an image, mapped onto the shared vocabulary in :mod:`facegen.attributes`: from UTKFace file
names, or from the attributes a generated face was requested with (a ``facegen feedback-export`` folder).

UTKFace names read ``[age]_[gender]_[race]_[date&time].jpg.chip.jpg`` (gender 0 = male, 1 = female; race
0 White, 1 Black, 2 Asian, 3 Indian, 4 Others). A name that looks like UTKFace but breaks that pattern gets
*no* labels and a ``label_error`` saying why: once a field is missing or shifted, no single field can be
trusted, and the handful of such names is not worth guessing over. Names from other data sets
(``00001.png``) carry no labels and are not errors.

A feedback face's labels are the attributes it was generated with (``{"gender": "female"}``): exact bins, no age in
years (``age`` stays None; only ``age_bin`` is used downstream). Attributes outside the vocabulary give no labels and a
``label_error``, like a malformed file name: the face itself may still be good, its labels are not trusted.
"""

from __future__ import annotations

import json
import re
from typing import Any

from facegen.attributes import ATTRIBUTE_VALUES, ETHNICITIES, age_to_bin

_GENDER_CODES: dict[str, str] = {"0": "male", "1": "female"}
_RACE_CODES: dict[str, str] = {str(i): ethnicity for i, ethnicity in enumerate(ETHNICITIES)}
assert set(_GENDER_CODES.values()) == set(ATTRIBUTE_VALUES["gender"])

_SUFFIX = ".jpg.chip.jpg"
_STRICT = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>\d+)_(?P<race>\d+)_(?P<stamp>\d+)\.jpg\.chip\.jpg$")
# Two leading numeric fields or the ".chip.jpg" suffix: the name is meant to be UTKFace-style.
_UTKFACE_LIKE = re.compile(r"^\d+_\d+_|\.chip\.jpg$", re.IGNORECASE)


def _no_labels(label_error: str | None) -> dict[str, Any]:
    return {"age": None, "gender": None, "ethnicity": None, "age_bin": None, "label_error": label_error}


def _diagnose(name: str) -> str:
    """Short reason why a UTKFace-looking name does not match the pattern."""
    if re.search(r"\s", name):
        problem = "contains whitespace"
    elif not name.endswith(_SUFFIX):
        problem = f"does not end in {_SUFFIX!r}"
    else:
        n_fields = len(name[: -len(_SUFFIX)].split("_"))
        problem = f"has {n_fields} '_'-separated fields, expected 4" if n_fields != 4 else "has a non-numeric field"
    return f"malformed UTKFace name {name!r}: {problem}; expected '[age]_[gender]_[race]_[datetime]{_SUFFIX}'"


def parse_utkface_name(name: str) -> dict[str, Any]:
    """Labels from a UTKFace file name (a bare name, a path or an entry URI: only the last component is used).

    Returns ``{"age", "gender", "ethnicity", "age_bin", "label_error"}``; all labels are None when the name
    is not UTKFace-style (``label_error`` None) or is malformed (``label_error`` says why).
    """
    basename = name.rsplit("/", 1)[-1]
    if not _UTKFACE_LIKE.search(basename):
        return _no_labels(None)
    match = _STRICT.match(basename)
    if match is None:
        return _no_labels(_diagnose(basename))
    gender, race = match["gender"], match["race"]
    if gender not in _GENDER_CODES:
        return _no_labels(f"UTKFace name {basename!r}: gender code {gender} is not 0 (male) or 1 (female)")
    if race not in _RACE_CODES:
        return _no_labels(f"UTKFace name {basename!r}: race code {race} is not in 0-4")
    age = int(match["age"])
    return {
        "age": age,
        "gender": _GENDER_CODES[gender],
        "ethnicity": _RACE_CODES[race],
        "age_bin": age_to_bin(age),
        "label_error": None,
    }


def parse_requested_attributes(attributes_json: str) -> dict[str, Any]:
    """Labels from the ``attributes`` JSON a generated face was requested with (``{}``: an unconditional face).

    Returns the same keys as :func:`parse_utkface_name`; ``age`` is always None (a request names a bin, not an age).
    Unknown attributes, values outside the vocabulary or malformed JSON give no labels and a ``label_error``.
    """
    try:
        attributes = json.loads(attributes_json)
    except (TypeError, json.JSONDecodeError) as error:
        return _no_labels(f"requested attributes {attributes_json!r} are not JSON: {error}")
    if not isinstance(attributes, dict):
        return _no_labels(f"requested attributes {attributes_json!r} are not a JSON object")
    unknown = sorted(set(attributes) - set(ATTRIBUTE_VALUES))
    if unknown:
        return _no_labels(f"requested attributes name unknown attribute(s) {unknown}; known: {list(ATTRIBUTE_VALUES)}")
    for name, value in attributes.items():
        if value not in ATTRIBUTE_VALUES[name]:
            return _no_labels(f"requested {name} {value!r} is not one of {list(ATTRIBUTE_VALUES[name])}")
    return {
        "age": None,
        "gender": attributes.get("gender"),
        "ethnicity": attributes.get("ethnicity"),
        "age_bin": attributes.get("age_bin"),
        "label_error": None,
    }
