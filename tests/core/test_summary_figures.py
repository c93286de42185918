import numpy as np

from core.data.cohort import split_cohort
from core.data.diagnoses import load_eicu_diagnoses
from core.data.physionet2012 import load_physionet2012
from core.data.summary import summarize
from core.report import cohort_figures as figs
from tests.conftest import EICU_DIAGNOSIS, EICU_PATIENT


def test_physionet_summary_and_figures(physionet_tar, physionet_outcomes):
    c = load_physionet2012(physionet_tar, physionet_outcomes)
    s = summarize(c)
    assert (s.n_records, s.n_patients) == (3, 3)
    assert s.label_counts["records"].tolist() == [2, 1]
    height = s.features.set_index("feature").loc["Height"]
    assert height["part"] == "static" and np.isclose(height["missing"], 1 / 3)
    assert s.temporal_observed.loc["HR", "0"] == 2 / 3
    heat = figs.temporal_missingness(s)
    assert heat.data[0].z.shape == (37, 48)
    assert figs.static_missingness(s).data[0].x.max() == 1 / 3
    assert figs.label_balance(s).data[0].y.tolist() == [2, 1]
    split = split_cohort(c, 1 / 3, 0)
    bars = figs.split_overview(split, c.labels, c.label_classes)
    assert sum(sum(b.y) for b in bars.data) == 3


def test_code_summary_and_figures():
    c = load_eicu_diagnoses(EICU_DIAGNOSIS.encode(), patient_table=EICU_PATIENT.encode())
    s = summarize(c)
    assert s.top_codes.iloc[0]["records"] >= s.top_codes.iloc[-1]["records"]
    assert s.codes_per_record.tolist() == [2, 1, 2]
    assert len(figs.top_codes(s).data[0].y) == len(c.codes.vocabulary)
    assert figs.codes_per_record(s).data[0].x.tolist() == [2, 1, 2]
    assert s.features.empty and s.static_missing is None
