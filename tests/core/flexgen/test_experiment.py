"""The missing-modality experiment and the direct imputation scores, on the toy cohort."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.flexgen.encoding import modality_presence
from core.flexgen.experiment import hide_modalities, mean_ci, merge, run_cell, write_results
from core.flexgen.imputation import pair_recovery, r2_per_column
from tests.core.flexgen.test_flexgen import TINY
from tests.core.flexgen.toy import toy_cohort


def test_hiding_takes_disjoint_shares_of_the_complete_records() -> None:
    cohort = toy_cohort(200)
    hidden = hide_modalities(cohort, 0.2, 0.3, seed=0)
    has_s, has_t = modality_presence(hidden)
    assert (~has_s).sum() == 40 and (~has_t).sum() == 60 and (has_s | has_t).all()
    again = hide_modalities(cohort, 0.2, 0.3, seed=0)
    assert (modality_presence(again)[0] == has_s).all()  # reproducible per seed
    assert (modality_presence(hide_modalities(cohort, 0.2, 0.3, seed=1))[0] != has_s).any()


def test_score_known_answers() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(50, 3))
    assert pair_recovery(truth, truth) == 1.0
    assert pair_recovery(truth[::-1], truth) < 0.1
    r2 = r2_per_column(np.zeros_like(truth) + truth.mean(axis=0), truth)
    np.testing.assert_allclose(r2, 0.0, atol=1e-12)
    assert np.isnan(r2_per_column(truth, np.ones_like(truth))).all()  # constant truth
    m, lo, hi = mean_ci(pd.Series([1.0, 2.0, 3.0]))
    assert m == 2.0 and hi - m == pytest.approx(4.303 / np.sqrt(3), abs=1e-3)


@pytest.mark.slow
def test_one_cell_scores_every_method_and_variant(tmp_path) -> None:
    cohort = toy_cohort(240)
    config = replace(TINY, diffusion_iters=60)
    grid, imputation, per_variable = run_cell(
        cohort, 0.3, 0.3, 0, config,
        variants=("gw", "ridge", "knn", "complete_case"),
        imputation=("gw", "ridge", "mlp"), epsilons=(0.02,),
    )  # fmt: skip
    assert [r["variant"] for r in grid] == ["gw", "ridge", "knn", "complete_case"]
    assert grid[3]["records used"] < grid[0]["records used"] == 192
    scores = {(r["method"], r["imputed"]): r for r in imputation}
    methods = {m for m, _ in scores}
    assert methods == {"gw", "ridge", "mlp", "gw eps=0.02", "label_mean", "knn", "vae_ceiling"}
    for part in ("static", "temporal"):
        assert scores[("vae_ceiling", part)]["latent_r2"] == pytest.approx(1.0)
        # The label mean is the floor an alignment without pairing information reduces to.
        assert abs(scores[("label_mean", part)]["latent_r2"]) < 0.2
    assert all(r["latent_r2"] <= 1.0 and 0.0 <= r["pair_chance"] < 0.05 for r in imputation)
    assert {r["variable"] for r in per_variable} >= {"Age", "HR"}
    rows = {"grid": grid, "imputation": imputation, "per_variable": per_variable}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_results(tmp_path / name, rows, [f"run {name}"])
        (tmp_path / name / "command.txt").write_text(f"run {name}\n")
    merge([tmp_path / "a", tmp_path / "b"], tmp_path / "all")
    summary = (tmp_path / "all" / "summary.md").read_text()
    assert "`run a`; `run b`" in summary and "## Generation grid" in summary
    assert "| 30% | 30% | ridge | 1 |" in summary  # the same seed twice counts once
    assert len(pd.read_csv(tmp_path / "all" / "grid.csv")) == 4
