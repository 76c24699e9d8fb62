"""Human-eval import: scoring against a known answer key, refused rating files, and the round trip through the real
MLflow server (set logged on a run, version tagged with it, `facegen human-eval import`, human-eval gate).
"""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from facegen.cli import main
from facegen.gates import GateDecision, HumanEvalRequirement
from facegen.humaneval.export import (
    ANSWER_KEY_COLUMNS,
    CANDIDATE_VS_CHAMPION,
    REAL_VS_GENERATED,
    TEMPLATE_COLUMNS,
    export_pairwise_set,
)
from facegen.humaneval.ratings import AnswerKey, RatingsError, load_answer_key, load_ratings
from facegen.humaneval.scoring import Rate, score_ratings, wilson_interval
from facegen.registry.generator_model import log_generator_model
from facegen.registry.model_registry import (
    AWAITING_HUMAN_EVAL,
    ApprovalRefused,
    apply_gate,
    approve_version,
    human_eval_requirement_from_tags,
    human_eval_requirement_tags,
    register_version,
    require_human_eval,
)
from tests.provenance_fixtures import pairwise_marking
from tests.serve_fixtures import tiny_generators as _tiny_generators_fixture
from tests.test_human_eval_export import random_faces, read_csv

tiny_generators = _tiny_generators_fixture  # the session fixture, used by this module's tests

SET_ID = "facegen-humaneval-0123456789abcdef"
N_PAIRS = 10  # per task in the exported sets


# ---- helpers: a key written by hand, ratings filled in from a key ----------------------------------------------


def write_key(path: Path, pairs: list[tuple[str, str, str]], set_id: str = SET_ID) -> Path:
    """An answer key with ``pairs`` = [(pair_id, task, side of the generated / candidate face)]."""
    rows = []
    for pair_id, task, side in pairs:
        other = "champion" if task == CANDIDATE_VS_CHAMPION else "real"
        sources = ("candidate", other) if side == "left" else (other, "candidate")
        rows.append(
            {
                "pair_id": pair_id,
                "task": task,
                "generated_side": side if task == REAL_VS_GENERATED else "",
                "candidate_side": side if task == CANDIDATE_VS_CHAMPION else "",
                "left_source": sources[0],
                "left_index": 0,
                "right_source": sources[1],
                "right_index": 0,
                "set_id": set_id,
            }
        )
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ANSWER_KEY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def other_side(side: str) -> str:
    return "right" if side == "left" else "left"


def choices(key: AnswerKey, task: str, hits: int, misses: int, blanks: int = 0) -> dict[str, str]:
    """pair_id → choice for the first pairs of ``task`` (by id): ``hits`` pick the generated / candidate side,
    then ``misses`` the other side, then ``blanks`` stay unanswered."""
    pair_ids = sorted(p for p, pair in key.pairs.items() if pair.task == task)
    assert hits + misses + blanks <= len(pair_ids)
    picked = {}
    for number, pair_id in enumerate(pair_ids[: hits + misses + blanks]):
        side = key.pairs[pair_id].key_side
        picked[pair_id] = side if number < hits else other_side(side) if number < hits + misses else ""
    return picked


def rating_rows(rater: str, picked: dict[str, str], set_id: str = SET_ID) -> list[dict[str, str]]:
    return [{"pair_id": p, "choice": c, "rater": rater, "set_id": set_id} for p, c in picked.items()]


def write_ratings(path: Path, rows: list[dict[str, str]]) -> Path:
    """Rating rows as the page writes them: CSV with the template's columns, or a JSON array of row objects."""
    full = [{column: row.get(column, "") for column in TEMPLATE_COLUMNS} for row in rows]
    if path.suffix == ".json":
        path.write_text(json.dumps(full), encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TEMPLATE_COLUMNS)
        writer.writeheader()
        writer.writerows(full)
    return path


@pytest.fixture
def key(tmp_path: Path) -> AnswerKey:
    """12 real_vs_generated pairs (r01..r12) and 6 candidate_vs_champion pairs (c1..c6), sides alternating."""
    pairs = [(f"r{i:02d}", REAL_VS_GENERATED, "left" if i % 2 else "right") for i in range(1, 13)]
    pairs += [(f"c{i}", CANDIDATE_VS_CHAMPION, "right" if i % 3 else "left") for i in range(1, 7)]
    return load_answer_key(write_key(tmp_path / "answer_key.csv", pairs))


# ---- scoring ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hits", "n", "low", "high"),
    # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson score, no continuity correction).
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_published_values(hits: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(hits, n) == pytest.approx((low, high), abs=5e-5)


def test_fool_and_win_rates_from_a_known_key(key: AnswerKey, tmp_path: Path) -> None:
    ann = {**choices(key, REAL_VS_GENERATED, hits=6, misses=4, blanks=2), **choices(key, CANDIDATE_VS_CHAMPION, 4, 2)}
    bob = {**choices(key, REAL_VS_GENERATED, hits=2, misses=6), **choices(key, CANDIDATE_VS_CHAMPION, 1, 1, 4)}
    files = [
        write_ratings(tmp_path / "ann.csv", rating_rows("ann", ann)),
        write_ratings(tmp_path / "bob.json", rating_rows("bob", bob)),
    ]
    results = score_ratings(key, load_ratings(files, key))

    assert (results.fool.hits, results.fool.n, results.fool.value) == (8, 18, 8 / 18)
    assert (results.win.hits, results.win.n, results.win.value) == (5, 8, 5 / 8)
    assert results.fool.ci95 == pytest.approx((0.2456, 0.6628), abs=5e-5)  # Wilson, 8 of 18
    assert results.win.ci95 == pytest.approx((0.3057, 0.8632), abs=5e-5)  # Wilson, 5 of 8
    assert (results.n_ratings, results.n_unanswered, results.n_raters) == (26, 6, 2)
    assert results.set_id == SET_ID
    assert [(r.rater, r.fool, r.win, r.n_unanswered) for r in results.per_rater] == [
        ("ann", Rate(6, 10), Rate(4, 6), 2),
        ("bob", Rate(2, 8), Rate(1, 2), 4),
    ]


def test_a_task_nobody_answered_has_no_rate(key: AnswerKey, tmp_path: Path) -> None:
    rows = rating_rows("ann", {**choices(key, REAL_VS_GENERATED, 3, 1), **choices(key, CANDIDATE_VS_CHAMPION, 0, 0, 6)})
    results = score_ratings(key, load_ratings([write_ratings(tmp_path / "a.csv", rows)], key))
    assert results.win == Rate(0, 0) and results.win.value is None and results.win.ci95 is None
    assert results.fool.value == 0.75 and results.n_unanswered == 6


def test_choices_ignore_case_and_spaces_and_templates_may_carry_a_bom(key: AnswerKey, tmp_path: Path) -> None:
    path = tmp_path / "offline.csv"
    write_ratings(path, rating_rows("ann", {"r01": " Left ", "r02": "RIGHT", "r03": ""}))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as a spreadsheet saves "CSV UTF-8"
    ratings = load_ratings([path], key)
    assert [(r.pair_id, r.choice) for r in ratings] == [("r01", "left"), ("r02", "right"), ("r03", "")]


# ---- refused input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([{"pair_id": "r99", "choice": "left", "rater": "ann", "set_id": SET_ID}], r"a\.csv:2: unknown pair id 'r99'"),
        (
            [{"pair_id": "r01", "choice": "left", "rater": "ann", "set_id": "facegen-humaneval-ffffffffffffffff"}],
            r"a\.csv:2: set_id 'facegen-humaneval-ffffffffffffffff' is not the answer key's",
        ),
        ([{"pair_id": "r01", "choice": "middle", "rater": "ann", "set_id": SET_ID}], "'middle' is not left, right"),
        ([{"pair_id": "r01", "choice": "left", "rater": " ", "set_id": SET_ID}], r"a\.csv:2: no rater"),
        (
            [
                {"pair_id": "r01", "choice": "left", "rater": "ann", "set_id": SET_ID},
                {"pair_id": "r01", "choice": "", "rater": "ann", "set_id": SET_ID},
            ],
            r"a\.csv:3: rater 'ann' already rated pair 'r01' at a\.csv:2",
        ),
    ],
)
def test_bad_rows_are_refused_with_their_line(key: AnswerKey, tmp_path: Path, rows, match: str) -> None:
    with pytest.raises(RatingsError, match=match):
        load_ratings([write_ratings(tmp_path / "a.csv", rows)], key)


def test_every_problem_of_every_file_is_reported_at_once(key: AnswerKey, tmp_path: Path) -> None:
    ann = rating_rows("ann", choices(key, REAL_VS_GENERATED, 2, 2))
    first = write_ratings(tmp_path / "ann.csv", ann)
    again = write_ratings(tmp_path / "ann_again.json", ann)  # the same rater's answers given twice
    bad = write_ratings(tmp_path / "bad.csv", [{"pair_id": "x1", "choice": "up", "rater": "bob", "set_id": SET_ID}])
    with pytest.raises(RatingsError) as caught:
        load_ratings([first, again, bad], key)
    problems = caught.value.problems
    assert len(problems) == 4 + 2
    assert sum("rater 'ann' already rated pair" in p and "ann_again.json[" in p for p in problems) == 4
    assert any("bad.csv:2: unknown pair id 'x1'" in p for p in problems)
    assert any("bad.csv:2: choice 'up'" in p for p in problems)


def test_unreadable_or_incomplete_files_are_refused(key: AnswerKey, tmp_path: Path) -> None:
    no_set = tmp_path / "old.csv"
    no_set.write_text("pair_id,choice,rater\nr01,left,ann\n", encoding="utf-8")
    with pytest.raises(RatingsError, match=r"column\(s\) \['set_id'\] missing"):
        load_ratings([no_set], key)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"pair_id": "r01"', encoding="utf-8")
    with pytest.raises(RatingsError, match="cannot read as JSON"):
        load_ratings([broken], key)
    not_rows = tmp_path / "object.json"
    not_rows.write_text('{"pair_id": "r01"}', encoding="utf-8")
    with pytest.raises(RatingsError, match="expected a JSON array of rating objects"):
        load_ratings([not_rows], key)
    other = tmp_path / "ratings.xlsx"
    other.write_bytes(b"PK")
    with pytest.raises(RatingsError, match=r"expected a \.csv or \.json rating file"):
        load_ratings([other], key)
    empty = write_ratings(tmp_path / "empty.csv", [])
    with pytest.raises(RatingsError, match="no rating rows"):
        load_ratings([empty], key)


def test_answer_keys_without_one_set_id_are_refused(tmp_path: Path) -> None:
    old = tmp_path / "old_key.csv"
    old.write_text("pair_id,task,generated_side,candidate_side\np1,real_vs_generated,left,\n", encoding="utf-8")
    with pytest.raises(RatingsError, match=r"not an answer key.*\['set_id'\] missing"):
        load_answer_key(old)
    mixed = write_key(tmp_path / "mixed.csv", [("p1", REAL_VS_GENERATED, "left")])
    mixed.write_text(mixed.read_text() + f"p2,{REAL_VS_GENERATED},right,,real,0,candidate,0,other-set\n")
    with pytest.raises(RatingsError, match="expected one non-empty set_id on every row"):
        load_answer_key(mixed)


# ---- the requirement on the version (the decision itself: tests/test_gates.py) -----------------------------------


def test_requirement_round_trips_through_tags() -> None:
    requirement = HumanEvalRequirement(min_fool_rate=0.3, min_ratings=40)
    assert human_eval_requirement_from_tags(human_eval_requirement_tags(requirement)) == requirement
    with pytest.raises(ValueError, match="malformed human-eval requirement tags"):
        human_eval_requirement_from_tags(
            {**human_eval_requirement_tags(requirement), "human_eval.required.min_fool_rate": "high"}
        )
    with pytest.raises(ValueError, match="records no human-eval requirement"):
        human_eval_requirement_from_tags({})


# ---- round trip through the real MLflow server -----------------------------------------------------------------


@dataclass(frozen=True)
class ExportedVersion:
    """A registered version whose ``human_eval_set`` tag points at a set logged on its own source run."""

    name: str
    version: str
    run_id: str
    key: AnswerKey  # read from the local export, independently of the import's download
    template: Path


@pytest.fixture
def exported_version(
    mlflow_tracking: MlflowClient, tiny_generators, real_faces_32: np.ndarray, tmp_path: Path
) -> ExportedVersion:
    """As the training pipeline leaves it: set and generator logged on one run, the version tagged with the set."""
    client = mlflow_tracking
    paths = export_pairwise_set(
        random_faces(N_PAIRS, 1),
        real_faces_32[:N_PAIRS],
        tmp_path / "set",
        n_pairs=N_PAIRS,
        seed=4,
        champion=random_faces(N_PAIRS, 2),
        **pairwise_marking(random_faces(N_PAIRS, 1), random_faces(N_PAIRS, 2)),
    )
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "set"), artifact_path="human_eval")
        model_uri = log_generator_model(tiny_generators.bundles[0]).model_uri
    name = f"facegen-humaneval-{uuid.uuid4().hex[:8]}"
    version = register_version(
        model_uri,
        name=name,
        metrics={"fid": 10.0},
        tags={"human_eval_set": f"runs:/{run.info.run_id}/human_eval"},
        client=client,
    )
    assert version.run_id == run.info.run_id
    return ExportedVersion(
        name, version.version, run.info.run_id, load_answer_key(paths["answer_key"]), paths["ratings_template"]
    )


def fill_template(exported: ExportedVersion, path: Path, rater: str, picked: dict[str, str]) -> Path:
    """The offline template with ``rater`` and the ``picked`` choices filled in (other rows left blank)."""
    _, rows = read_csv(exported.template)
    return write_ratings(path, [{**row, "rater": rater, "choice": picked.get(row["pair_id"], "")} for row in rows])


def import_cli(server: str, exported: ExportedVersion, *args: str):
    return CliRunner().invoke(
        main,
        [
            "human-eval",
            "import",
            *args,
            "--version",
            exported.version,
            "--model-name",
            exported.name,
            "--tracking-uri",
            server,
        ],
    )


def test_import_logs_results_on_the_version_and_its_run(
    mlflow_server: str, mlflow_tracking: MlflowClient, exported_version: ExportedVersion, tmp_path: Path
) -> None:
    client, exported = mlflow_tracking, exported_version
    apply_gate(client, client.get_model_version(exported.name, exported.version), GateDecision(True, []))
    key = exported.key
    ann = fill_template(
        exported,
        tmp_path / "ann.csv",
        "ann",
        {
            **choices(key, REAL_VS_GENERATED, hits=3, misses=6, blanks=1),
            **choices(key, CANDIDATE_VS_CHAMPION, 6, 4),
        },
    )
    bob_rows = rating_rows("bob", choices(key, REAL_VS_GENERATED, hits=4, misses=6), set_id=key.set_id)
    bob = write_ratings(tmp_path / "bob.json", bob_rows)

    result = import_cli(mlflow_server, exported, str(ann), str(bob))
    assert result.exit_code == 0, result.output
    assert "fool rate 0.3684  95% CI [0.1915, 0.5896]" in result.output  # 7 of 19, Wilson
    assert "gate: unchanged (gate_status 'passed'" in result.output

    version = client.get_model_version(exported.name, exported.version)
    tags = version.tags
    assert tags["human_eval.set_id"] == key.set_id
    assert (tags["human_eval.fool_rate"], tags["human_eval.fool_rate_ci95"]) == ("0.3684", "[0.1915, 0.5896]")
    assert (tags["human_eval.win_rate"], tags["human_eval.win_rate_ci95"]) == ("0.6000", "[0.3127, 0.8318]")
    assert (tags["human_eval.fool_n"], tags["human_eval.win_n"], tags["human_eval.n_ratings"]) == ("19", "10", "29")
    assert (tags["human_eval.n_raters"], tags["human_eval.n_unanswered"]) == ("2", "1")
    assert tags["human_eval.imported_at"].endswith("+00:00")
    assert tags["gate_status"] == "passed" and version.aliases == ["candidate"]

    metrics = client.get_run(exported.run_id).data.metrics
    assert metrics["human_eval.fool_rate"] == pytest.approx(7 / 19)
    assert metrics["human_eval.win_rate"] == pytest.approx(0.6)
    assert metrics["human_eval.fool_rate_ci95_low"] == pytest.approx(wilson_interval(7, 19)[0])
    assert (metrics["human_eval.n_ratings"], metrics["human_eval.n_raters"]) == (29, 2)
    per_rater = Path(client.download_artifacts(exported.run_id, "human_eval_results/per_rater.csv", str(tmp_path)))
    _, rows = read_csv(per_rater)
    assert [(r["rater"], r["fooled"], r["n_real_vs_generated"], r["wins"], r["n_unanswered"]) for r in rows] == [
        ("ann", "3", "9", "6", "1"),
        ("bob", "4", "10", "0", "0"),
    ]


def test_ratings_of_another_set_change_nothing(
    mlflow_server: str, mlflow_tracking: MlflowClient, exported_version: ExportedVersion, tmp_path: Path
) -> None:
    exported = exported_version
    stray = write_ratings(
        tmp_path / "stray.csv",
        rating_rows("ann", choices(exported.key, REAL_VS_GENERATED, 2, 2), set_id="facegen-humaneval-ffffffffffffffff"),
    )
    result = import_cli(mlflow_server, exported, str(stray))
    assert result.exit_code == 1 and "ratings not imported" in result.output and "Traceback" not in result.output
    assert f"is not the answer key's '{exported.key.set_id}'" in result.output
    tags = mlflow_tracking.get_model_version(exported.name, exported.version).tags
    assert not any(tag.startswith("human_eval.") for tag in tags)


def test_answer_key_given_by_hand_when_the_version_has_no_set(
    mlflow_server: str, mlflow_tracking: MlflowClient, exported_version: ExportedVersion, tmp_path: Path
) -> None:
    client, exported = mlflow_tracking, exported_version
    client.delete_model_version_tag(exported.name, exported.version, "human_eval_set")
    ann = write_ratings(
        tmp_path / "ann.csv", rating_rows("ann", choices(exported.key, REAL_VS_GENERATED, 5, 5), exported.key.set_id)
    )
    missing = import_cli(mlflow_server, exported, str(ann))
    assert missing.exit_code == 1 and "tag human_eval_set is missing" in missing.output
    assert "--answer-key" in missing.output

    key_file = Path(client.download_artifacts(exported.run_id, "human_eval/answer_key.csv", str(tmp_path)))
    result = import_cli(mlflow_server, exported, str(ann), "--answer-key", str(key_file))
    assert result.exit_code == 0, result.output
    assert client.get_model_version(exported.name, exported.version).tags["human_eval.fool_rate"] == "0.5000"


def test_awaiting_version_cannot_be_approved_and_passes_on_good_ratings(
    mlflow_server: str, mlflow_tracking: MlflowClient, exported_version: ExportedVersion, tmp_path: Path
) -> None:
    client, exported = mlflow_tracking, exported_version
    version = client.get_model_version(exported.name, exported.version)
    require_human_eval(client, version, HumanEvalRequirement(min_fool_rate=0.3, min_win_rate=0.9, min_ratings=10))
    require_human_eval(client, version, HumanEvalRequirement(min_fool_rate=0.3, min_ratings=10))  # replaces it
    version = client.get_model_version(exported.name, exported.version)
    assert version.tags["gate_status"] == AWAITING_HUMAN_EVAL and version.aliases == []
    assert "awaiting human evaluation (fool rate >= 0.3" in version.tags["gate_reasons"]
    required = {key: value for key, value in version.tags.items() if key.startswith("human_eval.required.")}
    assert required == {"human_eval.required.min_fool_rate": "0.3", "human_eval.required.min_ratings": "10"}
    with pytest.raises(ApprovalRefused, match="gate_status is 'awaiting_human_eval'"):
        approve_version(client, exported.name, exported.version, approved_by="ada")
    refused = CliRunner().invoke(
        main,
        [
            "approve",
            exported.version,
            "--by",
            "ada",
            "--model-name",
            exported.name,
            "--tracking-uri",
            mlflow_server,
        ],
    )
    assert refused.exit_code == 1 and "awaiting_human_eval" in refused.output

    ann = fill_template(exported, tmp_path / "ann.csv", "ann", choices(exported.key, REAL_VS_GENERATED, 4, 6))
    result = import_cli(mlflow_server, exported, str(ann))
    assert result.exit_code == 0, result.output
    assert f"gate: human evaluation passed; candidate is now version {exported.version}" in result.output
    version = client.get_model_version(exported.name, exported.version)
    assert version.tags["gate_status"] == "passed" and version.tags["gate_reasons"] == "all gates passed"
    assert version.aliases == ["candidate"]
    assert set(approve_version(client, exported.name, exported.version, approved_by="ada").aliases) == {
        "candidate",
        "champion",
    }


def test_awaiting_version_fails_on_poor_or_too_few_ratings(
    mlflow_server: str, mlflow_tracking: MlflowClient, exported_version: ExportedVersion, tmp_path: Path
) -> None:
    client, exported = mlflow_tracking, exported_version
    version = client.get_model_version(exported.name, exported.version)
    apply_gate(client, version, GateDecision(True, []))  # a caller that set candidate first: the alias is taken back
    passed_but_waits = HumanEvalRequirement(min_fool_rate=0.3, min_win_rate=0.5, min_ratings=8)
    apply_gate(client, version, GateDecision(True, []), human_eval=passed_but_waits)  # what deploy_gate calls
    assert client.get_model_version(exported.name, exported.version).aliases == []

    key = exported.key
    ann = fill_template(
        exported,
        tmp_path / "ann.csv",
        "ann",
        {
            **choices(key, REAL_VS_GENERATED, hits=2, misses=8),
            **choices(key, CANDIDATE_VS_CHAMPION, 5, 0, 5),
        },
    )
    result = import_cli(mlflow_server, exported, str(ann))
    assert result.exit_code == 0, result.output
    version = client.get_model_version(exported.name, exported.version)
    assert version.tags["gate_status"] == "failed" and version.aliases == []
    assert version.tags["gate_reasons"] == (
        "human eval: fool rate 0.2000 is below the required 0.3; "
        "human eval: only 5 answered candidate_vs_champion rating(s), 8 required"
    )
    assert "gate: human evaluation failed: human eval: fool rate 0.2000" in result.output

    # Decided once: a later import only annotates, and a failed version cannot be put back to awaiting.
    again = import_cli(mlflow_server, exported, str(ann))
    assert again.exit_code == 0 and "gate: unchanged (gate_status 'failed'" in again.output
    with pytest.raises(ValueError, match="gate_status is 'failed'"):
        require_human_eval(client, version, HumanEvalRequirement(min_fool_rate=0.1))


def test_a_late_pass_does_not_take_candidate_from_a_newer_version(
    mlflow_server: str, mlflow_tracking: MlflowClient, exported_version: ExportedVersion, tmp_path: Path
) -> None:
    client, exported = mlflow_tracking, exported_version
    older = client.get_model_version(exported.name, exported.version)
    require_human_eval(client, older, HumanEvalRequirement(min_fool_rate=0.3, min_ratings=10))
    newer = register_version(older.source, name=exported.name, metrics={"fid": 9.0}, tags={}, client=client)
    apply_gate(client, newer, GateDecision(True, []))  # the next run passed before the raters answered

    ann = fill_template(exported, tmp_path / "ann.csv", "ann", choices(exported.key, REAL_VS_GENERATED, 4, 6))
    result = import_cli(mlflow_server, exported, str(ann))
    assert result.exit_code == 0, result.output
    assert "gate: human evaluation passed; all gates passed; candidate stays on newer version" in result.output
    older = client.get_model_version(exported.name, exported.version)
    assert older.tags["gate_status"] == "passed" and older.aliases == []
    assert older.tags["gate_reasons"] == f"all gates passed; candidate stays on newer version {newer.version}"
    assert client.get_model_version_by_alias(exported.name, "candidate").version == newer.version
