"""The FLEXGEN-EHR training command, data-parallel with torchrun (2 CPU processes, gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.flexgen.pipeline import FlexGenModel, FlexGenSettings
from tests.core.flexgen.toy import toy_cohort

ROOT = Path(__file__).resolve().parents[3]


def write_toy(folder: Path) -> tuple[Path, Path]:
    """The toy cohort as the long-series + static table format, with missing parts."""
    c = toy_cohort(160, missing_static=0.2, missing_temporal=0.2)
    rec, step, var = np.nonzero(c.temporal.mask)
    series = folder / "series.csv"
    series.write_text(
        "id,time,variable,value\n"
        + "".join(
            f"{c.record_ids[r]},{t + 0.5},{c.temporal.variables[v]},{c.temporal.values[r, t, v]:.3f}\n"
            for r, t, v in zip(rec, step, var, strict=True)
        )
    )
    static = c.static.assign(id=c.record_ids, sick=c.labels)
    has_static = c.static.notna().any(axis=1).to_numpy()
    path = folder / "static.csv"
    static[has_static].to_csv(path, index=False)
    return series, path


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    series, static = write_toy(tmp_path)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = [
        "--cohort", "long_timeseries", "--input", f"table={series}", "--input", f"static={static}",
        "--option", "n_steps=8", "--option", "static_id_column=id", "--option", "label_column=sick",
        "--out", str(out), "--temporal-kind", "cnn", "--vae-epochs", "2", "--diffusion-iters", "20",
        "--variant", "flexgen", "--alignment", "ridge", "--device", "cpu",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "core.flexgen.train", *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    training = manifest["config"]["training"]
    assert training["processes"] == 2 and training["alignment"]["method"] == "ridge"
    assert manifest["metrics"]["processes"] == 2  # the card's run facts, not only the config
    assert training["records_with_static"] < training["records"]  # the hidden parts were imputed
    assert manifest["training_command"].startswith(
        "torchrun --nproc_per_node=2 -m core.flexgen.train --cohort"
    )
    model = FlexGenModel.load(out, device="cpu")
    assert model.generate(FlexGenSettings(n=5, seed=0)).table.n_records == 5
