import io

import pandas as pd

from core.report.export import (
    neutralise_formulas,
    patient_frames,
    patients_parquet_bytes,
    to_csv_bytes,
    to_parquet_bytes,
)
from tests.core.flexgen.toy import toy_cohort


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


def test_patient_frames_link_static_and_long_series_by_record_id():
    cohort = toy_cohort(30, missing_temporal=0.2)
    static, long = patient_frames(cohort)
    assert list(static.columns) == ["record_id", "Age", "Male", "Unit", "sick"]
    assert set(static["sick"]) <= {"no", "yes"}
    assert len(long) == cohort.temporal.mask.sum()
    assert list(long.columns) == ["record_id", "hour", "variable", "unit", "value"]
    r = 3
    mine = long[long["record_id"] == cohort.record_ids[r]]
    expected = cohort.temporal.values[r][cohort.temporal.mask[r]]
    assert sorted(mine["value"]) == sorted(expected.tolist())
    joined = pd.read_parquet(io.BytesIO(patients_parquet_bytes(cohort)))
    # Patients without any observation keep one row (their static part) in the single file.
    assert len(joined) == len(long) + 6 and joined["record_id"].nunique() == 30


def test_file_stem_keeps_letters_and_digits_only() -> None:
    from core.report.export import file_stem

    assert file_stem("EHRDiff · dpmpp 16 steps / seed 0") == "EHRDiff___dpmpp_16_steps___seed_0"
    assert file_stem("../../etc/passwd") == "______etc_passwd"
    assert len(file_stem("x" * 500)) == 60


def _sets():
    """A record table, complete patients and visit sequences, as the three kinds of set."""
    from core.data.records import ehr_table
    from core.data.visits import patient_table
    from core.generation import SyntheticSet
    from tests.core.ehrpd.planted import planted_chain

    def made(table, **parts):
        return SyntheticSet(
            table=table, vectors=None, model_id="m", settings=None, seconds=0.0,
            network_evaluations=0, **parts,
        )  # fmt: skip

    cohort, visits = toy_cohort(20), planted_chain(20)
    return {
        "records": made(ehr_table(cohort)),
        "patients": made(ehr_table(cohort), cohort=cohort),
        "visits": made(patient_table(visits, {}), visits=visits),
    }


def test_one_function_picks_each_kind_of_set_its_files_and_the_one_it_is_released_as():
    from core.report.export import export_files, release_file

    offered = {
        kind: [(f.id, f.filename, f.release) for f in export_files("My set", s)]
        for kind, s in _sets().items()
    }
    assert offered == {
        "records": [("csv", "My_set.csv", True), ("parquet", "My_set.parquet", False)],
        "patients": [
            ("static", "My_set_static.csv", False),
            ("long", "My_set_series_long.csv", False),
            ("parquet", "My_set.parquet", True),
        ],
        "visits": [("meds", "My_set.meds.parquet", True), ("long", "My_set_visits.csv", False)],
    }
    for s in _sets().values():  # the file a review is bound to is built to the same bytes again
        f = release_file("x", s)
        assert f.build() == f.build()
