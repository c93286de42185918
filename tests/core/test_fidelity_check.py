"""The fidelity check at the end of an in-page training (issue 31): a model that has not learnt
its training data is labelled weak; the check records aggregates only."""

from __future__ import annotations

import numpy as np
import pytest

from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.errors import ConfigError
from core.loading import WEAK_R2, FidelityCheck, fidelity_check
from core.manifest_guard import data_in_string
from tests.core.ehrdiff.test_pipeline import code_table


def test_an_undertrained_model_is_weak_and_the_check_holds_aggregates_only():
    rng = np.random.default_rng(0)
    # two codes at very different prevalences; 3 steps cannot have learnt them
    table = code_table(np.column_stack([rng.random(300) < 0.9, rng.random(300) < 0.05]))
    model = train_ehrdiff(
        table, TrainConfig(units=(16,), embed_dim=8, steps=3, batch_size=32), device="cpu"
    ).model
    check = fidelity_check(model, table, n=200)
    assert check.n_synthetic == 200 and check.weak and check.r2 < WEAK_R2
    metrics = check.as_metrics()
    assert set(metrics) == {
        "fidelity_r2_vs_train", "fidelity_check", "fidelity_weak_below", "fidelity_impossible_share"
    }  # fmt: skip
    assert "200 synthetic vs the training split" in metrics["fidelity_check"]
    assert not any(data_in_string(str(v)) for v in metrics.values())


@pytest.mark.parametrize(("r2", "weak"), [(0.95, False), (0.5, False), (0.49, True), (-2.4, True)])
def test_the_weak_label_follows_the_documented_threshold(r2, weak):
    assert FidelityCheck(r2, "m", 10, "s", 0.1).weak is weak
    assert FidelityCheck(float("nan"), "m", 10, "s", 0.1).weak  # no R² is no pass


def test_a_model_of_no_generator_family_is_refused():
    with pytest.raises(ConfigError, match="No fidelity check for a model of type str"):
        fidelity_check("not a model", None)


def test_the_impossible_share_counts_records_breaking_the_cohorts_logic():
    """Known answer: 40 of 2,000 demo stays given a heart-rate minimum above its maximum."""
    from core.data.demo import list_demos, load_demo
    from core.data.records import ehr_table, table_from_frame
    from core.loading import _impossible_share
    from ui.models import quality_label, quality_notes

    table = ehr_table(load_demo(list_demos()[0]))
    assert _impossible_share(table, table) == 0.0  # real records obey their own rules
    frame = table.to_frame()
    rows = frame.index[frame["HR_min"] < frame["HR_max"]][:40]
    frame.loc[rows, ["HR_min", "HR_max"]] = frame.loc[rows, ["HR_max", "HR_min"]].to_numpy()
    broken = table_from_frame(frame, table, "swapped.csv")
    assert _impossible_share(broken, table) == pytest.approx(40 / 2000)
    metrics = FidelityCheck(0.95, "m", 2000, "s", 0.1, 0.02).as_metrics()
    assert quality_label(metrics) == "R² 0.95, 2.0% impossible"
    assert any("**Impossible records**: 2.0%" in n for n in quality_notes(metrics))
