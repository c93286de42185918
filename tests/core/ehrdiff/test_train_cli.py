"""The training command: reproducible, and data-parallel with torchrun (2 CPU processes, gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.ehrdiff.pipeline import EHRDiffModel, GenerationSettings
from core.ehrdiff.train import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def toy_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 120
    lines = ["id,age,smoker,y"] + [
        f"p{i},{rng.normal(60, 10):.1f},{int(rng.random() < 0.3)},{int(rng.random() < 0.2)}"
        for i in range(n)
    ]
    path = tmp_path / "toy.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def args_for(csv: Path, out: Path, steps: int = 30) -> list[str]:
    return [
        "--cohort", "wide_table", "--input", f"table={csv}", "--option", "id_column=id",
        "--option", "label_column=y", "--out", str(out), "--steps", str(steps), "--units", "32,32",
        "--batch-size", "32", "--eval-steps", "2", "--device", "cpu",
    ]  # fmt: skip


@pytest.mark.slow
def test_cli_is_reproducible_and_writes_a_model_card(toy_csv, tmp_path):
    assert main(args_for(toy_csv, tmp_path / "a")) == 0
    assert main(args_for(toy_csv, tmp_path / "b")) == 0
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a["sha256"] == b["sha256"]  # same seed, same data: identical weights
    assert a["training_command"].startswith("python -m core.ehrdiff.train --cohort wide_table")
    assert a["data_card"]["records_train"] == 96 and a["data_card"]["split"]["patient_level"]
    assert (
        a["config"]["train"]["steps"] == 30
        and len(a["config"]["reference_means"]) == a["config"]["network"]["dim"]
    )
    assert np.isfinite(
        a["metrics"]["dimension_wise_probability_r2_vs_train"]
    )  # R^2 has no lower bound
    model = EHRDiffModel.load(tmp_path / "a", device="cpu")
    assert (
        model.n_classes == 2
        and model.generate(GenerationSettings(n=5, steps=2)).table.n_records == 5
    )


@pytest.mark.slow
def test_torchrun_two_cpu_processes(toy_csv, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "core.ehrdiff.train", *args_for(toy_csv, out, steps=10)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["processes"] == 2
    assert manifest["training_command"].startswith(
        "torchrun --nproc_per_node=2 -m core.ehrdiff.train --cohort"
    )
    EHRDiffModel.load(out, device="cpu")


def test_add_marginals_gives_an_older_checkpoint_support_and_precision(tmp_path):
    from tools.add_marginals import main as add_marginals

    rng = np.random.default_rng(0)
    lines = ["id,gcs,lactate,y"] + [
        f"p{i},{rng.choice([3, 8, 14, 15])},{rng.lognormal(0.5, 0.4):.1f},{int(rng.random() < 0.2)}"
        for i in range(200)
    ]
    csv = tmp_path / "icu.csv"
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "old"
    assert main([*args_for(csv, out), "--numeric-space", "scaled"]) == 0
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for column in manifest["config"]["encoding"]["columns"]:
        column.pop("marginal", None)  # as written before marginals existed
    manifest_path.write_text(json.dumps(manifest))
    weights = (out / "model.safetensors").read_bytes()

    cohort_args = ["--cohort", "wide_table", "--input", f"table={csv}", "--option", "id_column=id",
                   "--option", "label_column=y"]  # fmt: skip
    assert add_marginals([str(out), *cohort_args]) == 0
    assert (out / "model.safetensors").read_bytes() == weights
    model = EHRDiffModel.load(out, device="cpu")  # the weights still verify
    gcs = next(c for c in model.encoding.columns if c.name == "gcs")
    assert gcs.space == "scaled" and gcs.marginal.support == (3.0, 8.0, 14.0, 15.0)
    lactate = next(c for c in model.encoding.columns if c.name == "lactate")
    assert lactate.marginal.decimals == 1
    table = model.generate(GenerationSettings(n=300, steps=4, seed=0)).table.static
    assert set(table["gcs"].dropna()) <= {3.0, 8.0, 14.0, 15.0}
    np.testing.assert_allclose(table["lactate"], table["lactate"].round(1))
    assert (
        "tools.add_marginals"
        in json.loads(manifest_path.read_text())["metrics"]["marginals_added_by"]
    )

    other = tmp_path / "other.csv"
    other.write_text("\n".join(lines[:150]) + "\n")
    with pytest.raises(SystemExit, match="fingerprint"):
        add_marginals([str(out), "--cohort", "wide_table", "--input", f"table={other}",
                       "--option", "id_column=id", "--option", "label_column=y"])  # fmt: skip
