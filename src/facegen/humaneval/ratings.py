"""Raters' answers read back and checked against the answer key of the set they rated.

Accepted files: the page's downloads (``ratings_<rater>.csv`` or ``.json``, a JSON array of row objects with the
same keys as the CSV columns) and the offline ``ratings_template.csv`` filled in by hand. Each row needs
``set_id``, ``pair_id``, ``choice`` (``left``, ``right`` or blank for unanswered; case and spaces ignored) and
``rater``. Every problem in every file is collected and reported at once (:class:`RatingsError`), so a person fixes
the files in one go; nothing is dropped silently: blank choices stay as unanswered ratings.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from facegen.humaneval.export import ANSWER_KEY_COLUMNS, QUESTIONS, REAL_VS_GENERATED

SIDES = ("left", "right")
#: Columns a rating file must have; the others (question, image names) are ignored.
REQUIRED_RATING_COLUMNS = ("set_id", "pair_id", "choice", "rater")
#: Problems listed in a :class:`RatingsError` message before the rest are only counted.
MAX_LISTED_PROBLEMS = 20


class RatingsError(ValueError):
    """Rating files or an answer key that cannot be scored; ``problems`` holds one line per problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listed = self.problems[:MAX_LISTED_PROBLEMS]
        more = len(self.problems) - len(listed)
        super().__init__("\n".join(listed + ([f"... and {more} more problem(s)"] if more else [])))


@dataclass(frozen=True)
class KeyPair:
    """One pair of the answer key: its task and the side that holds the generated / candidate face."""

    task: str
    key_side: str


@dataclass(frozen=True)
class AnswerKey:
    """What each pair of one set shows, by pair id."""

    set_id: str
    pairs: dict[str, KeyPair]


@dataclass(frozen=True)
class Rating:
    """One row of a rating file; ``choice`` is ``left``, ``right`` or ``""`` (unanswered)."""

    pair_id: str
    rater: str
    choice: str
    origin: str  # "file:row", for messages


def load_answer_key(path: Path) -> AnswerKey:
    """Read ``answer_key.csv`` as written by :func:`facegen.humaneval.export.export_pairwise_set`."""
    path = Path(path)
    columns, rows = _read_csv(path)
    missing = [c for c in ("pair_id", "task", "generated_side", "candidate_side", "set_id") if c not in columns]
    if missing:
        raise RatingsError(
            [
                f"{path}: not an answer key, columns {missing} missing (expected {ANSWER_KEY_COLUMNS}); "
                "keys exported before set ids existed cannot be used: export the set again"
            ]
        )
    problems: list[str] = []
    pairs: dict[str, KeyPair] = {}
    set_ids = {row["set_id"] for row in rows}
    if len(set_ids) != 1 or "" in set_ids:
        problems.append(f"{path}: expected one non-empty set_id on every row, found {sorted(set_ids)}")
    for number, row in enumerate(rows, start=2):
        task, pair_id = row["task"], row["pair_id"]
        side = row["generated_side"] if task == REAL_VS_GENERATED else row["candidate_side"]
        if task not in QUESTIONS:
            problems.append(f"{path}:{number}: unknown task {task!r} (expected one of {sorted(QUESTIONS)})")
        elif side not in SIDES:
            problems.append(f"{path}:{number}: pair {pair_id!r} has no key side (got {side!r})")
        elif pair_id in pairs:
            problems.append(f"{path}:{number}: pair {pair_id!r} appears twice")
        else:
            pairs[pair_id] = KeyPair(task, side)
    if not rows:
        problems.append(f"{path}: the answer key has no pairs")
    if problems:
        raise RatingsError(problems)
    return AnswerKey(set_ids.pop(), pairs)


def load_ratings(paths: Iterable[Path], key: AnswerKey) -> list[Rating]:
    """All rows of the rating files, checked against ``key``; raises :class:`RatingsError` listing every problem.

    Refused: a file that is not CSV / JSON or lacks a required column, a row of another set (``set_id``), an
    unknown pair id, a choice other than left / right / blank, a row without a rater, and one rater answering one
    pair twice (also across files: give each rater's answers once).
    """
    problems: list[str] = []
    ratings: list[Rating] = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        try:
            rows = _read_rating_rows(Path(path))
        except RatingsError as error:
            problems.extend(error.problems)
            continue
        for origin, row in rows:
            rating = _check_row(origin, row, key, problems)
            if rating is None:
                continue
            first = seen.setdefault((rating.rater, rating.pair_id), origin)
            if first != origin:
                problems.append(f"{origin}: rater {rating.rater!r} already rated pair {rating.pair_id!r} at {first}")
                continue
            ratings.append(rating)
    if problems:
        raise RatingsError(problems)
    if not ratings:
        raise RatingsError(["no rating rows in the given files"])
    return ratings


def _check_row(origin: str, row: dict[str, str], key: AnswerKey, problems: list[str]) -> Rating | None:
    """The row as a :class:`Rating`, or None after appending what is wrong with it to ``problems``."""
    before = len(problems)
    set_id, pair_id, rater = row["set_id"].strip(), row["pair_id"].strip(), row["rater"].strip()
    choice = row["choice"].strip().lower()
    if set_id != key.set_id:
        problems.append(f"{origin}: set_id {set_id!r} is not the answer key's {key.set_id!r} (ratings of another set)")
    elif pair_id not in key.pairs:
        problems.append(f"{origin}: unknown pair id {pair_id!r}")
    if choice not in ("", *SIDES):
        problems.append(f"{origin}: choice {row['choice']!r} is not left, right or blank")
    if not rater:
        problems.append(f"{origin}: no rater (fill the rater column on every row)")
    return Rating(pair_id, rater, choice, origin) if len(problems) == before else None


def _read_rating_rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(origin, row) for each data row of a CSV or JSON rating file, with every required column present."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        columns, rows = _read_csv(path)
        numbered = [(f"{path.name}:{number}", row) for number, row in enumerate(rows, start=2)]
    elif suffix == ".json":
        rows = _read_json_rows(path)
        columns = sorted(set().union(*rows)) if rows else []
        numbered = [(f"{path.name}[{index}]", row) for index, row in enumerate(rows)]
    else:
        raise RatingsError([f"{path}: expected a .csv or .json rating file"])
    missing = [c for c in REQUIRED_RATING_COLUMNS if c not in columns]
    if missing:
        needed = list(REQUIRED_RATING_COLUMNS)
        raise RatingsError([f"{path}: column(s) {missing} missing (a rating file needs {needed})"])
    if not rows:
        raise RatingsError([f"{path}: no rating rows"])
    incomplete = [origin for origin, row in numbered if any(row.get(c) is None for c in REQUIRED_RATING_COLUMNS)]
    if incomplete:
        raise RatingsError([f"{origin}: row lacks one of {list(REQUIRED_RATING_COLUMNS)}" for origin in incomplete])
    return numbered


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a UTF-8 CSV (a byte-order mark, as spreadsheets write, is allowed)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RatingsError([f"{path}: cannot read as UTF-8 CSV: {error}"]) from error


def _read_json_rows(path: Path) -> list[dict[str, str]]:
    """The page's JSON download: an array of objects whose values are strings."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RatingsError([f"{path}: cannot read as JSON: {error}"]) from error
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise RatingsError([f"{path}: expected a JSON array of rating objects (as the rating page downloads)"])
    bad = [f"{path.name}[{i}]" for i, row in enumerate(data) if not all(isinstance(v, str) for v in row.values())]
    if bad:
        raise RatingsError([f"{origin}: every value must be a string" for origin in bad])
    return data
