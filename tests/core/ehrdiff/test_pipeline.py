import numpy as np
import pytest
import scipy.sparse as sp

from core.data.cohort import CodeMatrix
from core.data.records import EHRTable
from core.ehrdiff.pipeline import MAX_RECORDS, EHRDiffModel, GenerationSettings
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.errors import CheckpointError, ConfigError

TINY = TrainConfig(
    units=(64, 64), embed_dim=32, steps=600, batch_size=256, lr=2e-3, warmup=50, ema_decay=0.99
)


def code_table(x: np.ndarray, labels: np.ndarray | None = None) -> EHRTable:
    ids = np.array([f"r{i}" for i in range(len(x))], dtype=object)
    codes = CodeMatrix(sp.csr_array(x.astype(np.uint8)), ("A", "B"), "toy", "full")
    classes = ("no", "yes") if labels is not None else ()
    return EHRTable(
        ids, None, (), codes, labels, "outcome" if labels is not None else None, classes
    )


@pytest.fixture(scope="module")
def bernoulli_model():
    rng = np.random.default_rng(0)
    x = np.c_[rng.random(3000) < 0.2, rng.random(3000) < 0.7]
    return train_ehrdiff(code_table(x), TINY, model_id="toy", device="cpu").model


@pytest.fixture(scope="module")
def conditional_model():
    rng = np.random.default_rng(1)
    labels = (rng.random(3000) < 0.5).astype(np.int64)
    a = rng.random(3000) < np.where(labels == 1, 0.9, 0.1)
    b = rng.random(3000) < 0.5
    return train_ehrdiff(
        code_table(np.c_[a, b], labels), TINY, model_id="toy-cond", device="cpu"
    ).model


def test_training_recovers_independent_prevalences(bernoulli_model):
    synth = bernoulli_model.generate(GenerationSettings(n=4000, seed=0))
    prev = synth.table.codes.prevalence()
    assert abs(prev[0] - 0.2) < 0.04 and abs(prev[1] - 0.7) < 0.04
    # independence: P(A and B) close to P(A) P(B)
    dense = synth.table.codes.dense()
    assert abs((dense[:, 0] * dense[:, 1]).mean() - prev[0] * prev[1]) < 0.04


def test_generation_is_seeded_and_chunk_independent(bernoulli_model):
    a = bernoulli_model.generate_vectors(GenerationSettings(n=50, seed=3, steps=6))[0]
    b = bernoulli_model.generate_vectors(GenerationSettings(n=50, seed=3, steps=6))[0]
    c = bernoulli_model.generate_vectors(GenerationSettings(n=50, seed=4, steps=6))[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (50, 2) and np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1


def test_heun_and_fast_solver_agree_on_prevalence(bernoulli_model):
    heun = bernoulli_model.generate(GenerationSettings(n=3000, sampler="heun", steps=32, seed=5))
    fast = bernoulli_model.generate(
        GenerationSettings(n=3000, sampler="dpmpp_2m", steps=12, seed=5)
    )
    assert heun.network_evaluations == 63 and fast.network_evaluations == 12
    assert np.abs(heun.table.codes.prevalence() - fast.table.codes.prevalence()).max() < 0.04


def test_label_conditioning_and_guidance(conditional_model):
    model = conditional_model
    assert model.n_classes == 2 and abs(model.class_prior[1] - 0.5) < 0.05
    pos = model.generate(GenerationSettings(n=2000, seed=0, label_mix=(0.0, 1.0)))
    neg = model.generate(GenerationSettings(n=2000, seed=0, label_mix=(1.0, 0.0)))
    assert (pos.table.labels == 1).all() and (neg.table.labels == 0).all()
    assert pos.table.codes.prevalence()[0] > 0.8 and neg.table.codes.prevalence()[0] < 0.2
    strong = model.generate(GenerationSettings(n=2000, seed=0, label_mix=(0.0, 1.0), guidance=3.0))
    assert strong.table.codes.prevalence()[0] >= pos.table.codes.prevalence()[0] - 0.01
    frame = pos.table.to_frame()
    assert frame.columns.tolist() == ["record_id", "A", "B", "outcome"] and set(
        frame["outcome"]
    ) == {"yes"}


def test_save_load_round_trip_gives_identical_output(bernoulli_model, tmp_path):
    manifest = bernoulli_model.save(
        tmp_path / "toy", data_card={"dataset": "toy"}, training_command="pytest", metrics={}
    )
    loaded = EHRDiffModel.load(tmp_path / "toy", device="cpu")
    settings = GenerationSettings(n=64, seed=9, steps=8)
    assert np.array_equal(
        bernoulli_model.generate_vectors(settings)[0], loaded.generate_vectors(settings)[0]
    )
    assert loaded.manifest.sha256 == manifest.sha256 and loaded.encoding == bernoulli_model.encoding
    with pytest.raises(CheckpointError, match="is a 'ehrdiff' model, expected 'flexgen'"):
        from core.checkpoints import load_checkpoint

        load_checkpoint(tmp_path / "toy", family="flexgen")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (GenerationSettings(n=0), "positive integer"),
        (GenerationSettings(n=MAX_RECORDS + 1), "memory-safe limit"),
        (GenerationSettings(n=10, guidance=2.0), "need a label-conditional model"),
        (GenerationSettings(n=10, sampler="euler"), "Unknown sampler"),
        (GenerationSettings(n=10, steps=0), "Steps must be"),
        (GenerationSettings(n=10, schedule="cosine"), "Unknown noise schedule"),
    ],
)
def test_bad_generation_settings(bernoulli_model, settings, message):
    with pytest.raises(ConfigError, match=message):
        bernoulli_model.generate(settings)


def test_bad_label_mix(conditional_model):
    with pytest.raises(ConfigError, match="Label mix"):
        conditional_model.generate(GenerationSettings(n=10, label_mix=(0.3, 0.3)))


def test_stop_request_ends_training_early():
    x = np.c_[np.ones(100), np.zeros(100)]
    calls = []
    result = train_ehrdiff(
        code_table(x),
        TINY,
        device="cpu",
        callback=lambda s, t, loss: calls.append(s),
        should_stop=lambda: len(calls) >= 2,
    )
    assert result.stopped_early and len(result.losses) == 2  # reported every step (issue 31)


def test_schedules_default_per_sampler_and_change_the_output(bernoulli_model):
    assert GenerationSettings(n=1, sampler="heun").schedule_name == "edm"
    assert GenerationSettings(n=1, sampler="dpmpp_2m").schedule_name == "tuned"
    tuned = bernoulli_model.generate_vectors(GenerationSettings(n=20, steps=6, seed=1))[0]
    edm = bernoulli_model.generate_vectors(
        GenerationSettings(n=20, steps=6, seed=1, schedule="edm")
    )[0]
    assert not np.array_equal(tuned, edm)
