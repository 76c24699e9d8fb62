"""Ratings of served faces, stored durably in SQLite: the data for online evaluation and for the next retraining.

One row per rating: (model name, model version, seed, truncation, attributes) identify the face exactly (see
:mod:`facegen.serve.inference`; ``attributes`` is canonical JSON, ``{}`` for unconditional faces), ``rating`` is 1-5,
``comment`` optional, ``created_at`` UTC ISO 8601.
The database runs in WAL mode with ``synchronous=FULL``: an insert has reached the disk when :meth:`FeedbackStore.add`
returns, and readers (the export) never block the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    model_name    TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    seed          INTEGER NOT NULL CHECK (seed >= 0),
    truncation    REAL    NOT NULL CHECK (truncation >= 0 AND truncation <= 1),
    attributes    TEXT    NOT NULL DEFAULT '{}',
    rating        INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment       TEXT,
    created_at    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_face ON feedback (model_name, model_version, seed, truncation, attributes);
"""

MIN_RATING, MAX_RATING = 1, 5


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    model_name: str
    model_version: str
    seed: int
    truncation: float
    attributes: dict[str, str]
    rating: int
    comment: str | None
    created_at: str


@dataclass(frozen=True)
class RatedFace:
    """One face (version, seed, truncation, attributes) with its ratings aggregated."""

    model_name: str
    model_version: str
    seed: int
    truncation: float
    attributes: dict[str, str]
    mean_rating: float
    n_ratings: int
    last_rated_at: str


class FeedbackStore:
    """Thread-safe SQLite feedback store (one connection, writes serialised by a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        *,
        model_name: str,
        model_version: str,
        seed: int,
        truncation: float,
        rating: int,
        attributes: dict[str, str] | None = None,
        comment: str | None = None,
    ) -> FeedbackRecord:
        """Insert one rating and commit it (durable on return)."""
        if not MIN_RATING <= int(rating) <= MAX_RATING:
            raise ValueError(f"rating must be {MIN_RATING}..{MAX_RATING}, got {rating}")
        created_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        attributes = dict(sorted((attributes or {}).items()))
        values = (
            model_name,
            str(model_version),
            int(seed),
            float(truncation),
            _dump(attributes),
            int(rating),
            comment,
            created_at,
        )
        with self._lock:
            cursor = self._connection.execute(
                "INSERT INTO feedback (model_name, model_version, seed, truncation, attributes, rating, comment, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )  # autocommit mode: committed (and fsynced, synchronous=FULL) when execute returns
            row_id = int(cursor.lastrowid)
        return FeedbackRecord(row_id, *values[:4], attributes, *values[5:])

    def records(self) -> list[FeedbackRecord]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT id, model_name, model_version, seed, truncation, attributes, rating, comment, created_at "
                "FROM feedback ORDER BY id"
            ).fetchall()
        return [FeedbackRecord(*row[:5], json.loads(row[5]), *row[6:]) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])

    def rated_faces(self, *, min_mean_rating: float, model_name: str | None = None) -> list[RatedFace]:
        """Faces whose mean rating is at least ``min_mean_rating``, best first (then by version, seed)."""
        query = (
            "SELECT model_name, model_version, seed, truncation, attributes, AVG(rating), COUNT(*), MAX(created_at) "
            "FROM feedback "
            + ("WHERE model_name = ? " if model_name else "")
            + "GROUP BY model_name, model_version, seed, truncation, attributes HAVING AVG(rating) >= ? "
            "ORDER BY AVG(rating) DESC, CAST(model_version AS INTEGER), seed, truncation, attributes"
        )
        params = (model_name, float(min_mean_rating)) if model_name else (float(min_mean_rating),)
        with self._lock:
            rows = self._connection.execute(query, params).fetchall()
        return [
            RatedFace(name, version, int(seed), float(psi), json.loads(attributes), float(mean), int(n), last)
            for name, version, seed, psi, attributes, mean, n, last in rows
        ]


def _dump(attributes: dict[str, str]) -> str:
    """Canonical JSON of attributes: equal attribute sets give equal text (they group as one face)."""
    return json.dumps(attributes, sort_keys=True, separators=(",", ":"))
