"""Clinical Synthesis Studio inference core.

A plain library: no Streamlit, no prints, no global state. Pages call one entry point per task
and catch only :class:`core.errors.CoreError`.

The names a script or notebook needs are importable from ``core`` itself (``core.load_cohort``,
``core.load_model``, ``core.review``, ...). They resolve lazily from the table below, so
``import core`` stays cheap and internal modules can move without breaking user code: a move
changes one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

PUBLIC_API: dict[str, str] = {
    # cohorts
    "load_cohort": "core.data.formats",
    "NamedInput": "core.data.formats",
    "FORMATS": "core.data.formats",
    "list_demos": "core.data.demo",
    "load_demo": "core.data.demo",
    "Cohort": "core.data.cohort",
    "split_cohort": "core.data.cohort",
    "EHRTable": "core.data.records",
    "VisitCohort": "core.data.visits",
    "ehr_table": "core.data.records",
    # models and generation
    "load_model": "core.loading",
    "GenerationSettings": "core.ehrdiff.pipeline",
    "FlexGenSettings": "core.flexgen.pipeline",
    "SequenceSettings": "core.ehrpd.pipeline",
    "SyntheticSet": "core.generation",
    # review and release
    "review": "core.metrics.suite",
    "ReviewSettings": "core.metrics.suite",
    "ReviewKey": "core.metrics.suite",
    "summary_table": "core.metrics.suite",
    "evaluate_gate": "core.release.gate",
    "GateThresholds": "core.release.gate",
    "release_manifest": "core.release.gate",
    # chest X-ray forecasting
    "ForecastSettings": "core.cxr.pipeline",
    "read_radiograph": "core.data.images",
    "read_ehr_window": "core.cxr.ehr_window",
    # errors
    "CoreError": "core.errors",
}

__all__ = sorted(PUBLIC_API)


def __getattr__(name: str) -> Any:
    module = PUBLIC_API.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC_API])
