"""The public API: every name in ``core.PUBLIC_API`` resolves, and the documented example (docs/python-api.md) runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import core

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(core.PUBLIC_API))
def test_each_public_name_resolves_from_core(name: str) -> None:
    assert getattr(core, name) is not None
    assert name in dir(core)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        core.nope  # noqa: B018


def test_load_model_dispatches_on_the_manifest_family(tmp_path: Path) -> None:
    from core.cxr.pipeline import DDLCXRForecaster
    from core.ehrdiff.pipeline import EHRDiffModel
    from core.errors import CheckpointError

    assert isinstance(core.load_model(ROOT / "checkpoints" / "ehrdiff-physionet2012"), EHRDiffModel)
    assert isinstance(
        core.load_model(ROOT / "checkpoints" / "ddlcxr-hannover-64", "cpu"), DDLCXRForecaster
    )
    with pytest.raises(CheckpointError, match="no manifest"):
        core.load_model(tmp_path)


@pytest.mark.slow
def test_the_documented_example_runs_as_written() -> None:
    text = (ROOT / "docs" / "python-api.md").read_text()
    block = re.search(r"<!-- public-api-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/python-api.md lost its public-API example"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", block.group(1)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Dimension-wise probability" in done.stdout
