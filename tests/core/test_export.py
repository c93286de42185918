import io

import pandas as pd

from core.report.export import neutralise_formulas, to_csv_bytes, to_parquet_bytes


def test_formula_cells_are_neutralised_numbers_are_not():
    frame = pd.DataFrame(
        {
            "id": ["=cmd|' /C calc'!A0", "+1", "ok", "@SUM(A1)"],
            "value": [-1.5, 2.0, 3.0, 4.0],
            "=HYPERLINK()": ["a", "b", "c", "d"],
        }
    )
    back = pd.read_csv(io.BytesIO(to_csv_bytes(frame)))
    assert back["id"].tolist() == ["'=cmd|' /C calc'!A0", "'+1", "ok", "'@SUM(A1)"]
    assert back["value"].tolist() == [-1.5, 2.0, 3.0, 4.0]  # numeric cells untouched
    assert "'=HYPERLINK()" in back.columns
    assert neutralise_formulas(frame)["id"].iloc[2] == "ok" and frame["id"].iloc[0].startswith("=")


def test_parquet_round_trip():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    assert pd.read_parquet(io.BytesIO(to_parquet_bytes(frame))).equals(frame)
