"""SyntheticSet's constructors for sets no model sampled: what their provenance states."""

import hashlib

import numpy as np
import pytest

from core.generation import SyntheticSet
from tests.core.metrics.test_suite import codes


def test_an_upload_is_named_by_its_file_and_bound_to_its_bytes():
    x = np.eye(3, dtype=np.float32)
    synth = SyntheticSet.from_upload(codes(x, "u"), x, "set.csv", b"a,b\n1,2\n")
    assert synth.provenance == {
        "source": "uploaded file set.csv",
        "file sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(),
    }  # no sampler: no model sampled it
    assert synth.settings is None and synth.network_evaluations == 0


def test_a_baseline_states_its_rule_and_seed():
    x = np.eye(3, dtype=np.float32)
    synth = SyntheticSet.baseline(codes(x, "b"), x, "independent marginals", "each column", seed=4)
    assert synth.provenance == {
        "source": "baseline: independent marginals",
        "definition": "each column",
        "seed": 4,
    }


def test_no_caller_fills_the_fields_by_position():
    x = np.eye(3, dtype=np.float32)
    with pytest.raises(TypeError):
        SyntheticSet(codes(x, "p"), x, "m", None, 0.0, 0)  # type: ignore[misc]
