"""Nothing raw reaches the browser: an unexpected exception on a page becomes a short message
with an error id (details in the server log, without the message), and a store holding a broken
or hostile manifest, or a half-finished write, still lists its good models."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from core.checkpoints import MANIFEST_FILE
from core.ehrdiff.train import TrainConfig, train_ehrdiff
from core.store import ModelStore
from tests.app.pages import open_page
from tests.core.ehrdiff.test_pipeline import code_table

SECRET = "INSERT INTO css_releases VALUES ('patient 1001, age 54')"


def test_an_unexpected_exception_shows_an_error_id_not_a_traceback(monkeypatch, caplog):
    def explode(self, family=None):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(ModelStore, "list", explode)
    with caplog.at_level(logging.ERROR, logger="css.pages"):
        at = open_page("pages/5_Models.py")
    assert not at.exception
    (shown,) = [e.value for e in at.error]
    assert "error id" in shown and "INSERT" not in shown and "1001" not in shown
    error_id = shown.split("`")[-2]
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert error_id in logged and "explode" in caplog.text  # the stack, to find the fault
    assert "1001" not in caplog.text and "INSERT" not in caplog.text  # not the message


@pytest.fixture
def store_with_damage(release_state):
    rng = np.random.default_rng(0)
    model = train_ehrdiff(
        code_table(rng.random((100, 2)) < 0.3),
        TrainConfig(units=(8,), embed_dim=4, steps=2, batch_size=32),
        device="cpu",
    ).model
    root = release_state / "models"
    for name in ("good", "string card", "deep"):
        model.save(root / name, data_card={"source": "toy"}, training_command="t", metrics={})
    path = root / "string card" / MANIFEST_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "data_card": "oops"}))
    deep = json.loads((root / "deep" / MANIFEST_FILE).read_text())
    (root / "deep" / MANIFEST_FILE).write_text(
        json.dumps({**deep, "metrics": {}})[:-1] + ', "x": ' + "[" * 60_000 + "]" * 60_000 + "}"
    )
    # a retraining of "good" killed between its two renames, as the kill tests leave it
    (root / "good").rename(root / ".good.old-0123abcd")
    return root


def test_broken_manifests_are_listed_as_broken_and_a_killed_replace_is_recovered(
    store_with_damage,
):
    store = ModelStore(store_with_damage)
    listed = {m.name: m for m in store.list()}
    assert listed["good"].ok and "rolled back" in " ".join(store.recovered)
    assert (
        not listed["string card"].ok
        and "'data_card' must be an object" in listed["string card"].detail
    )
    assert not listed["deep"].ok and "nested" in listed["deep"].detail
    at = open_page("pages/5_Models.py")
    assert not at.exception
    # the first listed ("deep") is selected: it is named broken, nothing unexpected happened
    assert [e.value.split("**")[1] for e in at.error] == ["deep"]
    assert "nested" in at.error[0].value
    table = at.dataframe[0].value
    assert set(table["name"]) == {"good", "string card", "deep"}
