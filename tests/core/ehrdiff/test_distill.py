"""Distillation: the student reproduces its teacher's Heun-32 map from the same noise, is saved
with its lineage, and refuses the samplers it was not trained for."""

import json

import numpy as np
import pytest

from core.diffusion.karras import DISTILLED
from core.ehrdiff import distill as distill_module
from core.ehrdiff.distill import DistillConfig, distill
from core.ehrdiff.pipeline import EHRDiffModel, GenerationSettings
from core.ehrdiff.train import train_ehrdiff
from core.errors import ConfigError
from tests.core.ehrdiff.test_pipeline import TINY, code_table

SMALL = DistillConfig(pairs=3000, steps=600, batch_size=256, lr=1e-3, warmup=50, ema_decay=0.99)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    rng = np.random.default_rng(2)
    labels = (rng.random(3000) < 0.4).astype(np.int64)
    a = rng.random(3000) < np.where(labels == 1, 0.8, 0.2)
    b = rng.random(3000) < 0.6
    model = train_ehrdiff(
        code_table(np.c_[a, b], labels), TINY, model_id="toy-t", device="cpu"
    ).model
    folder = tmp_path_factory.mktemp("teacher") / "toy-t"
    model.save(folder, data_card={"records_train": 400}, training_command="test", metrics={})
    return EHRDiffModel.load(folder, "cpu"), folder


@pytest.fixture(scope="module")
def student(teacher):
    return distill(teacher[0], SMALL).model


def test_one_evaluation_reproduces_the_teachers_map_record_by_record(teacher, student):
    t = teacher[0]
    n = 2000
    ode = t.generate_vectors(GenerationSettings(n=n, sampler="heun", steps=32, seed=7), clamp=False)
    other = t.generate_vectors(
        GenerationSettings(n=n, sampler="heun", steps=32, seed=8), clamp=False
    )
    one = student.generate_vectors(
        GenerationSettings(n=n, sampler=DISTILLED, steps=1, seed=7), clamp=False
    )
    assert np.array_equal(ode[1], one[1])  # same labels from the same seed
    gap = np.abs(one[0] - ode[0]).mean()
    chance = np.abs(other[0] - ode[0]).mean()  # what an unrelated draw would differ by
    assert gap < 0.25 * chance, (gap, chance)
    # and the decoded records keep the teacher's prevalences, per label
    for k in (0, 1):
        rows = ode[1] == k
        assert np.abs((one[0][rows] > 0.5).mean(0) - (ode[0][rows] > 0.5).mean(0)).max() < 0.05


def test_two_evaluations_keep_the_prevalences(teacher, student):
    two = student.generate(GenerationSettings(n=3000, sampler=DISTILLED, steps=2, seed=1))
    heun = teacher[0].generate(GenerationSettings(n=3000, sampler="heun", steps=32, seed=1))
    assert two.network_evaluations == 2
    assert np.abs(two.table.codes.prevalence() - heun.table.codes.prevalence()).max() < 0.05


def test_saved_with_lineage_and_reloaded_identically(teacher, student, tmp_path):
    t, _ = teacher
    folder = tmp_path / "toy-d"
    student.save(folder, data_card={}, training_command="x", metrics={})
    back = EHRDiffModel.load(folder, "cpu")
    info = back.distillation
    assert info.teacher_sha256 == t.manifest.sha256 and info.evaluations == (1, 2)
    assert info.levels[0] == pytest.approx(80.0) and 0 < info.levels[1] < 80
    s = GenerationSettings(n=300, sampler=DISTILLED, steps=2, seed=3)
    assert np.array_equal(back.generate_vectors(s)[0], student.generate_vectors(s)[0])


@pytest.mark.parametrize(
    ("which", "settings", "message"),
    [
        ("student", dict(sampler="heun", steps=32), "samples only with the 'distilled' sampler"),
        ("student", dict(sampler=DISTILLED, steps=3), "takes 1 or 2 evaluations"),
        ("student", dict(sampler=DISTILLED, steps=1, guidance=2.0), "trained at guidance 1"),
        ("teacher", dict(sampler=DISTILLED, steps=1), "is not distilled"),
    ],
)
def test_refuses_samplers_it_was_not_trained_for(teacher, student, which, settings, message):
    model = student if which == "student" else teacher[0]
    with pytest.raises(ConfigError, match=message):
        model.generate_vectors(GenerationSettings(n=10, **settings))


def test_a_distilled_model_is_not_distilled_again(student):
    with pytest.raises(ConfigError, match="itself distilled"):
        distill(student, SMALL)


def test_cli_writes_a_checkpoint_naming_its_teacher(teacher, tmp_path):
    t, folder = teacher
    out = tmp_path / "cli-d"
    args = ["--teacher", str(folder), "--out", str(out), "--pairs", "1000", "--steps", "50"]
    assert distill_module.main([*args, "--device", "cpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["distillation"]["teacher_sha256"] == t.manifest.sha256
    assert manifest["data_card"]["distilled_from"]["sha256"] == t.manifest.sha256
    metrics = manifest["metrics"]
    assert {
        "dimension_wise_probability_r2_teacher_heun32",
        "dimension_wise_probability_r2_1_evaluations",
        "dimension_wise_probability_r2_2_evaluations",
    } <= set(metrics)
    assert manifest["training_command"].startswith("python -m core.ehrdiff.distill --teacher")
