"""Decoded EHRDiff records obey the training records' logic (issue #28), stored or structural."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.data.records import ehr_table
from core.ehrdiff.pipeline import EHRDiffModel, GenerationSettings
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.encoding.constraints import valid_records
from tests.core.flexgen.toy import toy_cohort

# Barely trained: its summaries come out crossed, which is what decoding must repair.
QUICK = TrainConfig(units=(64, 64), embed_dim=32, steps=200, batch_size=128, warmup=20)


@pytest.fixture(scope="module")
def model() -> EHRDiffModel:
    table = ehr_table(toy_cohort(240, missing_static=0.1, missing_temporal=0.1))
    return train_ehrdiff(table, QUICK, model_id="toy-summaries", device="cpu").model


@pytest.mark.slow  # trains a toy EHRDiff (~11 s on 2 cores)
def test_training_stores_the_rules_and_every_generated_record_obeys_them(model, tmp_path):
    rules = model.constraints
    assert rules is not None and rules.source == "inferred from 240 training records"
    settings = GenerationSettings(n=300, steps=6, seed=0)
    raw = model.encoding.decode(model.generate_vectors(settings)[0], np.arange(300), None)
    assert not valid_records(raw, rules).all()  # the network alone breaks them
    synth = model.generate(settings)
    assert valid_records(synth.table, rules).all()
    np.testing.assert_allclose(synth.vectors, model.encoding.encode(synth.table))
    model.save(tmp_path / "m", data_card={}, training_command="test", metrics={})
    stored = json.loads((tmp_path / "m" / "manifest.json").read_text())["config"]
    assert stored["constraints"]["source"] == rules.source
    again = EHRDiffModel.load(tmp_path / "m", device="cpu")
    assert again.constraints == rules
    assert again.generate(settings).table.static.equals(synth.table.static)


@pytest.mark.slow
def test_a_model_stored_before_constraints_decodes_with_the_rules_of_its_column_names(model):
    old = EHRDiffModel(
        model.denoiser, model.encoding, "old", model.class_prior, data_mean=model.reference_means
    )
    rules = old.decoding_constraints
    assert rules.source == "structural (column names)"
    assert valid_records(
        old.generate(GenerationSettings(n=300, steps=6, seed=0)).table, rules
    ).all()
    assert "constraints" not in old.config_json()
    assert model.decoding_constraints is model.constraints
