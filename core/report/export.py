"""Exports users download. Text cells are neutralised against spreadsheet formula injection."""

from __future__ import annotations

import io

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a single quote (OWASP)."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if (
            series.dtype == object
            or pd.api.types.is_string_dtype(series)
            or isinstance(series.dtype, pd.CategoricalDtype)
        ):
            text = series.astype(object)
            risky = text.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
            if risky.any():
                out[col] = text.where(~risky, "'" + text.astype(str))
    safe_columns = [
        "'" + c if isinstance(c, str) and c.startswith(_FORMULA_START) else c for c in out.columns
    ]
    out.columns = safe_columns
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return neutralise_formulas(frame).to_csv(index=False).encode("utf-8")


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
