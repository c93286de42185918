"""FLEXGEN-EHR series keep the training records' logic (issue #28)."""

from __future__ import annotations

import numpy as np

from core.encoding.constraints import Constraint, ConstraintSet
from core.flexgen.pipeline import tie_observation

VARIABLES = ("DiasABP", "SysABP", "HR")
TIED = ConstraintSet(
    (
        Constraint(
            "missing_together", tuple(f"{v}_{s}" for v in VARIABLES[:2] for s in ("min", "max"))
        ),
    ),
    "test",
)


def test_variables_missing_together_are_measured_together():
    observed = np.zeros((4, 3, 3), bool)
    observed[0, [0, 2], 0] = True  # DiasABP only: SysABP joins it at the same steps
    observed[1, 1, 1] = True  # SysABP only: dropped with its absent leader
    observed[2, 0, 0] = observed[2, 2, 1] = True  # both measured: left as sampled
    observed[:, :, 2] = True  # HR is in no group
    tied = tie_observation(observed, VARIABLES, TIED)
    np.testing.assert_array_equal(tied[0, :, 1], observed[0, :, 0])
    assert not tied[1, :, :2].any()
    np.testing.assert_array_equal(tied[2:], observed[2:])
    np.testing.assert_array_equal(tied[..., 2], observed[..., 2])
    present = tied[:, :, :2].any(axis=1)
    assert (present[:, 0] == present[:, 1]).all()
    assert observed[1, 1, 1]  # the input is not changed in place


def test_no_group_leaves_the_mask_as_sampled():
    observed = np.random.default_rng(0).random((5, 4, 3)) < 0.5
    assert tie_observation(observed, VARIABLES, ConstraintSet((), "none")) is observed
