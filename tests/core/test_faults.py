"""Fault injection (see tests/core/fault_harness.py): writers SIGKILLed at every named point
between their writes and at random moments, run on a full disk, and two at once into one name;
afterwards every listed model loads and verifies, none vanished, nothing half-written is listed,
no leftover survives the next open, every confirmed ledger row verifies, the next save and
release work, and the writers raised nothing but CoreError."""

from __future__ import annotations

import random

import pytest

from tests.core import fault_harness as h

NAMED = [
    *[(h.trial_save, p) for p in h.SAVE_POINTS],
    *[(h.trial_replace, p) for p in h.REPLACE_POINTS],
    *[(h.trial_import, p) for p in h.IMPORT_POINTS],
    *[(h.trial_key, p) for p in h.KEY_POINTS],
    *[(h.trial_ledger, p) for p in h.LEDGER_POINTS],
]


def clean(tally: h.Tally) -> None:
    assert tally.problems == []
    assert (tally.lost, tally.half_written, tally.leftovers, tally.raw) == (0, 0, 0, 0)


@pytest.mark.parametrize(("trial", "point"), NAMED, ids=[p for _, p in NAMED])
def test_a_kill_at_a_named_point_loses_nothing(tmp_path, trial, point):
    tally = h.Tally(point)
    trial(tmp_path, tally, point)
    assert tally.kills == 1  # the child really died at that point
    clean(tally)


@pytest.mark.parametrize("what", ["model", "key", "ledger"])
def test_a_full_disk_is_a_storage_error_and_loses_nothing(tmp_path, what):
    tally = h.Tally(f"disk full: {what}")
    h.trial_disk_full(tmp_path, tally, what)
    clean(tally)


@pytest.mark.parametrize("how", ["cli --out", "store save"])
def test_two_writers_into_one_name_never_replace_each_other(tmp_path, how):
    tally = h.Tally(how)
    h.trial_concurrent(tmp_path, tally, how)
    assert tally.trials == 2
    clean(tally)


def test_kills_at_random_moments_lose_nothing(tmp_path):
    tally = h.Tally("random kills")
    rng = random.Random(1)
    for i in range(3):
        (tmp_path / str(i)).mkdir()
        h.trial_random(tmp_path / str(i), tally, rng)
    assert tally.kills >= 1
    clean(tally)


def test_the_harness_sees_a_vanished_model(tmp_path, monkeypatch):
    """Without the recovery at open, a kill between the two renames of a replace leaves no
    model under its name: the check must say so (the harness can fail)."""
    import core.store

    monkeypatch.setattr(core.store, "recover_leftovers", lambda root: [])
    monkeypatch.setattr(core.store, "recover_name", lambda root, name: [])
    monkeypatch.setattr(core.store, "SETTLE_SECONDS", 0.0)
    tally = h.Tally("replace without recovery")
    h.trial_replace(tmp_path, tally, "checkpoint.replace.after_first_rename")
    assert tally.lost == 1 and tally.leftovers == 2


@pytest.mark.slow
@pytest.mark.parametrize("path", h.PATHS)
def test_thirty_trials_per_path(tmp_path, path):
    tally = h.run_path(path, 30, tmp_path)
    assert tally.trials >= 30
    clean(tally)
