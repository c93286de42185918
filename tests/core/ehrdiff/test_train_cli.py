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
