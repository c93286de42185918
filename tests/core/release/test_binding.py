"""A release is bound to its review: ``publish`` refuses a manifest whose review reviewed another
cohort, split or file than the one it names, or that carries no review at all (issue 28: a
session's cohort changed and the old cohort's gate checks were signed with the new fingerprint)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp

from core.data.cohort import Cohort, split_cohort
from core.data.records import CodeMatrix, ehr_table
from core.errors import ConfigError
from core.metrics.suite import ReviewKey, ReviewSettings, review
from core.release.gate import evaluate_gate, release_manifest
from core.release.ledger import Actor, Ledger
from core.release.publish import STEWARD, publish
from core.report.export import to_csv_bytes
from core.report.review_report import make_context
from tests.core.metrics.test_suite import codes

SETTINGS = ReviewSettings(bootstrap=20, mmd_max_records=200)
STEWARD_ACTOR = Actor("dana@example.org", "Dana", (STEWARD,))


def code_cohort(n: int, seed: int, name: str) -> Cohort:
    x = (np.random.default_rng(seed).random((n, 30)) < 0.3).astype(np.uint8)
    ids = np.asarray([f"{name}{i}" for i in range(n)], dtype=object)
    return Cohort(
        name,
        ids,
        ids.copy(),
        codes=CodeMatrix(sp.csr_array(x), tuple(f"c{j}" for j in range(30)), "t", "full"),
    )


@pytest.fixture(scope="module")
def reviewed():
    """A review of an independent set on cohort A, keyed by what it reviewed."""
    cohort = code_cohort(400, 0, "a")
    split = split_cohort(cohort, 0.5, 0)
    table = ehr_table(cohort)
    synth = codes((np.random.default_rng(9).random((200, 30)) < 0.3).astype(np.float32), "s")
    released = to_csv_bytes(synth.to_frame())
    key = ReviewKey.of(cohort.fingerprint(), split, hashlib.sha256(released).hexdigest(), SETTINGS)
    rv = review(
        "set", table.subset(split.train), table.subset(split.holdout), synth,
        settings=SETTINGS, key=key,
    )  # fmt: skip
    return cohort, split, rv, released


def manifest(verdict, cohort, split, released: bytes) -> dict:
    context = make_context(cohort, split, SETTINGS, {verdict.set_name: {"source": "test"}})
    return release_manifest(
        verdict,
        cohort_fingerprint=context.cohort_fingerprint,
        split=context.split,
        provenance=context.sets[verdict.set_name],
        review_settings=context.settings,
        synthetic_sha256=hashlib.sha256(released).hexdigest(),
        override_reason="binding test",
    )


def test_a_review_of_cohort_a_cannot_release_against_cohort_b(reviewed, tmp_path):
    _, _, rv, released = reviewed
    other = code_cohort(3, 1, "b")  # the 3-row cohort of the issue: train 2 / holdout 1
    other_split = split_cohort(other, 0.2, 0)
    assert (len(other_split.train), len(other_split.holdout)) == (2, 1)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    wrong = manifest(evaluate_gate(rv), other, other_split, released + b"x")
    with pytest.raises(ConfigError) as refused:
        publish(wrong, STEWARD_ACTOR, ledger=ledger)
    message = str(refused.value)
    assert "does not match" in message and "'set'" in message
    assert "cohort" in message and "split" in message and "sha256" in message
    assert rv.key.cohort_fingerprint[:12] in message and other.fingerprint()[:12] in message
    assert ledger.entries() == []  # nothing signed, nothing recorded


def test_a_changed_file_alone_is_refused(reviewed, tmp_path):
    cohort, split, rv, released = reviewed
    wrong = manifest(evaluate_gate(rv), cohort, split, released.replace(b"\n", b"\r\n", 1))
    with pytest.raises(ConfigError, match="sha256") as refused:
        publish(wrong, STEWARD_ACTOR, ledger=Ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}"))
    assert "cohort fingerprint" not in str(refused.value) and "split" not in str(refused.value)


def test_a_manifest_without_its_review_is_refused(reviewed, tmp_path):
    cohort, split, rv, released = reviewed
    unbound = review(
        "set", *(ehr_table(cohort).subset(i) for i in (split.train, split.holdout)),
        codes(np.ones((5, 30), np.float32), "u"), settings=SETTINGS,
    )  # fmt: skip
    assert unbound.key is None
    with pytest.raises(ConfigError, match="does not name the review"):
        publish(
            manifest(evaluate_gate(unbound), cohort, split, released),
            STEWARD_ACTOR,
            ledger=Ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}"),
        )


def test_a_review_matching_its_cohort_split_and_file_publishes(reviewed, tmp_path):
    cohort, split, rv, released = reviewed
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    signed, entry = publish(
        manifest(evaluate_gate(rv), cohort, split, released), STEWARD_ACTOR, ledger=ledger
    )
    assert signed["review"] == rv.key.as_dict()
    assert (
        signed["review"]["cohort_fingerprint"]
        == cohort.fingerprint()
        == signed["real_cohort_fingerprint"]
    )
    assert signed["review"]["split"] == signed["split"] == split.summary()
    assert (
        signed["split"]["train"] == len(split.train) and len(signed["split"]["fingerprint"]) == 64
    )
    assert ledger.manifest(entry)["review"] == signed["review"]


def test_every_release_file_is_built_to_the_same_bytes_each_time():
    """The review is bound to the sha256 of the file built when it ran; the release builds the
    file again, so a format that wrote other bytes each time could never be released."""
    from core.report.export import meds_parquet_bytes, patients_parquet_bytes
    from tests.core.ehrpd.planted import planted_chain
    from tests.core.flexgen.toy import toy_cohort

    builds = {
        "csv": lambda: to_csv_bytes(ehr_table(code_cohort(50, 3, "c")).to_frame()),
        "patients parquet": lambda: patients_parquet_bytes(toy_cohort(40)),
        "MEDS parquet": lambda: meds_parquet_bytes(planted_chain(30)),
    }
    for what, build in builds.items():
        first, second = build(), build()
        assert len(first) > 100 and first == second, what
