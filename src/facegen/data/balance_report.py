"""The balancing report a person reads: before / after / target shares per group as bar charts and a table, and
the cost (images dropped, images repeated and how often)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def shares_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per (attribute, group): counts and shares before and after, and the target share."""
    rows = []
    for attribute, groups in report.get("shares", {}).items():
        for group, values in groups.items():
            rows.append({"attribute": attribute, "group": group, **values})
    columns = ["attribute", "group", "before", "before_share", "after", "after_share", "target_share"]
    return pd.DataFrame(rows, columns=columns)


def cost_lines(report: dict[str, Any]) -> list[str]:
    repeats = report.get("repeat_histogram", {})
    spread = ", ".join(f"{count} images ×{k}" for k, count in sorted(repeats.items()) if int(k) > 1) or "none"
    return [
        f"strategy: {report.get('strategy')}; cells: {' × '.join(report.get('cells', [])) or '-'}; "
        f"also: {', '.join(report.get('also', [])) or '-'}",
        f"labelled images before: {report.get('images_before')} (+{report.get('unlabelled')} without attributes, "
        f"left out); draws after: {report.get('images_after')}",
        f"images dropped: {report.get('images_dropped')}; images repeated: {report.get('images_repeated')} "
        f"(max {report.get('max_repeat')}×; {spread})",
    ]


def plot_shares(report: dict[str, Any]):  # -> matplotlib Figure
    """One panel per attribute (and the joint cells): before vs after share, target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = shares_table(report)
    attributes = list(dict.fromkeys(table["attribute"]))
    figure, axes = plt.subplots(len(attributes), 1, figsize=(11, 3.2 * len(attributes)), squeeze=False)
    for axis, attribute in zip(axes[:, 0], attributes):
        rows = table[table["attribute"] == attribute]
        x = np.arange(len(rows))
        axis.bar(x - 0.2, rows["before_share"], width=0.4, label="before", color="#b0b0b0")
        axis.bar(x + 0.2, rows["after_share"], width=0.4, label="after", color="#2b7bba")
        axis.scatter(x, rows["target_share"], marker="_", s=400, color="#d62728", label="target", zorder=3)
        crowded = len(rows) > 6
        axis.set_xticks(
            x, rows["group"], rotation=30 if crowded else 0, ha="right" if crowded else "center", fontsize=8
        )
        axis.set_ylabel("share")
        axis.set_title(attribute)
        axis.legend(fontsize=8, loc="upper right")
    figure.suptitle("\n".join(cost_lines(report)), fontsize=9, y=1.0, ha="center")
    figure.tight_layout()
    return figure


def write_balance_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``balance_shares.png``, ``balance_shares.csv``, ``balance_report.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = shares_table(report)
    paths = {
        "png": out_dir / "balance_shares.png",
        "csv": out_dir / "balance_shares.csv",
        "md": out_dir / "balance_report.md",
    }
    figure = plot_shares(report)
    figure.savefig(paths["png"], dpi=110, bbox_inches="tight")
    table.to_csv(paths["csv"], index=False)
    formatted = table.assign(
        **{c: table[c].map(lambda v: f"{v:.3f}") for c in ("before_share", "after_share", "target_share")},
        after=table["after"].map(lambda v: f"{v:.0f}"),
    )
    paths["md"].write_text(
        "# Balancing report\n\n"
        + "\n".join(f"- {line}" for line in cost_lines(report))
        + "\n\n"
        + _markdown(formatted)
        + "\n"
    )
    return paths


def _markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])
