"""Known answers of the artifact scan: planted copies of the training table are caught in every
form a writer could produce; aggregates, shuffled columns and the equivalent command pass."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from tests.artifact_scan import ROW_RUN, TrainingCohort, scan, scan_text, toy_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return toy_table()


@pytest.fixture(scope="module")
def cohort(table) -> TrainingCohort:
    return TrainingCohort.from_frame(table, "record_id")


def kinds(text: str, cohort: TrainingCohort) -> set[str]:
    return {h.kind for h in scan_text("f", text, cohort)}


def test_every_record_has_enough_distinctive_values(cohort):
    assert len(cohort.ids) == 60 and cohort.unscannable_ids == 0
    assert min(len(r) for r in cohort.rows) >= ROW_RUN  # so each record's row can be found


def test_a_copy_of_the_table_is_caught_in_every_form(table, cohort):
    no_ids = table.drop(columns="record_id")
    assert kinds(table.to_csv(index=False), cohort) == {"record id", "row"}
    assert "row" in kinds(no_ids.to_csv(index=False), cohort)
    assert "row" in kinds(no_ids.to_json(orient="records"), cohort)
    assert "row" in kinds(repr(no_ids), cohort)  # a printed frame
    assert "row" in kinds(no_ids.iloc[[17]].to_string(), cohort)  # one record in a log line
    assert "column" in kinds(no_ids.to_json(orient="columns"), cohort)
    assert "column" in kinds(json.dumps(table["sodium"].tolist()), cohort)  # a raw column
    # float32 and other number formats still match
    assert "row" in kinds(no_ids.astype("float32").to_csv(index=False, float_format="%.7g"), cohort)


def test_the_old_leaking_training_command_is_caught(table, cohort):
    """What earlier versions wrote: the repr of the trainer's arguments, table included."""
    from tests.artifact_scan import old_leaking_command

    command = old_leaking_command(table)
    assert len(command) > 2000
    assert {"record id", "row"} <= kinds(json.dumps({"training_command": command}), cohort)


def test_inside_zip_and_plotly_html(table, cohort, tmp_path):
    import plotly.graph_objects as go

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner/table.csv", table.drop(columns="record_id").to_csv(index=False))
    (tmp_path / "model.zip").write_bytes(buf.getvalue())
    html = go.Figure(go.Scatter(y=table["heart_rate"].to_numpy())).to_html(include_plotlyjs=False)
    assert '"bdata"' in html  # plotly writes numpy arrays as base64: the scan decodes them
    (tmp_path / "report.html").write_text(html)
    result = scan([tmp_path], cohort)
    assert result.files == 2
    found = {(h.file.removeprefix(str(tmp_path) + "/"), h.kind) for h in result.hits}
    assert found == {("model.zip!inner/table.csv", "row"), ("report.html", "column")}


def test_ids_match_as_whole_tokens_only(cohort):
    assert kinds("wrote REC-123457.csv", cohort) == {"record id"}
    assert kinds('{"id": "REC-123464"}', cohort) == {"record id"}
    assert kinds("REC-1234570 and XREC-123457 and REC-123457X", cohort) == set()


def test_aggregates_shuffles_and_commands_pass(table, cohort):
    no_ids = table.drop(columns="record_id")
    rng = np.random.default_rng(1)
    shuffled = no_ids.apply(lambda c: rng.permutation(c.to_numpy()))  # real values, no real row
    support = {c: sorted(no_ids[c].unique().tolist()) for c in no_ids}  # a marginal's support
    clean = [
        no_ids.describe().to_csv(),
        no_ids.quantile(np.linspace(0, 1, 101)).to_json(),
        json.dumps(support),
        shuffled.to_csv(index=False),
        (no_ids + 0.013).to_csv(index=False),  # every value moved
        "python -m core.ehrdiff.train --cohort wide_table --input table=ward.csv --steps 600",
    ]
    for text in clean:
        assert kinds(text, cohort) == set(), text[:200]
