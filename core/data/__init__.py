"""Cohort model, loaders for clinical formats, validation and summaries."""

from core.data.cohort import (
    CodeMatrix,
    Cohort,
    CohortSplit,
    FeatureSpec,
    TemporalData,
    split_cohort,
)
from core.data.diagnoses import load_eicu_diagnoses, load_mimic3_diagnoses, load_mimic4_diagnoses
from core.data.physionet2012 import load_physionet2012
from core.data.tables import load_long_timeseries, load_wide_table

__all__ = [
    "CodeMatrix",
    "Cohort",
    "CohortSplit",
    "FeatureSpec",
    "TemporalData",
    "load_eicu_diagnoses",
    "load_long_timeseries",
    "load_mimic3_diagnoses",
    "load_mimic4_diagnoses",
    "load_physionet2012",
    "load_wide_table",
    "split_cohort",
]
