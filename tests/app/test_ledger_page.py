"""The Ledger page's "Verify the ledger" button: intact after two releases, and a row deleted in
the database is reported, naming the row."""

from __future__ import annotations

from core.release import settings
from core.release.ledger import RELEASES, Ledger
from core.release.publish import publish
from tests.app.pages import open_page
from tests.core.release.test_ledger import STEWARD_ACTOR, manifest


def test_verify_the_ledger_button_finds_a_deleted_row():
    ledger = Ledger(settings.ledger_url())
    for sha in ("a" * 64, "b" * 64, "c" * 64):
        publish(manifest(sha), STEWARD_ACTOR, ledger=ledger)
    at = open_page("pages/6_Ledger.py")
    at.button(key="verify_ledger").click().run()
    assert not at.exception and not at.error
    assert any("Intact: 3 rows" in s.value for s in at.success)
    # who, when, what and the verdict come first; hashes are cut for reading
    table = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert list(table.columns[:7]) == [
        "id", "released_at", "display_name", "roles", "set_name", "verdict", "override_reason"
    ]  # fmt: skip
    assert set(table["synthetic_sha256"]) == {"a" * 12 + "…", "b" * 12 + "…", "c" * 12 + "…"}

    with ledger.engine.begin() as conn:
        conn.execute(RELEASES.delete().where(RELEASES.c.id == 2))
    at.button(key="verify_ledger").click().run()
    assert not at.exception
    assert any("finding(s) in 2 rows" in e.value for e in at.error)
    findings = next(d.value for d in at.dataframe if "where" in d.value.columns)
    assert "row 3" in set(findings["where"]) and (findings["kind"] == "tampered").all()
