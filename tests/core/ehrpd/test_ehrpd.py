"""EHRPD on a planted Markov chain (known transitions, gaps and lengths), persistence, guidance,
and the sequence metrics' known answers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from core.checkpoints import read_manifest
from core.ehrpd.pipeline import EHRPDModel, SequenceSettings
from core.ehrpd.train import EHRPDTrainConfig, train_ehrpd
from core.errors import ConfigError
from core.loading import load_model
from core.metrics import sequences
from tests.core.ehrpd.planted import (
    CLUSTER_CODES,
    CODE_P,
    GAP_LOG_MEAN,
    GAP_LOG_STD,
    TRANSITIONS,
    planted_chain,
    transition_matrix,
)

SMALL = EHRPDTrainConfig(steps=800, batch_size=64, d_model=64, denoiser_hidden=128)


@pytest.fixture(scope="module")
def planted():
    cohort = planted_chain(1000, seed=0)
    result = train_ehrpd(cohort, SMALL, model_id="planted", device="cpu")
    synth = result.model.generate(SequenceSettings(n=1000, seed=1, steps=20))
    return cohort, result, synth


def test_the_model_recovers_the_planted_chain(planted):
    cohort, _, synth = planted
    v = synth.visits
    # Transitions between the code clusters of consecutive visits: within 0.12 of the truth.
    assert np.abs(transition_matrix(v) - TRANSITIONS).max() < 0.12
    # Gaps: log-normal(log 30 d, 0.5); KS distance to the planted law below 0.06.
    assert (
        stats.kstest(np.log(v.known_gaps()), "norm", args=(GAP_LOG_MEAN, GAP_LOG_STD)).statistic
        < 0.06
    )
    # Sequence length (geometric, continue 0.75, cap 8) and codes per visit within 10%.
    assert v.visits_per_patient().mean() == pytest.approx(
        cohort.visits_per_patient().mean(), rel=0.1
    )
    vocab = {"diagnosis": tuple(c for cluster in CLUSTER_CODES for c in cluster)}
    per_visit = np.asarray(v.multi_hot(vocab).sum(axis=1)).ravel().mean()
    assert per_visit == pytest.approx(4 * CODE_P, rel=0.1)
    assert synth.table.n_records == 1000 and synth.settings.n == 1000


def test_sequence_metrics_on_the_planted_model(planted):
    cohort, result, synth = planted
    vocab = result.model.encoding.vocabulary_map
    holdout = planted_chain(500, seed=7)
    assert sequences.visits_per_patient(cohort, synth.visits).value < 0.3
    assert sequences.gap_distribution(cohort, synth.visits).value < 0.08
    # Every planted code has about the same prevalence at every visit index, so R² has no
    # spread to explain there; the mean absolute difference is the readable check.
    by_visit = sequences.prevalence_by_visit(cohort, synth.visits, vocab)
    assert by_visit.details["mean_abs_difference"] < 0.05
    assert sequences.consecutive_cooccurrence(cohort, synth.visits, vocab).value > 0.9
    ppl = sequences.longitudinal_perplexity(cohort, synth.visits, holdout, vocab)
    assert ppl.value < 1.25 * ppl.ideal  # the synthetic-trained predictor is nearly as sharp
    tstr = sequences.next_visit_tstr(cohort, synth.visits, holdout, vocab, n_boot=50)
    assert tstr.value > 0.8 and tstr.ideal > 0.8 and tstr.ci[0] < tstr.value < tstr.ci[1]


def test_sequence_metrics_known_answers():
    real = planted_chain(400, seed=3)
    vocab = {"diagnosis": tuple(c for cluster in CLUSTER_CODES for c in cluster)}
    assert sequences.visits_per_patient(real, real).value == 0.0
    assert sequences.gap_distribution(real, real).value == 0.0
    assert sequences.prevalence_by_visit(real, real, vocab).value == pytest.approx(1.0)
    assert sequences.consecutive_cooccurrence(real, real, vocab).value == pytest.approx(1.0)
    # The same visits with the order inside each patient shuffled lose what follows what.
    rng = np.random.default_rng(0)
    ends = np.cumsum(real.visits_per_patient())
    bounds = zip(np.r_[0, ends[:-1]], ends, strict=True)
    order = np.concatenate([lo + rng.permutation(hi - lo) for lo, hi in bounds])
    shuffled = replace(
        real, events=real.events.assign(visit=np.argsort(order)[real.events["visit"]])
    )
    assert sequences.consecutive_cooccurrence(real, shuffled, vocab).value < 0.8


def test_save_load_round_trip_and_guidance(planted, tmp_path):
    cohort, result, _ = planted
    result.model.save(
        tmp_path / "m", data_card={"dataset": "planted"}, training_command="test", metrics={}
    )
    loaded = load_model(tmp_path / "m", device="cpu")
    assert isinstance(loaded, EHRPDModel) and read_manifest(tmp_path / "m").family == "ehrpd"
    a = result.model.generate(SequenceSettings(n=50, seed=5, steps=5))
    b = loaded.generate(SequenceSettings(n=50, seed=5, steps=5))
    # Same seed, same sequences: identical codes and visit counts; gaps equal to float32 noise
    # (the in-memory EMA weights and the reloaded ones take different kernels' summation order).
    assert a.visits.events.equals(b.visits.events)
    np.testing.assert_allclose(a.visits.gap_days, b.visits.gap_days, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="label"):
        loaded.generate(SequenceSettings(n=5, guidance=2.0))  # unconditional model
    labelled = planted_chain(300, seed=4)
    labelled = replace(
        labelled,
        labels=(labelled.visits_per_patient() > 3).astype(np.int64),
        label_name="long",
        label_classes=("short", "long"),
    )
    tiny = train_ehrpd(
        labelled, EHRPDTrainConfig(steps=20, d_model=32, denoiser_hidden=32), device="cpu"
    )
    guided = tiny.model.generate(
        SequenceSettings(n=20, seed=0, steps=3, guidance=2.0, label_mix=(0.0, 1.0))
    )
    assert (
        guided.visits.labels == 1
    ).all() and guided.network_evaluations == 2 * 3 * tiny.model.encoding.max_visits
