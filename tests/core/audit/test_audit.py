"""The offline audits end to end: with toy "families" (a memoriser and a generator blind to its
data) their known answers and their resumability, fast; then ``python -m core.audit`` on a tiny
EHRDiff model, killed after its first shadow and rerun, recording aggregates in the manifest."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audit import AuditWork, Recipe, run_canary_audit, run_shadow_audit
from core.checkpoints import verify_checkpoint
from core.data.cohort import split_cohort
from core.data.formats import NamedInput, load_cohort
from core.data.records import ehr_table
from core.errors import ConfigError
from tests.artifact_scan import TrainingCohort, assert_no_patient_data

ROOT = Path(__file__).resolve().parents[3]


def _cohort(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    lines = ["id,a,b,c,d,y"] + [
        f"p{i},{rng.normal(60, 10):.3f},{rng.normal(5, 2):.3f},{rng.normal(0, 1):.3f},"
        f"{rng.gamma(2, 2):.3f},{int(rng.random() < 0.3)}"
        for i in range(n)
    ]
    data = ("\n".join(lines) + "\n").encode()
    options = {"id_column": "id", "label_column": "y"}
    return load_cohort("wide_table", {"table": NamedInput("toy.csv", data)}, options)


def _recipe(kind: str, trained: list) -> Recipe:
    other = ehr_table(_cohort(seed=99))

    def train(cohort, seed, callback):
        trained.append(seed)
        callback(1, 1, 0.0)
        return ehr_table(cohort)

    def sample(model, n, seed):
        if kind == "memoriser":  # releases its training records, shuffled
            return model.subset(np.random.default_rng(seed).permutation(model.n_records)[:n])
        return other.subset(np.random.default_rng(seed).choice(other.n_records, n))

    return Recipe(kind, 1, 1, train, sample)


@pytest.fixture(scope="module")
def toy():
    cohort = _cohort()
    return cohort, split_cohort(cohort, 0.5, 0)


def test_the_shadow_audit_finds_a_memoriser_and_clears_a_blind_generator(toy, tmp_path):
    cohort, split = toy
    trained: list = []
    leaky = _recipe("memoriser", trained)
    audited = ehr_table(cohort.subset(split.train))
    found = run_shadow_audit(
        cohort, split, leaky, audited, AuditWork(tmp_path / "a", {"p": 1}), shadows=4, targets=100
    )
    assert found["auroc"] > 0.9 and found["shadows"] == 4 and trained == [1, 2, 3, 4]
    assert found["tpr_at_fpr"]["0.1"]["tpr"] > 0.5
    blind = _recipe("blind", [])
    cleared = run_shadow_audit(
        cohort, split, blind, audited, AuditWork(tmp_path / "b", {"p": 2}), shadows=8, targets=100
    )
    assert cleared["auroc_ci"][0] < 0.5 < cleared["auroc_ci"][1]
    assert cleared["epsilon_lower_bound"] == 0.0


def test_a_rerun_reuses_every_finished_shadow_and_a_folder_keeps_one_plan(toy, tmp_path):
    cohort, split = toy
    audited = ehr_table(cohort.subset(split.train))
    first: list = []
    work = AuditWork(tmp_path / "w", {"p": 1})
    run_shadow_audit(
        cohort, split, _recipe("memoriser", first), audited, work, shadows=4, targets=40
    )
    (tmp_path / "w" / "shadow-2.npy").unlink()  # as if killed while training the third
    again: list = []
    result = run_shadow_audit(
        cohort, split, _recipe("memoriser", again), audited, AuditWork(tmp_path / "w", {"p": 1}),
        shadows=4, targets=40,
    )  # fmt: skip
    assert first == [1, 2, 3, 4] and again == [3] and result["auroc"] > 0.9
    with pytest.raises(ConfigError, match="another audit"):
        AuditWork(tmp_path / "w", {"p": 2})


def test_the_canary_audit_bounds_a_memoriser_and_not_a_blind_generator(toy, tmp_path):
    cohort, split = toy
    leaky = run_canary_audit(cohort, split, _recipe("memoriser", []), AuditWork(tmp_path / "a", {}))
    assert leaky["canaries"] == len(split.holdout) and leaky["epsilon_lower_bound"] > 1.5
    blind = run_canary_audit(cohort, split, _recipe("blind", []), AuditWork(tmp_path / "b", {}))
    assert blind["epsilon_lower_bound"] == 0.0


# --- the command on a tiny EHRDiff model -------------------------------------------------------


@pytest.mark.slow
def test_the_audit_command_resumes_after_a_kill_and_records_aggregates(tmp_path, caplog, capsys):
    from core.audit.__main__ import main as audit_main
    from core.ehrdiff.train import main as train_main

    rng = np.random.default_rng(0)
    csv = tmp_path / "ward.csv"
    csv.write_text(
        "id,age,lactate,y\n"
        + "".join(
            f"p{i},{rng.normal(60, 10):.1f},{rng.gamma(2, 1):.2f},{int(rng.random() < 0.3)}\n"
            for i in range(160)
        )
    )
    cohort = ["--cohort", "wide_table", f"--input=table={csv}", "--option", "id_column=id",
              "--option", "label_column=y"]  # fmt: skip
    model = tmp_path / "model"
    assert train_main([*cohort, "--out", str(model), "--steps", "20", "--units", "16,16",
                       "--batch-size", "32", "--eval-steps", "2", "--device", "cpu"]) == 0  # fmt: skip
    audit = ["shadow", "--model", str(model), *cohort, "--work", str(tmp_path / "w"),
             "--shadows", "4", "--targets", "16", "--device", "cpu"]  # fmt: skip
    killed = subprocess.run(
        [sys.executable, "-m", "core.audit", *audit], cwd=ROOT, capture_output=True, text=True,
        timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1",
                          "CSS_FAULT_POINT": "audit.shadow.after_save"},
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert "audits" not in json.loads((model / "manifest.json").read_text())["metrics"]
    # Killed while replacing the manifest: the old one is whole and the weights still verify.
    before = (model / "manifest.json").read_bytes()
    killed = subprocess.run(
        [sys.executable, "-m", "core.audit", *audit], cwd=ROOT, capture_output=True, text=True,
        timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1",
                          "CSS_FAULT_POINT": "audit.manifest.before_rename"},
    )  # fmt: skip
    assert killed.returncode == -9 and (model / "manifest.json").read_bytes() == before
    verify_checkpoint(model)
    with caplog.at_level("INFO", logger="core.audit"):
        assert audit_main(audit) == 0
    assert "4 of 4 shadow models already done" in caplog.text
    assert audit_main(["canaries", "--model", str(model), *cohort,
                       "--work", str(tmp_path / "c"), "--device", "cpu"]) == 0  # fmt: skip
    manifest = json.loads((model / "manifest.json").read_text())
    audits = manifest["metrics"]["audits"]
    assert set(audits) == {"shadow", "canaries"}
    assert 0 <= audits["shadow"]["auroc"] <= 1 and audits["shadow"]["targets"] == 16
    assert audits["canaries"]["canaries"] == 32 and audits["canaries"]["epsilon_lower_bound"] >= 0
    assert audits["shadow"]["trained_with"] == "the model's own settings (20 steps)"
    # Ids, values and rows of the cohort appear in neither the manifest nor the work folders.
    assert_no_patient_data(
        [model / "manifest.json", *tmp_path.glob("[wc]/*")], TrainingCohort.from_file(csv, "id")
    )
    wrong = tmp_path / "other.csv"
    wrong.write_text(csv.read_text().replace("p1,", "q1,"))
    capsys.readouterr()
    refused = audit_main(["canaries", "--model", str(model), "--cohort", "wide_table",
                          f"--input=table={wrong}", "--option", "id_column=id", "--option",
                          "label_column=y", "--work", str(tmp_path / "x")])  # fmt: skip
    assert refused == 2 and "not the one" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model():
    """An EHRDiff of two training steps: something to save with a manifest."""
    from core.ehrdiff.train import TrainConfig, train_ehrdiff
    from tests.core.ehrdiff.test_pipeline import code_table

    codes = code_table(np.random.default_rng(0).random((60, 2)) < 0.3)
    return train_ehrdiff(codes, TrainConfig(units=(8,), embed_dim=8, steps=2), device="cpu").model


def test_recording_an_audit_keeps_the_others_and_the_weights(tiny_model, tmp_path):
    from core.audit.run import record_in_manifest

    model = tiny_model
    model.save(tmp_path / "m", data_card={}, training_command="", metrics={"final_loss": 1.0})
    record_in_manifest(tmp_path / "m", "shadow", {"auroc": 0.5})
    record_in_manifest(tmp_path / "m", "canaries", {"epsilon_lower_bound": 0.0})
    record_in_manifest(tmp_path / "m", "shadow", {"auroc": 0.6})  # a rerun replaces its own
    metrics = verify_checkpoint(tmp_path / "m").metrics
    assert metrics["final_loss"] == 1.0
    assert metrics["audits"] == {"shadow": {"auroc": 0.6}, "canaries": {"epsilon_lower_bound": 0.0}}


def test_arguments_are_refused_before_any_training_and_leave_nothing_in_the_way(toy, tmp_path):
    cohort, split = toy  # 200 training and 200 held-out records
    audited = ehr_table(cohort.subset(split.train))
    trained: list = []
    recipe = _recipe("memoriser", trained)
    for targets, match in ((21, "must be even"), (2, "from 4 to 400"), (402, "from 4 to 400")):
        with pytest.raises(ConfigError, match=match):
            run_shadow_audit(cohort, split, recipe, audited, AuditWork(tmp_path / "w", {"t": 1}),
                             shadows=4, targets=targets)  # fmt: skip
    # 400 targets leave 0 records to fill shadows of 200 holding about 200 targets each
    with pytest.raises(ConfigError, match="use fewer --targets"):
        run_shadow_audit(cohort, split, recipe, audited, AuditWork(tmp_path / "w", {"t": 1}),
                         shadows=4, targets=400)  # fmt: skip
    assert trained == [] and not (tmp_path / "w" / "plan.json").exists()
    # the corrected rerun, even with other arguments, is not refused
    run_shadow_audit(cohort, split, recipe, audited, AuditWork(tmp_path / "w", {"t": 2}),
                     shadows=4, targets=40)  # fmt: skip
    with pytest.raises(ConfigError, match="differs in t"):
        AuditWork(tmp_path / "w", {"t": 3})


@pytest.mark.slow
def test_a_private_model_is_retrained_privately_and_an_old_one_without_ema_rampup(
    tiny_model, tmp_path
):
    import torch

    from core.audit.recipes import recipe_for

    model = tiny_model
    recorded = {"units": [8], "embed_dim": 8, "steps": 2, "batch_size": 16, "seed": 0}
    private = {**recorded, "ema_rampup": 0.05, "dp": {"epsilon": 3.0, "max_grad_norm": 1.0}}
    card = {"data_card": {}, "training_command": "", "metrics": {}}
    model.save(tmp_path / "dp", extra_config={"train": private}, **card)
    model.save(tmp_path / "old", extra_config={"train": recorded}, **card)
    cpu = torch.device("cpu")
    dp = recipe_for(tmp_path / "dp", None, cpu).settings
    assert dp.dp is not None and dp.dp.epsilon == 3.0 and dp.ema_rampup == 0.05
    old = recipe_for(tmp_path / "old", 5, cpu)
    assert old.settings.dp is None and old.settings.ema_rampup == 0.0
    assert old.settings_note == "the model's settings at 5 steps instead of 2"
    cohort = _cohort(60)
    trained = old.train(cohort, 1, None)  # the patient ids reach the training (DP's unit)
    assert old.sample(trained, 7, 0).n_records == 7
