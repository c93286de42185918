"""Build the demo cohorts in ``assets/demo`` from the shipped checkpoints (EHRDiff, FLEXGEN-EHR).

    python -m tools.build_demo --out assets/demo [--only icu_patients]

Every record is sampled from a model; no real record is copied. Re-running the command with the
same checkpoints and seeds reproduces the files.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from core.ehrdiff.pipeline import EHRDiffModel, GenerationSettings

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


def build_stays(checkpoint: Path, out: Path, n: int, seed: int) -> dict:
    model = EHRDiffModel.load(checkpoint, device="cpu")
    synth = model.generate(GenerationSettings(n=n, steps=32, seed=seed))
    table = synth.table
    frame = table.static.copy()
    frame.insert(0, "record_id", [f"demo-stay-{i:05d}" for i in range(n)])
    frame["In-hospital_death"] = table.labels
    frame.to_parquet(out / "icu_stays.parquet", index=False)
    types = {f.name: f.kind for f in table.static_features}
    return {
        "id": "icu_stays",
        "title": "Demo: 2,000 synthetic ICU stays (PhysioNet-2012-like)",
        "description": "Static descriptors and 48-h summaries of 37 vitals and labs, with in-hospital death; "
        f"sampled from the shipped checkpoint {checkpoint.name} (DPM-Solver++(2M), 32 steps, tuned schedule, seed {seed}).",
        "format": "wide_table",
        "inputs": {"table": "icu_stays.parquet"},
        "options": {"id_column": "record_id", "label_column": "In-hospital_death", "types": types},
    }


def build_diagnoses(checkpoint: Path, out: Path, n: int, seed: int) -> dict:
    model = EHRDiffModel.load(checkpoint, device="cpu")
    synth = model.generate(GenerationSettings(n=n, steps=32, seed=seed))
    codes = synth.table.codes
    vocab = np.asarray(codes.vocabulary, dtype=object)
    rows = []
    for i in range(n):
        present = vocab[codes.matrix[[i]].indices]
        if len(present):
            rows.append({"patientunitstayid": 900000 + i, "icd9code": ", ".join(present)})
    pd.DataFrame(rows).to_csv(out / "icu_diagnoses.csv", index=False)
    return {
        "id": "icu_diagnoses",
        "title": f"Demo: {len(rows):,} synthetic ICU stays with ICD-9 diagnoses (eICU-like)",
        "description": "3-digit ICD-9 code sets per stay in the eICU `diagnosis` layout; sampled from the shipped "
        f"checkpoint {checkpoint.name} (DPM-Solver++(2M), 32 steps, tuned schedule, seed {seed}); stays without any code are left out.",
        "format": "eicu_diagnosis",
        "inputs": {"diagnosis": "icu_diagnoses.csv"},
        "options": {"granularity": "full", "versions": [9]},
    }


def build_patients(checkpoint: Path, out: Path, n: int, seed: int) -> dict:
    """Static table + long series from the FLEXGEN-EHR checkpoint; 10% of the patients lose
    their static row and another 10% their series, to show training with missing modalities."""
    from core.flexgen.pipeline import FlexGenModel, FlexGenSettings
    from core.report.export import patient_frames

    model = FlexGenModel.load(checkpoint, device="cpu")
    cohort = model.generate(FlexGenSettings(n=n, seed=seed)).cohort
    static, long = patient_frames(cohort)
    ids = {old: f"demo-patient-{i:05d}" for i, old in enumerate(static["record_id"])}
    static["record_id"] = static["record_id"].map(ids)
    long["record_id"] = long["record_id"].map(ids)
    order = np.random.default_rng(seed).permutation(n)
    tenth = n // 10
    no_static = set(static["record_id"].iloc[order[:tenth]])
    no_series = set(static["record_id"].iloc[order[tenth : 2 * tenth]])
    static = static[~static["record_id"].isin(no_static)]
    long = long[~long["record_id"].isin(no_series)].drop(columns="unit")
    static.to_csv(out / "icu_patients_static.csv", index=False)
    long.to_parquet(out / "icu_patients_series.parquet", index=False)
    label = model.encoding.label_name or "label"
    return {
        "id": "icu_patients",
        "title": f"Demo: {n:,} synthetic ICU patients with 48-hour series (PhysioNet-2012-like)",
        "description": "A static table (age, sex, height, ICU type, weight, in-hospital death) and hourly "
        "series of 37 vitals and labs in long format, linked by record_id; sampled from the shipped "
        f"checkpoint {checkpoint.name} (DDPM, seed {seed}). {tenth} patients have no static row and "
        f"{tenth} no series, so FLEXGEN-EHR's missing-modality training can be tried.",
        "format": "long_timeseries",
        "inputs": {"table": "icu_patients_series.parquet", "static": "icu_patients_static.csv"},
        "options": {
            "id_column": "record_id",
            "time_column": "hour",
            "n_steps": model.encoding.temporal.n_steps,
            "step_hours": model.encoding.temporal.step_hours,
            "static_id_column": "record_id",
            "label_column": label,
        },
    }


BUILDERS = {
    "icu_stays": lambda out, n, seed: build_stays(
        ROOT / "checkpoints" / "ehrdiff-physionet2012", out, n, seed
    ),
    "icu_diagnoses": lambda out, n, seed: build_diagnoses(
        ROOT / "checkpoints" / "ehrdiff-eicu-icd9", out, n, seed
    ),
    "icu_patients": lambda out, n, seed: build_patients(
        ROOT / "checkpoints" / "flexgen-physionet2012", out, min(n, 800), seed
    ),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.build_demo", description=__doc__)
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "demo")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument(
        "--only", default=None, help=f"rebuild one demo ({', '.join(BUILDERS)}), keep the others"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    index = args.out / "index.json"
    previous = (
        {d["id"]: d for d in json.loads(index.read_text())["demos"]} if index.is_file() else {}
    )
    demos = [
        build(args.out, args.n, args.seed)
        if args.only in (None, demo_id) or demo_id not in previous
        else previous[demo_id]
        for demo_id, build in BUILDERS.items()
    ]
    index.write_text(json.dumps({"demos": demos}, indent=2) + "\n")
    log.info("wrote %d demo cohorts to %s", len(demos), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
