"""Roles from an ID token's claim: lists and separated strings, and a configured steward role
name that a claim merely saying "steward" cannot borrow."""

from ui.auth import roles_from_claims


def test_roles_from_a_list_or_a_string():
    assert roles_from_claims({"roles": ["steward", "analyst"]}, "roles", "steward") == (
        "steward",
        "analyst",
    )
    assert roles_from_claims({"groups": "analyst, steward"}, "groups", "steward") == (
        "analyst",
        "steward",
    )
    assert roles_from_claims({}, "roles", "steward") == ()


def test_a_configured_steward_name_is_the_only_way_to_the_steward_role():
    assert roles_from_claims({"roles": ["css-admin"]}, "roles", "css-admin") == ("steward",)
    assert roles_from_claims({"roles": ["steward"]}, "roles", "css-admin") == ()
