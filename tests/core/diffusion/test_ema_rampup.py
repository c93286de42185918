"""EDM's EMA ramp-up (issue 31): a short training is not an average of its random start."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.diffusion.edm import EMA


def _run(rampup: float | None, updates: int) -> float:
    """The shadow's distance to the trained weights after ``updates`` updates in which the
    weights jumped from their initial value 0 to 1 at once."""
    net = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(net.weight)
    ema = EMA(net, decay=0.999, rampup=rampup)
    with torch.no_grad():
        net.weight.fill_(1.0)
    for _ in range(updates):
        ema.update(net)
    return float((1.0 - ema.shadow.weight).abs())


def test_a_plain_average_still_holds_most_of_the_start_after_400_steps():
    assert _run(None, 400) == pytest.approx(0.999**400, rel=1e-4)  # 67% of the start


def test_the_ramp_up_forgets_the_start_in_a_short_run_and_matches_plain_ema_later():
    assert _run(0.05, 400) < 1e-6
    ema = EMA(nn.Linear(1, 1), decay=0.999, rampup=0.05)
    ema.updates = 100_000  # long past the ramp: the half-life is the decay's own
    assert ema.current_decay() == pytest.approx(0.999)
    assert EMA(nn.Linear(1, 1), decay=0.999).current_decay() == 0.999
