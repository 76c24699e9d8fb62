"""Labels from UTKFace file names and from the attributes a generated face was requested with: well-formed input maps
onto the shared vocabulary; anything else never crashes and says why it gave no labels."""

from __future__ import annotations

import pytest

from facegen.attributes import AGE_BINS, ETHNICITIES, GENDERS
from facegen.data.labels import parse_requested_attributes, parse_utkface_name

NO_LABELS = {"age": None, "gender": None, "ethnicity": None, "age_bin": None}


@pytest.mark.parametrize(
    ("name", "age", "gender", "ethnicity", "age_bin"),
    [
        ("100_0_0_20170112213500903.jpg.chip.jpg", 100, "male", "White", "70+"),
        ("1_1_2_20161219154612988.jpg.chip.jpg", 1, "female", "Asian", "0-2"),
        ("25_0_1_20170117141726361.jpg.chip.jpg", 25, "male", "Black", "20-29"),
        ("9_1_3_20161220222856346.jpg.chip.jpg", 9, "female", "Indian", "3-9"),
        ("40_1_4_20170104184720513.jpg.chip.jpg", 40, "female", "Others", "40-49"),
    ],
)
def test_well_formed_names_give_vocabulary_labels(name: str, age: int, gender: str, ethnicity: str, age_bin: str):
    labels = parse_utkface_name(name)

    assert labels == {"age": age, "gender": gender, "ethnicity": ethnicity, "age_bin": age_bin, "label_error": None}
    assert labels["gender"] in GENDERS and labels["ethnicity"] in ETHNICITIES and labels["age_bin"] in AGE_BINS


def test_paths_and_entry_uris_use_the_last_component() -> None:
    uri = "zip:///data/UTKFace.zip!/UTKFace/26_1_0_20170116184028385.jpg.chip.jpg"

    assert parse_utkface_name(uri)["age"] == 26
    assert parse_utkface_name("s3://b/utk/26_1_0_20170116184028385.jpg.chip.jpg")["gender"] == "female"


@pytest.mark.parametrize(
    ("name", "why"),
    [  # the five malformed names in the shared UTKFace copy, plus out-of-range codes
        ("24_0_1_20170116220224657 .jpg.chip.jpg", "contains whitespace"),
        ("55_0_0_20170116232725357jpg.chip.jpg", "does not end in '.jpg.chip.jpg'"),
        ("39_1_20170116174525125.jpg.chip.jpg", "has 3 '_'-separated fields, expected 4"),
        ("61_1_20170109142408075.jpg.chip.jpg", "has 3 '_'-separated fields, expected 4"),
        ("61_1_20170109150557335.jpg.chip.jpg", "has 3 '_'-separated fields, expected 4"),
        ("30_2_0_20170109150557335.jpg.chip.jpg", "gender code 2"),
        ("30_0_7_20170109150557335.jpg.chip.jpg", "race code 7"),
        ("3x_0_0_20170109150557335.jpg.chip.jpg", "malformed UTKFace name"),
        ("20_0_0_x.jpg.chip.jpg", "has a non-numeric field"),
    ],
)
def test_malformed_utkface_names_get_no_labels_and_a_reason(name: str, why: str) -> None:
    labels = parse_utkface_name(name)

    assert {key: labels[key] for key in NO_LABELS} == NO_LABELS
    assert why in labels["label_error"]


@pytest.mark.parametrize("name", ["00001.png", "000001.jpg", "img_0001.jpeg", "face.webp", "69999.png", ""])
def test_names_from_other_data_sets_are_unlabelled_not_errors(name: str) -> None:
    assert parse_utkface_name(name) == {**NO_LABELS, "label_error": None}


@pytest.mark.parametrize(
    ("attributes", "labels"),
    [
        (
            '{"age_bin": "70+", "ethnicity": "Asian", "gender": "female"}',
            {"gender": "female", "age_bin": "70+", "ethnicity": "Asian"},
        ),
        ('{"gender": "male"}', {"gender": "male", "age_bin": None, "ethnicity": None}),
        ("{}", {"gender": None, "age_bin": None, "ethnicity": None}),
    ],
)
def test_requested_attributes_are_labels_without_an_age(attributes: str, labels: dict) -> None:
    assert parse_requested_attributes(attributes) == {**labels, "age": None, "label_error": None}


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ("", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"age": "30"}', "unknown attribute(s) ['age']"),
        ('{"age_bin": "30-35"}', "requested age_bin '30-35' is not one of"),
    ],
)
def test_requested_attributes_outside_the_vocabulary_give_no_labels_and_a_reason(attributes: str, why: str) -> None:
    labels = parse_requested_attributes(attributes)

    assert {key: labels[key] for key in NO_LABELS} == NO_LABELS
    assert why in labels["label_error"]
