"""Markdown tables for model cards and command-line reports (no extra dependency)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def markdown_table(
    frame: pd.DataFrame, formats: dict[str, str] | None = None, floats: str = "{:.3f}"
) -> str:
    """``frame`` as a GitHub Markdown table; floats use ``formats[column]`` or ``floats``."""
    formats = formats or {}
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = row[c]
            if v is None or (isinstance(v, float) and np.isnan(v)):
                cells.append("")
            elif isinstance(v, float | np.floating):
                cells.append(formats.get(c, floats).format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
