"""Human evaluation sets: two-alternative forced-choice pairs for raters, with the answer key kept apart.

Tasks:
- ``real_vs_generated``: a generated face beside a real photograph — "Which photo is a real photograph?". The
  fraction of raters fooled (choosing the generated side) measures photorealism; 50 % means indistinguishable.
- ``candidate_vs_champion`` (when the champion's faces are given): "Which face looks more realistic?".

Layout written under ``out_dir``::

    rater/index.html             one self-contained page: images inline (base64 PNG), no external URL, inline JS
                                 that records left/right choices and downloads them as CSV or JSON
    rater/ratings_template.csv   pair_id, task, question, left_image, right_image, choice, rater, set_id (for
                                 offline raters)
    rater/images/*.png           the same images as files, named by pair and side only (p007_left.png)
    answer_key.csv               which side holds what, and the set_id: never send it to raters

Every rating row (template, page downloads) and every answer key row carries the set's ``set_id``
(``facegen-humaneval-<digest of the shown images>``), so an import can refuse ratings made on another set
(:mod:`facegen.humaneval.ratings`).

The ``rater/`` folder is what raters get; nothing in it (file names, pair ids, order) tells which side is which.
The correct side is counterbalanced: per task, half the pairs (±1) put the generated / candidate face on the left,
assigned in a seeded random order, and the pairs are shown in one seeded random order across tasks.

Every generated face (candidate and champion) leaves marked like any face facegen hands out
(:mod:`facegen.provenance.marking`): a C2PA manifest naming its generator and seed, and the watermark from 256². The
real photographs stay as they are: a manifest saying "trainedAlgorithmicMedia" or anything else would be false. So a
rater who opens an image file in a C2PA viewer can tell the generated side: the page does not show that metadata,
and a blind set for such raters would have to be exported without marking (``provenance.enabled: false``).
The set id is a digest of the shown pixels, so the same seed gives the same set (the signed bytes differ each time).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegen.provenance.c2pa_manifest import FaceProvenance
from facegen.provenance.credentials import ProvenanceConfig
from facegen.provenance.marking import FaceMarker, MarkingUnavailable
from facegen.serve.imaging import encode_image

REAL_VS_GENERATED = "real_vs_generated"
CANDIDATE_VS_CHAMPION = "candidate_vs_champion"
QUESTIONS = {
    REAL_VS_GENERATED: "Which photo is a real photograph?",
    CANDIDATE_VS_CHAMPION: "Which face looks more realistic?",
}
TEMPLATE_COLUMNS = ["pair_id", "task", "question", "left_image", "right_image", "choice", "rater", "set_id"]
#: Columns filled in per rater (by the page, or by hand in the template); the others describe the pair.
RATER_COLUMNS = ("choice", "rater", "set_id")
ANSWER_KEY_COLUMNS = [
    "pair_id",
    "task",
    "generated_side",  # real_vs_generated: side of the generated face (the real photo is on the other)
    "candidate_side",  # candidate_vs_champion: side of the candidate's face
    "left_source",
    "left_index",
    "right_source",
    "right_index",
    "set_id",
]
#: Smallest on-screen side of a face in the page (small faces are upscaled by the browser).
MIN_DISPLAY_PX = 192
#: zlib level of every image in the set, real or generated (unequal levels would tell the sides apart by file size).
PNG_LEVEL = 6


@dataclass(frozen=True)
class _Pair:
    task: str
    first_source: str  # the side the key is about: generated (real_vs_generated) or candidate
    first_index: int
    other_source: str
    other_index: int
    first_on_left: bool


def _check_images(name: str, images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be N×3×H×W (channels first), got shape {images.shape}")
    if images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{name} has empty images: shape {images.shape}")


def _check_provenance(name: str, images: np.ndarray | None, provenance: Sequence[FaceProvenance] | None) -> None:
    if images is None:
        if provenance is not None:
            raise ValueError(f"{name}_provenance given without {name} faces")
        return
    if provenance is None or len(provenance) != len(images):
        given = "none" if provenance is None else len(provenance)
        raise ValueError(f"{name} faces need one FaceProvenance each ({len(images)}), got {given}")


def _validate(
    generated: np.ndarray, real: np.ndarray, champion: np.ndarray | None, n_pairs: int, candidate_label: str
) -> None:
    inputs = {"generated": generated, "real": real}
    if champion is not None:
        inputs["champion"] = champion
    for name, images in inputs.items():
        _check_images(name, images)
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    sizes = {name: images.shape[2:] for name, images in inputs.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"all images must share one H×W so pairs compare like with like, got {sizes}")
    for name, images in inputs.items():
        if len(images) < n_pairs:
            raise ValueError(f"n_pairs={n_pairs} needs {n_pairs} distinct {name} images, only {len(images)} given")
    if not candidate_label or not candidate_label.strip() or candidate_label in {"real", "champion"}:
        raise ValueError(
            f"candidate_label must be a non-empty name other than 'real'/'champion', got {candidate_label!r}"
        )


def _balanced_sides(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` booleans, half True (±1, the odd one decided at random), in random order."""
    n_true = n // 2 + (int(rng.integers(0, 2)) if n % 2 else 0)
    return rng.permutation(np.arange(n) < n_true)


def _task_pairs(
    rng: np.random.Generator, task: str, first: tuple[str, np.ndarray], other: tuple[str, np.ndarray], n: int
) -> list[_Pair]:
    first_indices = rng.choice(len(first[1]), size=n, replace=False)
    other_indices = rng.choice(len(other[1]), size=n, replace=False)
    sides = _balanced_sides(rng, n)
    return [
        _Pair(task, first[0], int(i), other[0], int(j), bool(left))
        for i, j, left in zip(first_indices, other_indices, sides, strict=True)
    ]


def _png_bytes(image_chw: np.ndarray, marker: FaceMarker, provenance: FaceProvenance | None) -> bytes:
    """A real photo as it is (``provenance`` None), a generated face marked."""
    image = np.ascontiguousarray(image_chw.transpose(1, 2, 0))
    if provenance is None:
        return encode_image(image, fmt="png", png_compress_level=PNG_LEVEL)
    return marker.encode(image, provenance, size=image.shape[0], fmt="png", png_compress_level=PNG_LEVEL)


def export_pairwise_set(
    generated: np.ndarray,
    real: np.ndarray,
    out_dir: Path,
    *,
    n_pairs: int = 50,
    seed: int = 0,
    champion: np.ndarray | None = None,
    candidate_label: str = "candidate",
    generated_provenance: Sequence[FaceProvenance],
    champion_provenance: Sequence[FaceProvenance] | None = None,
    marking: ProvenanceConfig = ProvenanceConfig(),
) -> dict[str, Path]:
    """Write a pairwise (2AFC) human evaluation set of ``n_pairs`` pairs per task; return the written paths.

    ``generated`` (the candidate's faces), ``real`` and ``champion`` are uint8 N×3×H×W with one shared H×W; each
    task draws ``n_pairs`` distinct images from each input (``ValueError`` when there are fewer). The same ``seed``
    gives the same set. ``candidate_label`` names the candidate in the answer key only (raters never see it).
    ``generated_provenance`` / ``champion_provenance`` say what made each generated face (its manifest; see
    :func:`facegen.provenance.c2pa_manifest.faces_provenance`); faces are marked under ``marking``
    (:class:`~facegen.provenance.marking.MarkingUnavailable` before anything is written when they cannot be).

    Returns ``{"rater_dir", "html", "ratings_template", "images_dir", "answer_key"}``; the set's id is in the
    ``set_id`` column of the answer key and of the template.
    """
    _validate(generated, real, champion, n_pairs, candidate_label)
    _check_provenance("generated", generated, generated_provenance)
    _check_provenance("champion", champion, champion_provenance)
    marker = FaceMarker(marking)
    problem = marker.problem()
    if problem is not None:
        raise MarkingUnavailable(problem)
    n_pairs = int(n_pairs)
    rng = np.random.default_rng(seed)
    sources = {candidate_label: generated, "real": real}
    made_by: dict[str, Sequence[FaceProvenance]] = {candidate_label: generated_provenance}
    pairs = _task_pairs(rng, REAL_VS_GENERATED, (candidate_label, generated), ("real", real), n_pairs)
    if champion is not None:
        sources["champion"] = champion
        made_by["champion"] = champion_provenance or []
        pairs += _task_pairs(rng, CANDIDATE_VS_CHAMPION, (candidate_label, generated), ("champion", champion), n_pairs)
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]

    out_dir = Path(out_dir)
    rater_dir = out_dir / "rater"
    images_dir = rater_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    width = len(str(len(pairs)))
    rows, key_rows, page_pairs = [], [], []
    shown = hashlib.sha256()
    for number, pair in enumerate(pairs, start=1):
        pair_id = f"p{number:0{width}d}"
        first = (pair.first_source, pair.first_index)
        other = (pair.other_source, pair.other_index)
        left, right = (first, other) if pair.first_on_left else (other, first)
        files = {}
        for side, (source, index) in (("left", left), ("right", right)):
            shown.update(sources[source][index].tobytes())
            data = _png_bytes(sources[source][index], marker, made_by[source][index] if source in made_by else None)
            files[side] = f"images/{pair_id}_{side}.png"
            (rater_dir / files[side]).write_bytes(data)
            files[side + "_b64"] = base64.b64encode(data).decode("ascii")
        key_side = "left" if pair.first_on_left else "right"
        rows.append(
            {
                "pair_id": pair_id,
                "task": pair.task,
                "question": QUESTIONS[pair.task],
                "left_image": files["left"],
                "right_image": files["right"],
            }
        )
        key_rows.append(
            {
                "pair_id": pair_id,
                "task": pair.task,
                "generated_side": key_side if pair.task == REAL_VS_GENERATED else "",
                "candidate_side": key_side if pair.task == CANDIDATE_VS_CHAMPION else "",
                "left_source": left[0],
                "left_index": left[1],
                "right_source": right[0],
                "right_index": right[1],
            }
        )
        page_pairs.append({**rows[-1], "left_b64": files["left_b64"], "right_b64": files["right_b64"]})

    # The id follows the shown content: answers kept in the browser are keyed by it, so two sets never mix answers,
    # and imports match ratings to the answer key by it.
    set_id = f"facegen-humaneval-{shown.hexdigest()[:16]}"
    template_path = rater_dir / "ratings_template.csv"
    _write_csv(template_path, TEMPLATE_COLUMNS, [{**row, "choice": "", "rater": "", "set_id": set_id} for row in rows])
    key_path = out_dir / "answer_key.csv"
    _write_csv(key_path, ANSWER_KEY_COLUMNS, [{**row, "set_id": set_id} for row in key_rows])
    html_path = rater_dir / "index.html"
    display = max(MIN_DISPLAY_PX, int(generated.shape[2]), int(generated.shape[3]))
    html_path.write_text(_page(page_pairs, display, set_id=set_id), encoding="utf-8")
    return {
        "rater_dir": rater_dir,
        "html": html_path,
        "ratings_template": template_path,
        "images_dir": images_dir,
        "answer_key": key_path,
    }


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
.pair { border: 1px solid #ccc; border-radius: 8px; padding: 1em; margin: 1.5em 0; }
.pair.answered { border-color: #4a4; background: #f4fbf4; }
.faces { display: flex; gap: 2em; justify-content: center; }
.faces button { border: 4px solid transparent; background: none; padding: 0; cursor: pointer; }
.faces button.chosen { border-color: #2a7; }
.faces img { display: block; image-rendering: auto; }
.meta { color: #666; font-size: 0.9em; }
#bar { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; }
"""

_SCRIPT = """
const PAIRS = JSON.parse(document.getElementById("pairs-data").textContent);
const COLUMNS = JSON.parse(document.getElementById("columns-data").textContent);
const SET_ID = document.body.dataset.setId;
const answers = JSON.parse(localStorage.getItem(SET_ID) || "{}");
function save() { localStorage.setItem(SET_ID, JSON.stringify(answers)); }
function refresh() {
  let done = 0;
  for (const pair of PAIRS) {
    const box = document.getElementById(pair.pair_id);
    const choice = answers[pair.pair_id] || "";
    box.classList.toggle("answered", choice !== "");
    for (const side of ["left", "right"]) {
      box.querySelector("button[data-side=" + side + "]").classList.toggle("chosen", choice === side);
    }
    if (choice) done += 1;
  }
  document.getElementById("progress").textContent = done + " / " + PAIRS.length + " answered";
}
function choose(pairId, side) { answers[pairId] = side; save(); refresh(); }
function csvCell(value) {
  const text = String(value);
  return /[",\\n\\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}
function answerRows(rater) {
  return PAIRS.map(pair => {
    const row = Object.assign({}, pair, {choice: answers[pair.pair_id] || "", rater: rater, set_id: SET_ID});
    return Object.fromEntries(COLUMNS.map(c => [c, row[c]]));
  });
}
function toCsv(rows) {
  const lines = [COLUMNS.join(",")].concat(rows.map(row => COLUMNS.map(c => csvCell(row[c])).join(",")));
  return lines.join("\\r\\n") + "\\r\\n";
}
function toJson(rows) { return JSON.stringify(rows, null, 1) + "\\n"; }
function download(extension, type, format) {
  const rater = document.getElementById("rater").value.trim();
  if (!rater) { alert("Please enter your name or rater id first."); return; }
  const blob = new Blob([format(answerRows(rater))], {type: type});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "ratings_" + rater.replace(/[^A-Za-z0-9_-]+/g, "_") + "." + extension;
  document.body.appendChild(link);
  link.click();
  link.remove();
}
document.querySelectorAll(".faces button").forEach(button => {
  button.addEventListener("click", () => choose(button.closest(".pair").id, button.dataset.side));
});
document.getElementById("download-csv").addEventListener("click", () => download("csv", "text/csv", toCsv));
document.getElementById("download-json").addEventListener("click", () => download("json", "application/json", toJson));
refresh();
"""


def _page(pairs: list[dict[str, str]], display_px: int, *, set_id: str) -> str:
    """The rater page: every image inline, no external reference, answers downloaded as CSV or JSON."""
    blocks = []
    for number, pair in enumerate(pairs, start=1):
        faces = "".join(
            f'<button type="button" data-side="{side}" title="{side}">'
            f'<img alt="{side} face" width="{display_px}" height="{display_px}" '
            f'src="data:image/png;base64,{pair[side + "_b64"]}"></button>'
            for side in ("left", "right")
        )
        blocks.append(
            f'<section class="pair" id="{pair["pair_id"]}" data-task="{pair["task"]}">'
            f'<p class="meta">Pair {number} of {len(pairs)} ({html.escape(pair["pair_id"])})</p>'
            f"<h2>{html.escape(pair['question'])}</h2>"
            f'<div class="faces">{faces}</div></section>'
        )
    metadata = [{key: pair[key] for key in TEMPLATE_COLUMNS if key not in RATER_COLUMNS} for pair in pairs]
    # "</" cannot close the script element from inside the JSON.
    data = json.dumps(metadata).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Face realism rating</title>"
        f"<style>{_STYLE}</style></head>"
        f'<body data-set-id="{html.escape(set_id)}">'
        "<h1>Face realism rating</h1>"
        "<p>Each pair shows two faces. Click the one that answers the question. Go with your first impression; "
        "there is no time limit. Your choices are kept in this browser until you download them.</p>"
        '<div id="bar"><label>Your name or rater id: <input id="rater" autocomplete="off"></label> '
        '<span id="progress"></span> <button type="button" id="download-csv">Download answers (CSV)</button> '
        '<button type="button" id="download-json">Download answers (JSON)</button></div>'
        + "".join(blocks)
        + f'<script type="application/json" id="pairs-data">{data}</script>'
        f'<script type="application/json" id="columns-data">{json.dumps(TEMPLATE_COLUMNS)}</script>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
